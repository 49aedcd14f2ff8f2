"""Read, parse and validate a config file into errors an operator can act on.

Every error carries a dotted path (`services[0].health.timeout`), the YAML line
when it can be found, and a plain message; never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from speaker.config.model import AppConfig

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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
    """The file could not be read, or is not YAML (or not a mapping)."""


def format_path(loc: tuple[str | int, ...]) -> str:
    """('services', 0, 'health', 'timeout') -> 'services[0].health.timeout'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _line_of(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """Line (1-based) of the deepest YAML node found along `loc`."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            if node is None:
                # the key itself is missing or unknown: point at the key when it exists
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if part < len(node.value) else None
        else:
            break
    return node.start_mark.line + 1 if node is not None else line


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err["type"] == "extra_forbidden":
        return "unknown field (not part of the config schema; check the spelling)"
    if err["type"] == "missing":
        return "required field is missing"
    return msg


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # union members show up as extra loc parts such as 'IPv4Address' or 'literal[...]'
    def is_union_tag(part: str | int) -> bool:
        return isinstance(part, str) and (part[:1].isupper() or "[" in part or "-" in part)

    return tuple(p for p in loc if not is_union_tag(p))


def validate(data: Any, source: str = "<config>", root: yaml.Node | None = None) -> AppConfig:
    """Validate parsed data; raise ConfigError listing every issue."""
    if not isinstance(data, dict):
        raise ConfigUnreadableError(f"{source}: the top level must be a mapping of sections")
    issues: list[ConfigIssue] = []
    try:
        config = AppConfig.model_validate(data, context={"defer_cross_field": True})
    except ValidationError as exc:
        seen: set[tuple[str, str]] = set()
        for err in exc.errors():
            raw = tuple(err["loc"])
            # an unknown key is the user's own text: keep it even if it looks like a tag
            loc = (_clean_loc(raw[:-1]) + raw[-1:] if err["type"] == "extra_forbidden"
                   else _clean_loc(raw))
            key = (format_path(loc), _message(dict(err)))
            if key not in seen:
                seen.add(key)
                issues.append(ConfigIssue(key[0], key[1], _line_of(root, loc)))
        raise ConfigError(source, issues) from None
    issues.extend(ConfigIssue(format_path(c.path), c.message, _line_of(root, c.path))
                  for c in config.cross_field_errors())
    if issues:
        raise ConfigError(source, issues)
    return config


def parse_text(text: str, source: str = "<config>") -> AppConfig:
    """Parse YAML text and validate it."""
    try:
        data = yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader (C or Python)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigUnreadableError(f"{source}: not valid YAML{where}: {problem}") from None
    try:
        return validate(data, source)
    except ConfigError as exc:
        # Only now pay for a second parse that keeps line numbers for the messages.
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        issues = [ConfigIssue(i.path, i.message, _line_of(root, _loc_of(i.path)))
                  for i in exc.issues]
        raise ConfigError(source, issues) from None


def _loc_of(path: str) -> tuple[str | int, ...]:
    """'services[0].health.timeout' -> ('services', 0, 'health', 'timeout')."""
    loc: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        if name:
            loc.append(name)
        loc.extend(int(i) for i in filter(None, rest.replace("]", "").split("[")))
    return tuple(loc)


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a config file (ConfigUnreadableError / ConfigError on failure)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigUnreadableError(f"{path}: cannot read: {reason}") from None
    return parse_text(text, str(path))
