"""Read a config file and parse its YAML within limits, never hanging or crashing.

The same code serves `speaker config check` and the daemon (start and reload),
so what the check accepts is exactly what the daemon loads. Limits:

- the file must be a regular file (not a FIFO, device, socket or directory);
  its type is checked before it is opened, and it is opened non-blocking;
- at most MAX_CONFIG_BYTES bytes of UTF-8;
- collections nested at most MAX_DEPTH deep;
- at most MAX_NODES values once aliases are expanded (no "billion laughs");
- no YAML tags (`!!python/object`, `!!binary`, `!foo`): plain YAML only;
- integers of at most MAX_INT_DIGITS digits;
- a duplicate key in any mapping is an error with its path (YAML would keep
  the last one silently);
- YAML 1.1 surprises are off: `1:30` is the string "1:30" (not 90 in base 60)
  and `2024-01-01` is a string, not a date.

libyaml (C) parses; the checks walk its event stream with explicit stacks, so
neither a 50,000-deep list nor a huge file can exhaust the Python stack. Plain
YAML within the limits is built in that same single pass (yamlonepass); anything
else takes the careful path here (limits scan naming path and line, node tree,
duplicate-key walk), so every refusal reads as it always did.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from speaker.config import yamlonepass
from speaker.config.errors import ConfigIssue, ConfigUnreadableError, Loc, format_path

MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""Largest config file read (16 MiB: about 300,000 backends)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists (a real config is under 10 deep)."""
MAX_NODES = 2_000_000
"""Most values a config may hold, counting every alias expansion."""
MAX_INT_DIGITS = 40
"""Longest integer literal (a 128-bit number has 39 digits)."""

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_DROPPED = {_INT, _FLOAT, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
# YAML 1.1 int and float without the base-60 forms (`1:30` -> 90).
_INT_RX = re.compile(r"""^(?:[-+]?0b[0-1_]+
                    |[-+]?0[0-7_]+
                    |[-+]?(?:0|[1-9][0-9_]*)
                    |[-+]?0x[0-9a-fA-F_]+)$""", re.X)
_FLOAT_RX = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
                    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X)
SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
"""What YAML 1.1 would read as a base-60 number; here it stays a string."""

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """libyaml's parser with the safe constructor and the resolvers above."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {
        first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._resolved: dict[str, str] = {}

    def resolve(self, kind: type[yaml.Node], value: Any, implicit: Any) -> str:
        """The tag of a node; plain scalars are memoised (a config repeats its keys and
        values thousands of times, and resolving is a chain of regular expressions)."""
        if kind is yaml.ScalarNode and implicit[0]:
            tag = self._resolved.get(value)
            if tag is None:
                tag = self._resolved[value] = super().resolve(kind, value, implicit)
            return tag
        resolved: str = super().resolve(kind, value, implicit)
        return resolved


_Loader.add_implicit_resolver(_INT, _INT_RX, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_RX, list("-+0123456789."))


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    digits = sum(c.isalnum() for c in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"integer of {digits} digits is too large (at most {MAX_INT_DIGITS})",
            node.start_mark)
    value: int = yaml.SafeLoader.construct_yaml_int(loader, node)
    return value


_Loader.add_constructor(_INT, _construct_int)


class YamlLimitError(ConfigUnreadableError):
    """The YAML breaks one of the limits (or uses a tag); names line and path."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def read_config_file(path: Path, limit: int = MAX_CONFIG_BYTES) -> str:
    """The text of a config file: a regular file of at most `limit` bytes of UTF-8.

    The type is checked before opening (a FIFO would block open() and read()), and
    the file is opened with O_NONBLOCK and checked again on the open descriptor.
    """
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise ConfigUnreadableError(f"{path}: cannot read: {_kind(before.st_mode)}, "
                                        "not a regular file")
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise ConfigUnreadableError(f"{path}: cannot read: {_kind(opened.st_mode)}, "
                                            "not a regular file")
            chunks, size = [], 0
            while size <= limit:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ConfigUnreadableError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size > limit:
        raise ConfigUnreadableError(f"{path}: cannot read: larger than the limit of "
                                    f"{limit} bytes")
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigUnreadableError(f"{path}: cannot read: not UTF-8 text "
                                    f"(byte {exc.start})") from None


@dataclass(slots=True)
class _Frame:
    is_map: bool
    anchor: str | None
    start: int
    count: int = 0
    key: Any = None


