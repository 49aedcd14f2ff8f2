"""keepalived + ``lvs_sync_daemon`` in the appliance VMs: the connection-survival anchor.

The same two VMs, addresses and backends as the speaker's pair (tests/vm_e2e/pair.py,
built with ``start_speakers=False``), running Debian's keepalived 2.2 instead: one VRRP
instance on ``front`` with the same VRID, priorities, advert interval (1 s, the
speaker's ``default`` preset), VRRPv3 and no preemption; the DR VIP's echo port as an
IPVS virtual server over the same three backends (``rr``, TCP check); and
``lvs_sync_daemon`` on ``back`` with the same sync id, which keepalived runs as master
on the VRRP master and as backup elsewhere, following the VRRP state.

Nothing else is tuned: keepalived leaves ``net.ipv4.vs.sloppy_tcp`` at the kernel's
default (0), as a keepalived pair is deployed. The VIP lives on ``front`` (keepalived
adds and removes it), so the kernel answers ARP for it on the master only.
"""

from __future__ import annotations

from tests.vm_e2e.pair import BACKENDS, ECHO_PORT, NODES, VIP_DR, Appliance

CONF = "/tmp/keepalived.conf"
PIDS = ("/run/ka.pid", "/run/ka-vrrp.pid", "/run/ka-check.pid")


def keepalived_config(name: str) -> str:
    node = NODES[name]
    reals = "\n".join(f"""  real_server {addr} {ECHO_PORT} {{
    weight 1
    TCP_CHECK {{
      connect_timeout 2
    }}
  }}""" for addr in BACKENDS)
    return f"""global_defs {{
  router_id lb-{name}
  vrrp_version 3
  lvs_sync_daemon back front id 14
}}
vrrp_instance front {{
  state BACKUP
  interface front
  virtual_router_id 14
  priority {node['priority']}
  advert_int 1
  nopreempt
  virtual_ipaddress {{
    {VIP_DR}/32 dev front
  }}
}}
virtual_server {VIP_DR} {ECHO_PORT} {{
  delay_loop 2
  lb_algo rr
  lb_kind DR
  protocol TCP
{reals}
}}
"""


def start_keepalived(node: Appliance) -> None:
    """Write the config and run keepalived in the guest (its own pid files, logs to
    /tmp/keepalived.log); the process dies with the VM."""
    node.vm.request({"op": "run", "argv": ["sh", "-c", f"cat > {CONF}"],
                     "input": keepalived_config(node.name)})
    pid, vrrp, check = PIDS
    node.vm.sh(f"setsid keepalived -n -l -D -f {CONF} -p {pid} -r {vrrp} -c {check} "
               "> /tmp/keepalived.log 2>&1 < /dev/null &")


def stop_keepalived(node: Appliance) -> None:
    """A planned stop (SIGTERM): the master sends a priority-0 advert and the backup
    takes over at once; keepalived removes its VIP and virtual servers on the way out."""
    node.vm.sh(f"kill $(cat {PIDS[0]}); "
               f"for i in $(seq 100); do [ -e {PIDS[0]} ] || exit 0; sleep 0.1; done")


def is_master(node: Appliance) -> bool:
    """The VRRP master holds the VIP on ``front``."""
    out = node.vm.run("ip", "-4", "-o", "addr", "show", "dev", "front", check=False)
    return f"{VIP_DR}/32" in out
