"""A BIND 9 primary for the lab: one dynamic zone open to TSIG-signed RFC 2136 updates."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from speaker.lab.netns import Namespace

SECRET = "8iqUvfFnWP8POtHjWf6CoysnftkdPzNRmYK73djauHw="  # noqa: S105 - lab-only key, TEST-NET lab
KEY = "es-key"
ZONE = "example.test"


class Bind:
    """`named -g` in `ns`, answering on `addresses`, zone `example.test` open to updates
    signed with KEY."""

    def __init__(self, ns: Namespace, workdir: Path, addresses: list[str]) -> None:
        self.ns = ns
        self.dir = workdir / "bind"
        self.dir.mkdir(parents=True, exist_ok=True)
        listen = "; ".join(addresses)
        (self.dir / "named.conf").write_text(f"""
options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    session-keyfile "{self.dir}/session.key";
    listen-on port 53 {{ {listen}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    dnssec-validation no;
}};
controls {{ }};
key "{KEY}" {{ algorithm hmac-sha256; secret "{SECRET}"; }};
zone "{ZONE}" {{
    type primary;
    file "{self.dir}/{ZONE}.zone";
    allow-update {{ key "{KEY}"; }};
}};
""")
        (self.dir / f"{ZONE}.zone").write_text(
            f"$TTL 60\n@ IN SOA ns1.{ZONE}. hostmaster.{ZONE}. 1 60 60 600 60\n"
            f"@ IN NS ns1.{ZONE}.\nns1 IN A {addresses[0]}\n")
        with (self.dir / "named.log").open("ab") as log:
            self.proc = ns.spawn(["named", "-g", "-c", str(self.dir / "named.conf")],
                                 stdout=log, stderr=subprocess.STDOUT)
        self.address = addresses[0]
        deadline = time.monotonic() + 20
        while self.lookup(f"ns1.{ZONE}") != [addresses[0]]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("named did not start: "
                                   + (self.dir / "named.log").read_text()[-2000:])
            time.sleep(0.1)

    def lookup(self, name: str, rdtype: str = "A", ns: Namespace | None = None) -> list[str]:
        """What the server answers now (dig inside `ns`, default the server's own)."""
        out = (ns or self.ns).run("dig", "+short", "+time=1", "+tries=1", f"@{self.address}",
                                  name, rdtype, check=False)
        return sorted(line.strip().strip('"') for line in out.stdout.splitlines()
                      if line.strip() and not line.startswith(";"))

    def nsupdate(self, commands: str) -> None:
        """Apply an update by hand with BIND's nsupdate (someone else's records)."""
        script = f"server {self.address} 53\nzone {ZONE}\n{commands}\nsend\n"
        self.ns.run("nsupdate", "-y", f"hmac-sha256:{KEY}:{SECRET}", input_text=script)
