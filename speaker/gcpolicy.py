"""Garbage-collector policy: keep long-lived objects out of full collections.

At 10,000 services the supervisor holds about a million long-lived objects
(the validated config, health workers, BGP state). CPython's full (generation
2) collection walks all of them; allocation-heavy work such as a reconcile pass
or a status document triggers one now and then, and it held the loop for
0.5-1 s (measured: 572 ms in the middle of a status build, docs/performance.md).
`gc.freeze()` moves what exists now into the permanent generation, which
collections skip; objects are still freed by reference counting as usual.
"""

from __future__ import annotations

import gc


def freeze_long_lived(collect: bool = True) -> None:
    """Freeze every object alive now out of future collections.

    `collect`: first collect what is garbage already (one full collection: at
    start-up). After a reload pass False: no stall; the replaced config is freed by
    reference counting, only reference cycles in it stay until the next restart."""
    if collect:
        gc.collect()
    gc.freeze()
