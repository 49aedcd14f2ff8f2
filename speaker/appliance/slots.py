"""A/B slots and their systemd-boot entries: which slot runs, which boots next.

Each slot (``a``, ``b``: partitions ``root-a``/``root-b``, kernels in ``ESP/slot-a``
and ``ESP/slot-b``) has at most one type #1 boot entry on the ESP, named
``edge-speaker-<generation>-<slot>[+<left>[-<done>]].conf``. The generation grows
by one with every update, so the newest image sorts last. systemd-boot (252) sorts
entries with no tries left first and otherwise by name, and boots the last entry
matching ``default edge-speaker-*``: the newest entry that is not bad. An update
gets ``+N-0`` (N tries); systemd-boot counts a try down at each boot of it, and
``systemd-bless-boot`` drops the counter (the entry is good for ever) once
``boot-complete.target`` is reached, which the health gate guards. An entry at
``+0-N`` is bad: it sorts first and the previous slot boots again by itself.

Pure functions here; :mod:`speaker.appliance.update` does the I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SLOTS = ("a", "b")
ENTRY = re.compile(r"^edge-speaker-(?P<gen>\d+)-(?P<slot>[ab])"
                   r"(?:\+(?P<left>\d+)(?:-(?P<done>\d+))?)?\.conf$")
ROOT_ARG = re.compile(r"(?:^|\s)root=PARTLABEL=root-(?P<slot>[ab])(?:\s|$)")


class UpdateRefusedError(Exception):
    """The appliance is in no state to take an update (said why)."""


@dataclass(frozen=True, slots=True)
class BootEntry:
    """One slot's boot entry as systemd-boot sees it."""

    file: str
    generation: int
    slot: str
    version: str
    tries_left: int | None
    """None: no boot counting (a good entry); 0: bad; N > 0: N more tries."""
    tries_done: int = 0

    @property
    def state(self) -> str:
        if self.tries_left is None:
            return "good"
        return "bad" if self.tries_left == 0 else "trial"


def parse_entry(file: str, text: str) -> BootEntry | None:
    """The entry of file name ``file`` (contents ``text``); None if it is not ours."""
    m = ENTRY.match(file)
    if m is None:
        return None
    version = "unknown"
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key == "version" and value.strip():
            version = value.strip()
    left = None if m["left"] is None else int(m["left"])
    return BootEntry(file, int(m["gen"]), m["slot"], version, left, int(m["done"] or 0))


def entry_name(generation: int, slot: str, tries: int | None) -> str:
    counter = "" if tries is None else f"+{tries}-0"
    return f"edge-speaker-{generation}-{slot}{counter}.conf"


def entry_text(slot: str, version: str, options: str) -> str:
    """The type #1 entry of ``slot`` (kernel and initrd in ``/slot-<slot>/`` on the ESP)."""
    return (f"title edge-speaker {version} (slot {slot.upper()})\n"
            f"version {version}\n"
            f"linux /slot-{slot}/vmlinuz\ninitrd /slot-{slot}/initrd.img\n"
            f"options root=PARTLABEL=root-{slot} {options}\n")


def running_slot(cmdline: str) -> str | None:
    """The slot this boot's kernel command line mounted as root."""
    m = ROOT_ARG.search(cmdline)
    return None if m is None else m["slot"]


def next_boot(entries: list[BootEntry]) -> BootEntry | None:
    """The entry systemd-boot picks at the next boot: the newest that is not bad.

    The entry running on trial (``+0-1`` after its only try) counts as bad until it is
    blessed: if the appliance reboots before the health gate passes, it rolls back."""
    usable = [e for e in entries if e.state != "bad"]
    return max(usable, key=lambda e: (e.generation, e.slot), default=None)


@dataclass(frozen=True, slots=True)
class UpdatePlan:
    """Where an update goes: the inactive slot, its new entry, what it replaces."""

    slot: str
    generation: int
    entry: str
    replaces: tuple[str, ...]
    """Entry files of the target slot that are removed before it is written."""


def plan_update(running: str | None, entries: list[BootEntry], tries: int,
                force: bool = False) -> UpdatePlan:
    """The inactive slot and the entry the update gets, or :class:`UpdateRefusedError`."""
    if running not in SLOTS:
        raise UpdateRefusedError("cannot tell the running slot (no root=PARTLABEL=root-a|b "
                                 "on the kernel command line): not an edge-speaker appliance")
    if tries < 1:
        raise UpdateRefusedError("--tries must be at least 1")
    mine = [e for e in entries if e.slot == running]
    if any(e.state != "good" for e in mine) and not force:
        raise UpdateRefusedError(
            f"the running slot {running} is still on trial (its boot was not marked good "
            "yet): wait for the health gate, or pass --force")
    target = "b" if running == "a" else "a"
    generation = max((e.generation for e in entries), default=0) + 1
    replaces = tuple(sorted(e.file for e in entries if e.slot == target))
    return UpdatePlan(target, generation, entry_name(generation, target, tries), replaces)


def read_entries(entries_dir: Path) -> list[BootEntry]:
    """Our entries in ``entries_dir`` (``ESP/loader/entries``), sorted by generation."""
    found = []
    if entries_dir.is_dir():
        for path in entries_dir.iterdir():
            entry = parse_entry(path.name, path.read_text(errors="replace"))
            if entry is not None:
                found.append(entry)
    return sorted(found, key=lambda e: (e.generation, e.slot))


def slot_report(running: str | None, running_version: str,
                entries: list[BootEntry]) -> dict[str, object]:
    """Running and staged versions and slots, for `speaker update status` and
    `speaker status`."""
    nxt = next_boot(entries)
    slots: dict[str, object] = {}
    for slot in SLOTS:
        entry = next((e for e in reversed(entries) if e.slot == slot), None)
        state = "empty" if entry is None else entry.state
        if slot == running and entry is not None and entry.state != "good":
            state = "on-trial"  # booted with a counter, not blessed yet
        slots[slot] = {"version": None if entry is None else entry.version,
                       "state": state, "running": slot == running,
                       "entry": None if entry is None else entry.file,
                       "tries_left": None if entry is None else entry.tries_left}
    staged = nxt is not None and nxt.slot != running
    return {"running": {"slot": running, "version": running_version},
            "next_boot": None if nxt is None else {"slot": nxt.slot, "version": nxt.version},
            "staged": ({"slot": nxt.slot, "version": nxt.version}
                       if staged and nxt is not None else None),
            "slots": slots}
