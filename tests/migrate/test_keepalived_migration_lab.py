"""Migration drill: one box of a keepalived pair is replaced by edge-speaker running the
config `speaker config import-keepalived` wrote from its keepalived.conf; the other box
keeps running the original keepalived. They must agree on the master at every step."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from l2lab import Segment, keepalived_states, start_keepalived, wait_keepalived

from speaker.lab.netns import Lab, leftover_namespaces

pytestmark = pytest.mark.lab
VIP = "192.0.2.100"


def keepalived_box(name: str, priority: int, hook: str = "") -> str:
    """The keepalived.conf of one box of the pair (VRRPv3, 200 ms adverts, one LVS
    service with a TCP check)."""
    return f"""global_defs {{
  router_id {name}
  vrrp_version 3
  enable_script_security
  script_user root
}}
vrrp_instance front {{
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority {priority}
  advert_int 0.2
  {hook}
  virtual_ipaddress {{
    {VIP}/32 dev eth0
  }}
}}
virtual_server {VIP} 80 {{
  delay_loop 2
  lb_algo wlc
  lb_kind NAT
  protocol TCP
  real_server 192.0.2.31 8080 {{
    TCP_CHECK {{
      connect_timeout 1
    }}
  }}
}}
"""


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Segment]:
    with Lab("ekg") as lab:
        yield Segment(lab, tmp_path, ["a1", "a2"])
    assert not leftover_namespaces("ekg")


def test_imported_appliance_and_keepalived_agree_on_the_master(pair: Segment,
                                                                tmp_path: Path) -> None:
    ours, ka = pair.appliances["a1"], pair.appliances["a2"]
    events = tmp_path / "hook-events"
    hook = f'notify_master "/bin/sh -c \'echo master >> {events}\'"'
    original = tmp_path / "a1-keepalived.conf"
    original.write_text(keepalived_box("a1", 150, hook))
    out = subprocess.run([sys.executable, "-m", "speaker", "config", "import-keepalived",
                          str(original), "--router-id", "192.0.2.11"], capture_output=True,
                         text=True, timeout=60, check=True)
    cfg = yaml.safe_load(out.stdout)
    # lab-only changes: this kernel has no IPVS, the API socket lives in the test's
    # directory, and the lab has no backend behind the VIP (the election is the point)
    cfg["dataplane"] = {"ipvs": False}
    cfg["api"] = {"socket": str(ours.sock)}
    cfg["metrics"] = {"enabled": False}
    cfg["log"] = {"format": "logfmt"}
    cfg["services"][0]["health"] = {"type": "none"}
    ours.config.write_text(yaml.safe_dump(cfg, sort_keys=False))
    ours.start()
    ours.wait_event("leader_gained", group="front")
    start_keepalived(ka, keepalived_box("a2", 100))
    wait_keepalived(ka, "BACKUP")
    time.sleep(1.0)  # > 3 advert intervals: keepalived stays backup on our adverts
    assert keepalived_states(ka) == ["BACKUP"]
    pair.prime(VIP)
    assert pair.who_answers(VIP) == {ours.mac}
    deadline = time.monotonic() + 10
    while not (events.exists() and events.read_text().strip()):
        assert time.monotonic() < deadline, "notify_master hook did not run"
        time.sleep(0.05)
    assert events.read_text().split() == ["master"]

    pair.death(ours)                       # keepalived takes over
    wait_keepalived(ka, "MASTER")
    pair.wait_neigh(VIP, ka.mac)
    pair.revive(ours)                      # preemption: the imported priority 150 wins
    ours.wait_event("leader_gained", group="front")
    wait_keepalived(ka, "BACKUP", count=2)
    pair.wait_neigh(VIP, ours.mac)
    assert pair.who_answers(VIP) == {ours.mac}
