"""The hooks section: commands run when leadership or announcements change.

keepalived's notify_master / notify_backup scripts, done so that a slow or hung script
can never delay the appliance: hooks run as child processes of the supervisor (never
in the time-critical domain), with a timeout, a bounded number at a time, and their
outcome logged and counted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from speaker.config.base import Section
from speaker.config.types import Name, PositiveSeconds, SafeText

HookEvent = Literal["leader_gained", "leader_lost", "vip_announced", "vip_withdrawn"]


class Hook(Section):
    """One command for one kind of event (optionally one group or service only).

    The command gets the event in its environment: SPEAKER_EVENT, SPEAKER_NODE and,
    per event, SPEAKER_GROUP (leader_*) or SPEAKER_SERVICE and SPEAKER_VIP (vip_*)."""

    on: HookEvent
    command: list[SafeText] = Field(min_length=1, max_length=64)
    """argv: run directly, never through a shell."""
    group: Name | None = None
    """Only for this election group (leader_* events)."""
    service: Name | None = None
    """Only for this service (vip_* events)."""
    timeout: PositiveSeconds = 10.0
    """The command is killed (its whole process group) after this long."""

    @model_validator(mode="after")
    def _check(self) -> Hook:
        if self.timeout > 600:
            raise ValueError("timeout must be at most 600 s")
        if self.group is not None and not self.on.startswith("leader_"):
            raise ValueError("group applies to leader_gained / leader_lost hooks only")
        if self.service is not None and not self.on.startswith("vip_"):
            raise ValueError("service applies to vip_announced / vip_withdrawn hooks only")
        if not self.command[0].startswith("/"):
            raise ValueError("command[0] must be an absolute path (hooks get no PATH search)")
        return self
