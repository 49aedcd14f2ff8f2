"""Guest agent: execute the host's requests arriving on a virtio-serial port.

Runs as the VM's main process (started by ``/init``), standard library only.
Protocol: one JSON object per line each way, strictly request/response.

* ``{"op": "ping"}`` -> ``{"ok": true}`` (round trip ~1 ms under TCG).
* ``{"op": "run", "argv": [...], "timeout": 60, "input": "..."}`` ->
  ``{"ok": true, "rc": 0, "stdout": "...", "stderr": "..."}``.
* ``{"op": "py", "code": "..."}`` executes ``code`` in one persistent namespace
  (so tests keep an open IPVS socket between calls) and answers the JSON of the
  variable ``result`` (non-JSON values as ``str``), or ``{"ok": false, "error": tb}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

PORT_NAME = "agent"


def find_port(name: str = PORT_NAME) -> str:
    for entry in Path("/sys/class/virtio-ports").iterdir():
        if (entry / "name").read_text().strip() == name:
            return f"/dev/{entry.name}"
    raise SystemExit(f"virtio-serial port {name!r} not found")


def handle(request: dict[str, Any], namespace: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "ping":
        return {"ok": True}
    if op == "run":
        try:
            proc = subprocess.run(
                request["argv"], input=request.get("input"), capture_output=True,
                text=True, timeout=request.get("timeout", 120), check=False,
                cwd=request.get("cwd"),
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"ok": False, "error": repr(exc)}
        return {"ok": True, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
    if op == "py":
        namespace.pop("result", None)
        try:
            exec(request["code"], namespace)  # noqa: S102 - the test host is the only peer
        except BaseException:  # report everything, including SystemExit
            return {"ok": False, "error": traceback.format_exc()}
        return {"ok": True, "result": namespace.get("result")}
    return {"ok": False, "error": f"unknown op {op!r}"}


def serve(path: str) -> None:
    fd = os.open(path, os.O_RDWR)
    namespace: dict[str, Any] = {"__name__": "agent"}
    buffer = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            # No host connected: the port reads EOF; wait for data again.
            time.sleep(0.05)
            os.close(fd)
            fd = os.open(path, os.O_RDWR)
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            try:
                request = json.loads(line)
                reply = handle(request, namespace)
            except ValueError as exc:
                request, reply = {}, {"ok": False, "error": repr(exc)}
            reply["id"] = request.get("id")
            data = (json.dumps(reply, default=str) + "\n").encode()
            while data:
                data = data[os.write(fd, data):]


if __name__ == "__main__":
    sys.path.insert(0, "/project")
    serve(find_port())
