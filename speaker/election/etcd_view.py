"""The etcd engine's mirror of the keys under its prefix, indexed by group.

Fed by the range read and the watch; candidate values are decoded once when they
change, so deciding 100 groups costs a dictionary lookup per group, not a scan
of every key.
"""

from __future__ import annotations

from collections.abc import Iterable

from speaker.election.etcd_client import KeyValue
from speaker.election.etcd_rules import Candidate


class View:
    """Keys under PREFIX/ as last read or watched."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.fresh = False
        """True while a range read and its watch are current."""
        self._kvs: dict[str, KeyValue] = {}
        self._cands: dict[str, dict[str, Candidate]] = {}

    def _split(self, key: str) -> tuple[str, str] | None:
        """(group, node) of a candidate key."""
        base = self.prefix + "/"
        if not key.startswith(base):
            return None
        parts = key[len(base):].split("/")
        if len(parts) == 3 and parts[1] == "candidates":
            return parts[0], parts[2]
        return None

    def reset(self, kvs: Iterable[KeyValue], prefix: str | None = None) -> None:
        """Replace everything (after a range read)."""
        if prefix is not None:
            self.prefix = prefix
        self._kvs.clear()
        self._cands.clear()
        for kv in kvs:
            self.put(kv)

    def put(self, kv: KeyValue) -> None:
        """A key was created or changed."""
        self._kvs[kv.key] = kv
        where = self._split(kv.key)
        if where is not None:
            cand = Candidate.decode(kv.value)
            group = self._cands.setdefault(where[0], {})
            if cand is None:
                group.pop(where[1], None)
            else:
                group[where[1]] = cand

    def delete(self, key: str) -> None:
        """A key was deleted (or its lease expired)."""
        self._kvs.pop(key, None)
        where = self._split(key)
        if where is not None:
            self._cands.get(where[0], {}).pop(where[1], None)

    def get(self, key: str) -> KeyValue | None:
        """One key, if present."""
        return self._kvs.get(key)

    def candidates(self, group: str) -> list[Candidate]:
        """Registered candidates of `group`."""
        return list(self._cands.get(group, {}).values())

    def candidate(self, group: str, node: str) -> Candidate | None:
        """`node`'s registration for `group`, decoded."""
        return self._cands.get(group, {}).get(node)

    def clear(self) -> None:
        """Forget everything (session ended)."""
        self.reset(())
        self.fresh = False
