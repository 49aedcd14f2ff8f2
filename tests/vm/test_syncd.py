"""The kernel's IPVS sync daemons driven by dataplane.ipvs.syncd, read back by ipvsadm."""

from __future__ import annotations

import pytest

from tests.vm.machine import Lab

pytestmark = pytest.mark.vm

SETUP = """
from ipaddress import ip_address
from dataplane.ipvs.syncd import SyncDaemon, SyncDaemonKernel, SyncDaemonError
syncd = SyncDaemonKernel()
"""


def test_start_switch_and_stop_daemons(lab: Lab) -> None:
    vm = lab.vm
    vm.py(SETUP)
    try:
        ops = vm.py("result = [str(o) for o in syncd.set("
                    "[SyncDaemon('master', 'back', 7, ip_address('239.1.1.81'), 9100)])]")
        assert ops == ["start sync master on back id 7 group 239.1.1.81:9100"]
        out = vm.run("ipvsadm", "-L", "--daemon")
        assert "master sync daemon (mcast=back, syncid=7" in out
        assert "239.1.1.81" in out
        assert vm.py("result = [str(d) for d in syncd.observe()]") == [
            "sync master on back id 7 group 239.1.1.81:9100"]
        # Leadership lost: master out, backup in.
        vm.py("syncd.set([SyncDaemon('backup', 'back', 7, ip_address('239.1.1.81'), 9100)])")
        out = vm.run("ipvsadm", "-L", "--daemon")
        assert "backup sync daemon (mcast=back, syncid=7" in out
        assert "master" not in out
        # The kernel refuses a unicast "group": why the config demands multicast.
        err = vm.py("""
try:
    syncd.set([SyncDaemon('master', 'back', 7, ip_address('198.51.100.2'))])
    result = None
except SyncDaemonError as exc:
    result = str(exc)
""")
        assert err is not None
        assert "EINVAL" in err
        vm.py("syncd.set([])")
        assert vm.run("ipvsadm", "-L", "--daemon").strip() == ""
    finally:
        vm.run("ipvsadm", "--stop-daemon", "master", check=False)
        vm.run("ipvsadm", "--stop-daemon", "backup", check=False)
