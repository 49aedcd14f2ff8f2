"""A read-only mapping made of a large base dict and a few changes on top.

The desired IPVS table holds every dest (40,000 at 10,000 services x 4); a
backend flap changes one. Each pass must hand out an immutable table, and a
copy of the whole dict per pass would cost more than everything else the flap
does. `Layered` shares the base between passes and copies only the changes;
once the changes grow past a fraction of the base they are folded into a new
base (amortised: a fold costs one copy per that many changes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_GONE = object()


class Layered(Mapping[K, V], Generic[K, V]):
    """base overridden by changes (a change of _GONE deletes the key). Immutable:
    neither dict is modified after construction."""

    __slots__ = ("_base", "_changes", "_len")

    def __init__(self, base: dict[K, V], changes: dict[K, object], length: int) -> None:
        self._base = base
        self._changes = changes
        self._len = length

    def __getitem__(self, key: K) -> V:
        value = self._changes.get(key, self._base.get(key, _GONE))
        if value is _GONE:
            raise KeyError(key)
        return value  # type: ignore[return-value]  # not _GONE: a V

    def __contains__(self, key: object) -> bool:
        if key in self._changes:
            return self._changes[key] is not _GONE
        return key in self._base

    def __iter__(self) -> Iterator[K]:
        changes = self._changes
        if not changes:
            yield from self._base
            return
        for key in self._base:
            if changes.get(key, None) is not _GONE:
                yield key
        for key, value in changes.items():
            if value is not _GONE and key not in self._base:
                yield key

    def __len__(self) -> int:
        return self._len


class LayeredDict(Generic[K, V]):
    """The mutable side: edit with set/pop, publish an immutable view with view()."""

    def __init__(self, base: dict[K, V], fold_at: float = 0.05) -> None:
        self._base = base
        self._changes: dict[K, object] = {}
        self._len = len(base)
        self._fold_at = fold_at

    def set(self, key: K, value: V) -> None:
        if key not in self:
            self._len += 1
        self._changes[key] = value

    def pop(self, key: K) -> None:
        if key in self:
            self._len -= 1
            self._changes[key] = _GONE

    def __contains__(self, key: K) -> bool:
        if key in self._changes:
            return self._changes[key] is not _GONE
        return key in self._base

    def view(self) -> Layered[K, V]:
        """An immutable mapping of the current content (O(changes) to make)."""
        if len(self._changes) > self._fold_at * max(len(self._base), 64):
            base = dict(self._base)
            for key, value in self._changes.items():
                if value is _GONE:
                    base.pop(key, None)
                else:
                    base[key] = value  # type: ignore[assignment]  # not _GONE: a V
            self._base, self._changes = base, {}
        return Layered(self._base, dict(self._changes), self._len)
