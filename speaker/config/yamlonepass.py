"""Build a config's Python values in one pass over libyaml's events, within the limits.

The fast path of speaker.config.yamlsafe.parse_yaml. One loop over the event
stream enforces what the limits scan enforces (no tags, depth at most MAX_DEPTH,
at most MAX_NODES values counting every alias expansion, stopping at the first
breach), refuses duplicate keys, and constructs the values at the same time: no
node tree, no second parse.

It never reports an error itself. Whenever the input is anything but plain,
valid YAML within the limits (a breach, a tag, a duplicate or unhashable key, a
merge key `<<`, an alias to an unfinished or unknown anchor, several documents,
a value the constructors refuse, a libyaml error), it returns FALLBACK and the
caller runs the careful path (limits scan with paths, composed node tree,
duplicate-key walk), which words every error exactly as before. The counts below
mirror yamlsafe._breaks_limits event for event, so a breach seen here is always
found and described there.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

_MERGE: Final = "tag:yaml.org,2002:merge"
_STR: Final = "tag:yaml.org,2002:str"


class _Fallback:
    """Marker: take the careful path."""


FALLBACK: Final = _Fallback()


def _resolve(loader: Any, event: yaml.ScalarEvent) -> Any:
    """The value of a plain scalar (resolved by its text, as the careful path does)."""
    value = event.value
    tag = loader.resolve(yaml.ScalarNode, value, (True, False))
    if tag == _MERGE:
        return FALLBACK
    if tag == _STR:
        return value
    node = yaml.ScalarNode(tag, value)  # marks only matter for errors: FALLBACK then
    return loader.yaml_constructors[tag](loader, node)


def build(loader: Any, max_depth: int, max_nodes: int) -> Any:
    """The document's value, or FALLBACK. `loader` is a fresh yamlsafe loader."""
    try:
        return _build(loader, max_depth, max_nodes)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        return FALLBACK


def _build(loader: Any, max_depth: int, max_nodes: int) -> Any:  # noqa: PLR0911, PLR0912, PLR0915
    # one function on purpose: this loop runs once per event (hundreds of thousands)
    scalar_ev, alias_ev = yaml.ScalarEvent, yaml.AliasEvent
    map_start, seq_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
    map_end, seq_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    doc_start, stream_end = yaml.DocumentStartEvent, yaml.StreamEndEvent
    containers = (list, dict)
    # plain scalars by text (a config repeats `address`, `port`, `8080` thousands of
    # times; the values are immutable, so sharing them is safe)
    memo: dict[str, Any] = {}
    sizes: dict[str, int] = {}  # anchor -> values it expands to (finished anchors only)
    anchored: dict[str, Any] = {}  # anchor -> its value (finished anchors only)
    # the open collections below the innermost one: (container, is_map, key, anchor, start)
    stack: list[tuple[Any, bool, Any, str | None, int]] = []
    no_key = miss = FALLBACK
    top: Any = None  # the innermost open collection (None: at the document's top)
    top_is_map = False
    key: Any = no_key  # the innermost mapping's pending key
    anchor: str | None = None  # the innermost collection's anchor
    start = 0  # values counted when the innermost collection opened
    nodes = depth = documents = 0
    root: Any = None
    get = loader.get_event  # get alone: check_event first costs as much again per event
    while True:
        event = get()
        kind = type(event)
        if kind is scalar_ev:
            if event.tag is not None:
                return FALLBACK
            nodes += 1
            if event.implicit[0]:
                value = memo.get(event.value, miss)
                if value is miss:
                    value = memo[event.value] = _resolve(loader, event)
                    if value is FALLBACK:
                        return FALLBACK
            else:
                value = event.value  # quoted: always a string
            if event.anchor:
                sizes[event.anchor] = 1
                anchored[event.anchor] = value
        elif kind is map_start or kind is seq_start:
            depth += 1
            if event.tag is not None or depth > max_depth:
                return FALLBACK
            stack.append((top, top_is_map, key, anchor, start))
            top_is_map = kind is map_start
            top = {} if top_is_map else []
            key, anchor, start = no_key, event.anchor, nodes
            nodes += 1
            if nodes > max_nodes:
                return FALLBACK
            continue
        elif kind is map_end or kind is seq_end:
            depth -= 1
            if key is not no_key:
                return FALLBACK  # a key without a value: libyaml never does this
            value = top
            if anchor:
                sizes[anchor] = nodes - start
                anchored[anchor] = value
            top, top_is_map, key, anchor, start = stack.pop()
        elif kind is alias_ev:
            if event.anchor not in anchored:
                return FALLBACK  # unknown, or an alias inside its own anchor
            nodes += sizes[event.anchor]
            value = anchored[event.anchor]
        elif kind is doc_start:
            documents += 1
            if documents > 1:
                return FALLBACK
            continue
        elif kind is stream_end:
            break
        elif event is None:
            return FALLBACK  # past the end without a stream end: never expected
        else:
            continue  # stream start, document end
        if nodes > max_nodes:
            return FALLBACK
        # attach the finished value to the innermost open collection
        if not top_is_map:
            if top is None:
                root = value
            else:
                top.append(value)
        elif key is no_key:
            if type(value) in containers:
                return FALLBACK  # a collection as a key
            key = value
        elif key in top:
            return FALLBACK  # a duplicate: the careful path names both lines
        else:
            top[key] = value
            key = no_key
    return root
