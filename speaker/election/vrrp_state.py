"""The VRRPv3 state machine of one virtual router (RFC 5798 section 6.4), pure.

Every transition is a function `(Instance, Params, input, now) -> (Instance,
actions)`; the engine does the I/O (send the adverts it is told to send) and
calls `on_timer` when `Instance.deadline` passes. Time is a float argument,
so unit tests step through failovers without sleeping.

Beyond the RFC, two things an appliance needs:
- *resign* (planned handover): the master sends priority 0 (backups take
  over after their skew time) but keeps answering until it hears the new
  master's advert, so clients see no gap; afterwards it does not preempt
  until `reclaim` (it still takes over if the new master dies).
- *link down*: an instance whose interface is down goes to INIT (not leader)
  and starts again as backup when the link returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from speaker.model import IPAddress


class State(StrEnum):
    """RFC 5798 states, plus `resigning` (a master handing over)."""

    INIT = "init"
    BACKUP = "backup"
    MASTER = "master"
    RESIGNING = "resigning"


@dataclass(frozen=True, slots=True)
class Params:
    """Configuration of one instance as the state machine sees it."""

    priority: int
    """Effective priority (configured minus self-health penalty; 255 = owner)."""
    interval_cs: int
    """Our advertisement interval, centiseconds."""
    preempt: bool
    address: IPAddress
    """Our primary address (ties between equal priorities: higher address wins)."""
    preempt_after: float = 0.0
    """No preemption before this monotonic time (preempt_delay after start)."""


@dataclass(frozen=True, slots=True)
class Instance:
    """State of one virtual router."""

    state: State = State.INIT
    deadline: float | None = None
    """Master: next advert. Backup: master-down. Resigning: give up waiting."""
    master_interval_cs: int = 100
    """Master_Adver_Interval learnt from the master's adverts."""
    master: IPAddress | None = None
    """Address of the current master, if known."""
    last_heard: float | None = None
    """When the master's last accepted advert arrived."""
    since: float = 0.0
    resigned: bool = False


@dataclass(frozen=True, slots=True)
class Send:
    """Action: send an advertisement with this priority now."""

    priority: int


Actions = tuple[Send, ...]


def skew_time(priority: int, master_interval_cs: int) -> float:
    """Skew_Time in seconds: ((256 - priority) * Master_Adver_Interval) / 256."""
    return (256 - priority) * master_interval_cs / 256 / 100


def master_down_interval(priority: int, master_interval_cs: int) -> float:
    """Master_Down_Interval in seconds: 3 * Master_Adver_Interval + Skew_Time."""
    return 3 * master_interval_cs / 100 + skew_time(priority, master_interval_cs)


def _become_master(inst: Instance, p: Params, now: float) -> tuple[Instance, Actions]:
    return (replace(inst, state=State.MASTER, deadline=now + p.interval_cs / 100,
                    master=p.address, since=now), (Send(p.priority),))


def _become_backup(inst: Instance, p: Params, now: float, interval_cs: int,
                   master: IPAddress | None) -> Instance:
    return replace(inst, state=State.BACKUP, master_interval_cs=interval_cs, master=master,
                   deadline=now + master_down_interval(p.priority, interval_cs),
                   last_heard=now if master is not None else inst.last_heard,
                   since=now if inst.state != State.BACKUP else inst.since)


def start(inst: Instance, p: Params, now: float) -> tuple[Instance, Actions]:
    """Startup event: the owner (255) becomes master at once, others backup."""
    if p.priority == 255:
        return _become_master(inst, p, now)
    return _become_backup(replace(inst, since=now), p, now, p.interval_cs, None), ()


def on_timer(inst: Instance, p: Params, now: float) -> tuple[Instance, Actions]:
    """Master_Down_Timer (backup), Adver_Timer (master) or resign wait expired."""
    if inst.deadline is None or now < inst.deadline:
        return inst, ()
    if inst.state == State.BACKUP:
        return _become_master(inst, p, now)
    if inst.state == State.MASTER:
        return replace(inst, deadline=now + p.interval_cs / 100), (Send(p.priority),)
    if inst.state == State.RESIGNING:
        return _become_backup(inst, p, now, inst.master_interval_cs, None), ()
    return inst, ()


def _preempts(p: Params, resigned: bool, now: float) -> bool:
    return p.preempt and not resigned and now >= p.preempt_after


def _wins(p: Params, priority: int, src: IPAddress) -> bool:
    """True if an advert with `priority` from `src` beats us (RFC 5798 6.4.3)."""
    if priority != p.priority:
        return priority > p.priority
    return src.version == p.address.version and int(src) > int(p.address)


def _backup_advert(inst: Instance, p: Params, priority: int, interval_cs: int,
                   src: IPAddress, now: float) -> Instance:
    if priority == 0:
        return replace(inst, deadline=now + skew_time(p.priority, inst.master_interval_cs),
                       master=None)
    if not _preempts(p, inst.resigned, now) or priority >= p.priority:
        return _become_backup(inst, p, now, interval_cs, src)
    return inst  # lower priority and we preempt: let Master_Down_Timer expire


def on_advert(inst: Instance, p: Params, priority: int, interval_cs: int, src: IPAddress,
              now: float) -> tuple[Instance, Actions]:
    """An advert (already validated) from another router of this VRID."""
    if inst.state == State.INIT:
        return inst, ()
    if inst.state == State.BACKUP:
        return _backup_advert(inst, p, priority, interval_cs, src, now), ()
    if inst.state == State.RESIGNING:
        # The new master speaks: hand over (another resigner's priority 0 changes nothing).
        return (inst if priority == 0 else _become_backup(inst, p, now, interval_cs, src)), ()
    # MASTER
    if priority == 0:
        return replace(inst, deadline=now + p.interval_cs / 100), (Send(p.priority),)
    if _wins(p, priority, src):
        return _become_backup(inst, p, now, interval_cs, src), ()
    return inst, ()


def on_priority(inst: Instance, p: Params, now: float) -> tuple[Instance, Actions]:
    """Our effective priority changed: a master tells the others at once."""
    if inst.state == State.MASTER:
        return replace(inst, deadline=now + p.interval_cs / 100), (Send(p.priority),)
    return inst, ()


def resign(inst: Instance, p: Params, now: float) -> tuple[Instance, Actions]:
    """Planned handover: priority 0 now, keep serving until the new master speaks."""
    if inst.state == State.MASTER:
        wait = master_down_interval(p.priority, p.interval_cs)
        return replace(inst, state=State.RESIGNING, deadline=now + wait,
                       resigned=True), (Send(0),)
    return replace(inst, resigned=True), ()


def reclaim(inst: Instance) -> Instance:
    """Undo `resign`: preempt again per configuration."""
    return replace(inst, resigned=False)


def shutdown(inst: Instance, p: Params, now: float) -> tuple[Instance, Actions]:
    """Shutdown event: a master sends priority 0 so a backup takes over at once."""
    actions: Actions = (Send(0),) if inst.state in (State.MASTER, State.RESIGNING) else ()
    return replace(inst, state=State.INIT, deadline=None, master=None, since=now), actions


def link_down(inst: Instance, now: float) -> Instance:
    """The interface went down: stop being anything until it returns."""
    if inst.state == State.INIT:
        return inst
    return replace(inst, state=State.INIT, deadline=None, master=None, since=now)


def is_leader(inst: Instance) -> bool:
    """Masters and resigning masters own the VIPs."""
    return inst.state in (State.MASTER, State.RESIGNING)
