"""Hooks: operator commands run on leadership and announcement changes."""

from speaker.hooks.runner import HookRunner

__all__ = ["HookRunner"]
