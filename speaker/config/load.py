"""Read, parse and validate a config file into errors an operator can act on.

Every error carries a dotted path (`services[0].health.timeout`), the YAML line
when it can be found, and a plain message; never a traceback.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from speaker.config.errors import (
    ConfigError,
    ConfigIssue,
    ConfigUnreadableError,
    FieldValueError,
    Loc,
    format_path,
)
from speaker.config.model import AppConfig
from speaker.config.yamlsafe import SEXAGESIMAL, compose_root, parse_yaml, read_config_file

__all__ = ["ConfigError", "ConfigIssue", "ConfigUnreadableError", "format_path", "load_config",
           "parse_text", "validate"]


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
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
    raw = err.get("input")
    if isinstance(raw, str) and SEXAGESIMAL.match(raw) and err["type"].endswith("_parsing"):
        msg += (f" ({raw!r} is text here; YAML 1.1 would have read it as a base-60 number, "
                "edge-speaker does not)")
    return msg


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # union members show up as extra loc parts such as 'IPv4Address' or 'literal[...]'
    def is_union_tag(part: str | int) -> bool:
        return isinstance(part, str) and (part[:1].isupper() or "[" in part or "-" in part)

    return tuple(p for p in loc if not is_union_tag(p))


RootNode = yaml.Node | Callable[[], yaml.Node | None] | None
"""The YAML node tree (for line numbers), or a function that composes it when needed."""


class _Lines:
    """Line numbers of locs, composing the node tree on first use only (errors are rare)."""

    def __init__(self, root: RootNode) -> None:
        self._root = root

    def __call__(self, loc: Loc) -> int | None:
        if callable(self._root):
            self._root = self._root()
        return _line_of(self._root, loc)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a config is built: parsing and validating
    allocate hundreds of thousands of containers that all stay alive, and every
    collection would walk them again (it tripled the parse time of 10,000 services).
    A config builds no reference cycles worth collecting; the sizes are bounded by
    the limits of speaker.config.yamlsafe."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate(data: Any, source: str = "<config>", root: RootNode = None) -> AppConfig:
    """Validate parsed data; raise ConfigError listing every issue."""
    line_of = _Lines(root)
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
            message = _message(dict(err))
            inner = (err.get("ctx") or {}).get("error")
            if isinstance(inner, FieldValueError):
                loc, message = (*loc, *inner.path), inner.message
            key = (format_path(loc), message)
            if key not in seen:
                seen.add(key)
                issues.append(ConfigIssue(key[0], key[1], line_of(loc)))
        raise ConfigError(source, issues) from None
    issues.extend(ConfigIssue(format_path(c.path), c.message, line_of(c.path))
                  for c in config.cross_field_errors())
    if issues:
        raise ConfigError(source, issues)
    return config


def parse_text(text: str, source: str = "<config>") -> AppConfig:
    """Parse YAML text (within the limits of speaker.config.yamlsafe) and validate it."""
    with _gc_paused():
        data, root, duplicates = parse_yaml(text, source)
        if duplicates:
            raise ConfigError(source, duplicates)
        return validate(data, source, root if root is not None else lambda: compose_root(text))


def load_config(path: str | Path) -> AppConfig:
    """Read and validate a config file (ConfigUnreadableError / ConfigError on failure).

    The daemon (start and reload) and `speaker config check` both come here.
    """
    path = Path(path)
    return parse_text(read_config_file(path), str(path))
