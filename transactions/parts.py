"""Reading a report in parts at once, each part on a database connection of its own.

A window's per-customer sums (the range report) and per-pincode rankings (the top customers)
are one statement each; where the database reads such a statement slower than the same read
split in parts run at once (``sql.operations().reads_faster_in_parts``: MySQL/MariaDB read a
statement on one core; PostgreSQL plans the whole window as a sequential scan where a part is an
index-only scan), ``selectors`` splits it (customer ranges, groups of pincodes) and reads the
parts here: the first on the request's own thread and connection, the others on threads kept
for it, each with its database connection as a web server's threads keep theirs.

Each part is read in a snapshot of its own, all taken at once after the request began, so a
write answered before the request is in every part. Inside a transaction (a test case) the
other connections could not see its writes: the read is one statement there.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections

from .sql import operations


def at_once() -> int:
    """How many parts of a big read ``read_in_parts`` reads at once: ``settings.CDP_REPORT_PARTS``
    where that is faster than one statement (``reads_faster_in_parts``), else 1; 1 inside a
    transaction (see the module's text)."""
    if connection.in_atomic_block or not operations().reads_faster_in_parts:
        return 1
    return max(1, settings.CDP_REPORT_PARTS)


# Threads that read the parts of a report beside the request's own thread (``read_in_parts``),
# each keeping its database connection as a web server's threads do; made on first use.
_part_readers: ThreadPoolExecutor | None = None
_part_readers_lock = threading.Lock()


def read_in_parts(read, parts: list) -> list[list[tuple]]:
    """``read(part)`` of each part, in the parts' order: the first on this thread and
    connection, the others at the same time on threads with connections of their own. Each
    reads in a snapshot of its own, taken at the same moment: a write committed before the
    request is in every part."""
    global _part_readers
    replaced = None
    with _part_readers_lock:
        if _part_readers is None or _part_readers._max_workers < len(parts) - 1:
            replaced = _part_readers
            _part_readers = ThreadPoolExecutor(max_workers=max(1, len(parts) - 1), thread_name_prefix="cdp-report-part")
        elsewhere = [_part_readers.submit(_read_on_this_thread, read, part) for part in parts[1:]]
    if replaced is not None:  # more parts than before (a setting changed): the old threads end
        close_pool_connections(replaced)
    return [read(parts[0]), *(future.result() for future in elsewhere)]


def _read_on_this_thread(read, part) -> list[tuple]:
    # As a request does at its start: a connection broken or past its age is opened afresh.
    connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
    return read(part)


def close_part_readers() -> None:
    """End the threads that read reports' parts, their database connections closed (made again
    on the next read in parts). The test runners call it before they drop the test databases:
    PostgreSQL refuses to drop one while another session is connected to it."""
    global _part_readers
    with _part_readers_lock:
        pool, _part_readers = _part_readers, None
    if pool is not None:
        close_pool_connections(pool)


def close_pool_connections(pool: ThreadPoolExecutor) -> None:
    """Close each of the pool's threads' database connections (they belong to the thread that
    opened them), then shut the pool down. One task a thread: each waits at the barrier for
    the others, so no thread takes two."""
    workers = pool._max_workers
    all_there = threading.Barrier(workers)

    def close() -> None:
        try:
            all_there.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        connections.close_all()

    for future in [pool.submit(close) for _ in range(workers)]:
        future.result()
    pool.shutdown(wait=True)
