"""Python's cyclic garbage collector, paused while a big write holds its records in memory.

A JSON batch of 10,000 records, or a file import's chunks, makes hundreds of thousands of
objects (the parsed records, the validated ones, their texts) that all live until they are
written. The collector, set off every 700 allocations, walked them again and again while they
were being made, holding the GIL that the writers' threads wait for between statements. The
records hold no reference cycles; what does (an exception's traceback) is collected once the
collector runs again. Measured (docs/PERFORMANCE.md): 13% of an import worker's samples; a
batch over HTTP 5-7% faster with it paused (six pairs in turn, every pair faster).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_open_blocks = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Within it, the collector does not run on its own, whichever thread allocates; it is on
    again when the last of the blocks open at once (a web worker's threads each serve a batch)
    ends, if it was on when the first began. ``gc.collect()`` still collects when called."""
    global _open_blocks, _was_enabled
    with _lock:
        if _open_blocks == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _open_blocks += 1
    try:
        yield
    finally:
        with _lock:
            _open_blocks -= 1
            if _open_blocks == 0 and _was_enabled:
                gc.enable()
