"""The errors a config can produce: each names the field (dotted path) it is about."""

from __future__ import annotations

from dataclasses import dataclass

Loc = tuple[str | int, ...]
"""A location inside the config, like a pydantic loc: ('services', 0, 'vip')."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f" (line {self.line})" if self.line else ""
        return f"{self.path or '<top>'}{where}: {self.message}"


class ConfigError(Exception):
    """The file could be read and parsed, but its content is invalid."""

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        super().__init__(f"{source}: {len(issues)} error(s)")
        self.source = source
        self.issues = issues


class ConfigUnreadableError(Exception):
    """The file could not be read, is not YAML within the limits, or is not a mapping."""


class FieldValueError(ValueError):
    """Raised by a model validator to blame a field below the model.

    `path` is relative to the model that raises it (`("timeout",)` in a health
    check); the loader appends it to the model's own path, so the operator reads
    `services[0].health.timeout`, not `services[0].health`.
    """

    def __init__(self, path: Loc, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class CrossFieldError(ValueError):
    """A rule that spans sections, reported at `path` (absolute, like a pydantic loc)."""

    def __init__(self, path: Loc, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def format_path(loc: Loc) -> str:
    """('services', 0, 'health', 'timeout') -> 'services[0].health.timeout'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
