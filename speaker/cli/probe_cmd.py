"""`speaker probe VIP -i IFACE`: which MACs answer ARP/NDP for a VIP on the segment.

Exit codes: 0 exactly one MAC answered (or none, with --expect-none, as on the owner
itself), 1 nobody answered, 4 several MACs answered (duplicate owners), 2 bad input.
"""

from __future__ import annotations

import sys
from ipaddress import ip_address

import click

from speaker.cli.common import fail, print_json


@click.command()
@click.argument("vip")
@click.option("-i", "--interface", required=True, help="The segment's interface.")
@click.option("--count", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--wait", type=click.FloatRange(0.1, 10), default=1.0, show_default=True,
              help="Seconds to listen after the last probe.")
@click.option("--expect-none", is_flag=True,
              help="Run on the owner: its own responder does not answer its own probes, "
                   "so any answer is another owner.")
@click.option("--json", "as_json", is_flag=True)
def probe(vip: str, interface: str, count: int, wait: float, expect_none: bool,
          as_json: bool) -> None:
    """Probe who answers for VIP (RFC 5227 ARP probes, DAD-style NS for IPv6): one MAC
    is healthy, two or more is a duplicate owner. Needs root (raw frames)."""
    from speaker.l2.probe import probe as run_probe

    try:
        address = ip_address(vip)
        result = run_probe(interface, address, count=count, wait=wait)
    except ValueError as exc:
        fail(str(exc), 2)
    except PermissionError:
        fail("sending raw frames needs root (CAP_NET_RAW)", 2)
    answers = dict(sorted(result.answers.items()))
    if as_json:
        print_json({"vip": str(address), "interface": interface, "sent": result.sent,
                    "answers": answers})
    else:
        kind = "ARP probes" if address.version == 4 else "neighbour solicitations"
        click.echo(f"{address} on {interface}: {result.sent} {kind} sent")
        for mac, n in answers.items():
            click.echo(f"  {mac} answered {n} time(s)")
        if not answers:
            click.echo("  nobody answered" + (" (expected on the owner)" if expect_none else ""))
        elif len(answers) > 1:
            click.echo(f"  DUPLICATE: {len(answers)} MACs answer for {address}")
    if len(answers) > 1 or (expect_none and answers):
        sys.exit(4)
    if not answers and not expect_none:
        sys.exit(1)