@dataclass(slots=True)
class _Scan:
    source: str
    stack: list[_Frame] = field(default_factory=list)
    nodes: int = 0
    anchors: dict[str, int] = field(default_factory=dict)

    def path(self) -> str:
        loc: list[str | int] = []
        for frame in self.stack:
            if frame.is_map:
                if frame.count % 2:
                    loc.append(str(frame.key))
            else:
                loc.append(frame.count)
        return format_path(tuple(loc)) or "<top>"

    def fail(self, event: yaml.Event, message: str) -> YamlLimitError:
        mark = event.start_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return YamlLimitError(f"{self.source}: {self.path()}{where}: {message}")

    def step(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.CollectionEndEvent):
            frame = self.stack.pop()
            if frame.anchor:
                self.anchors[frame.anchor] = self.nodes - frame.start
            self._done(None)
            return
        if not isinstance(event, yaml.NodeEvent):
            return
        if isinstance(event, yaml.AliasEvent):
            self.nodes += self.anchors.get(str(event.anchor), 1)
            self._check_size(event)
            self._done(None)
            return
        tag = getattr(event, "tag", None)
        if tag is not None:
            raise self.fail(event, f"YAML tag {tag!r} is not allowed: configs are plain YAML "
                            "(no tags)")
        self.nodes += 1
        self._check_size(event)
        if isinstance(event, yaml.CollectionStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise self.fail(event, f"nested deeper than the limit of {MAX_DEPTH}")
            self.stack.append(_Frame(isinstance(event, yaml.MappingStartEvent),
                                     event.anchor, self.nodes - 1))
            return
        if event.anchor:
            self.anchors[event.anchor] = 1
        self._done(getattr(event, "value", None))

    def _check_size(self, event: yaml.Event) -> None:
        if self.nodes > MAX_NODES:
            raise self.fail(event, f"more than {MAX_NODES} values (counting every alias "
                            "expansion): too large")

    def _done(self, value: Any) -> None:
        if self.stack:
            parent = self.stack[-1]
            if parent.is_map and parent.count % 2 == 0:
                parent.key = value
            parent.count += 1


def _yaml_error(source: str, exc: yaml.YAMLError) -> ConfigUnreadableError:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigUnreadableError(f"{source}: not valid YAML{where}: {problem}")


def _breaks_limits(text: str) -> bool:
    """One tight pass over libyaml's events: does the text use a tag, nest deeper than
    MAX_DEPTH or expand to more than MAX_NODES values? Stops at the first breach."""
    loader = _Loader(text)
    depth = nodes = 0
    sizes: dict[str, int] = {}
    starts: list[tuple[str | None, int]] = []
    scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
    opens = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    closes = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    get = loader.get_event
    try:
        while loader.check_event():
            event = get()
            kind = type(event)
            if kind is scalar:
                if event.tag is not None:
                    return True
                nodes += 1
                if event.anchor:
                    sizes[event.anchor] = 1
            elif kind in opens:
                depth += 1
                if event.tag is not None or depth > MAX_DEPTH:
                    return True
                starts.append((event.anchor, nodes))
                nodes += 1
            elif kind in closes:
                depth -= 1
                anchor, start = starts.pop()
                if anchor:
                    sizes[anchor] = nodes - start
            elif kind is alias:
                nodes += sizes.get(event.anchor, 1)
            if nodes > MAX_NODES:
                return True
    finally:
        loader.dispose()
    return False


def _scan_events(text: str, source: str) -> None:
    """Raise YamlLimitError, naming path and line, if the text breaks a limit."""
    if not _breaks_limits(text):
        return
    scan = _Scan(source)  # slower, keeps the path: runs only to describe the breach
    loader = _Loader(text)
    try:
        while loader.check_event():
            scan.step(loader.get_event())
    finally:
        loader.dispose()


def duplicate_keys(root: yaml.Node) -> list[ConfigIssue]:
    """Every key given twice in one mapping, at the path of the second one."""
    issues: list[ConfigIssue] = []
    seen_nodes: set[int] = set()
    todo: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while todo:
        node, loc = todo.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, Any], int] = {}
            for key, value in node.value:
                child = (*loc, str(key.value)) if isinstance(key, yaml.ScalarNode) else loc
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    ident = (key.tag, key.value)
                    if ident in first:
                        issues.append(ConfigIssue(
                            format_path(child), f"key {key.value!r} given twice in one mapping "
                            f"(first at line {first[ident]}); YAML would silently keep only "
                            "the last one", key.start_mark.line + 1))
                    first.setdefault(ident, key.start_mark.line + 1)
                todo.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return sorted(issues, key=lambda i: (i.line or 0, i.path))


def parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None, list[ConfigIssue]]:
    """(data, root node, duplicate-key issues); ConfigUnreadableError when not YAML or
    beyond a limit.

    Plain YAML within the limits takes one pass over libyaml's events
    (speaker.config.yamlonepass) and comes back without a node tree (root None: call
    compose_root for line numbers when there are errors to place). Anything else takes
    the careful path below, which words every refusal with its path and line.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigUnreadableError(f"{source}: larger than the limit of {MAX_CONFIG_BYTES} "
                                    "bytes")
    loader = _Loader(text)
    try:
        data = yamlonepass.build(loader, MAX_DEPTH, MAX_NODES)
    finally:
        loader.dispose()
    if data is not yamlonepass.FALLBACK:
        return data, None, []
    return _parse_yaml_carefully(text, source)


def compose_root(text: str) -> yaml.Node | None:
    """The node tree of a text that parse_yaml accepted (for the lines of errors)."""
    loader = _Loader(text)
    try:
        root: yaml.Node | None = loader.get_single_node()
    finally:
        loader.dispose()
    return root


def _parse_yaml_carefully(text: str, source: str
                          ) -> tuple[Any, yaml.Node | None, list[ConfigIssue]]:
    try:
        _scan_events(text, source)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return None, None, []
            issues = duplicate_keys(root)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # a constructor refusing a value libyaml accepted; never a traceback
        raise ConfigUnreadableError(f"{source}: not valid YAML: {exc}") from None
    return data, root, issues
