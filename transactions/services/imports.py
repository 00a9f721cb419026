"""File imports: a queued upload read, validated and stored chunk by chunk."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import random
import sys
import time
import uuid
from array import array
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from ..models import ImportJob, RejectedRow
from .. import import_files
from . import bulk
from .collector import collector_paused
from ..validation import RecordInvalid, TransactionRecord, parse_transaction_record
from ..parts import close_pool_connections
from ..sql import operations
from .ingest import MAX_INGEST_ATTEMPTS, IngestOutcome, ingest_transactions
from .totals import fold_summary_deltas

logger = logging.getLogger(__name__)


BULK_BATCH_SIZE = 2500
IMPORT_SWITCH_INTERVAL = 0.0005  # seconds
# A rejected row keeps its line as sent, up to import_files.MAX_LINE_BYTES (1 MiB): a chunk's
# over-long lines written in one INSERT passed max_allowed_packet (16 MiB on MariaDB), and the
# server refused the chunk (and dropped the connection) on every retry, so the import never
# ended. An INSERT of rejected rows carries at most this many characters (4 MiB of UTF-8), or a
# single row; one row is at most ~6 MiB (a 1 MiB line of undecodable bytes, as sent and masked).
REJECTED_ROW_CHARS_PER_STATEMENT = 1024 * 1024
# A chunk that loses this many attempts in a row to other writers is split in two (see
# _import_chunk); a single row keeps the ingest's full retries, then pauses up to this long.
CHUNK_ATTEMPTS_BEFORE_SPLIT = 3
# How often an import runs Python's cyclic garbage collector (see _collected_between).
COLLECT_EVERY_CHUNKS = 10
SINGLE_ROW_PAUSE_CAP_SECONDS = 1.0
# A chunk's parts take customers in blocks of this many consecutive ids (see part_of).
CUSTOMERS_PER_BLOCK = 1024


# --- File imports -------------------------------------------------------------------------


class ImportTakenOver(Exception):
    """Another run now owns the import (this one was presumed dead); stop without writing."""


def start_import(*, owner, uploaded_file, file_format: str | None = None) -> ImportJob:
    """Store an uploaded file and queue its import; the rows are read later by the worker."""
    from ..tasks import run_import

    job = ImportJob(
        owner=owner,
        original_name=uploaded_file.name[:255],
        format=file_format or import_format_for(uploaded_file.name),
        size_bytes=uploaded_file.size,
    )
    job.file.save(uploaded_file.name, uploaded_file, save=False)
    job.save()
    # Enqueued once the job row is committed, so the worker never looks for a row it can't see.
    transaction.on_commit(lambda: run_import.enqueue(job_id=job.pk))
    return job


def import_format_for(file_name: str) -> str:
    """``csv`` or ``ndjson`` from the file name's extension; ValueError when it tells neither."""
    extension = file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    formats = {"csv": "csv", "ndjson": "ndjson", "jsonl": "ndjson"}
    if extension not in formats:
        raise ValueError("Name the format (csv or ndjson), or upload a .csv, .ndjson or .jsonl file.")
    return formats[extension]


def run_import(*, job_id: int) -> None:
    """Import a queued (or interrupted) job's file to the end, chunk by chunk.

    Each chunk's transactions, rejected rows, counts and resume marker are committed together,
    so a run that dies part-way leaves the job exactly at the end of its last chunk.
    """

    runner = uuid.uuid4().hex
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED):
            return
        job.status = ImportJob.Status.RUNNING
        job.runner = runner
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "runner", "started_at", "heartbeat_at"])
    try:
        with job.file.open("rb") as file:
            import_files.sniff(file)
            if job.format == ImportJob.Format.CSV:
                layout = import_files.read_csv_layout(file)
                rows = import_files.csv_rows(file, layout, offset=job.byte_offset, line_number=job.line_number)
            else:
                rows = import_files.ndjson_rows(file, offset=job.byte_offset, line_number=job.line_number)
            _import_rows(job_id=job.pk, runner=runner, rows=rows, file_format=job.format, resume=job.chunk_in_progress)
    except import_files.FileUnreadable as exc:
        _finish_import(job_id=job.pk, runner=runner, error=str(exc))
        return
    except ImportTakenOver:
        return
    except OSError as exc:
        _finish_import(job_id=job.pk, runner=runner, error=f"The uploaded file cannot be read ({exc.strerror}).")
        return
    except DatabaseError:
        # The database went away: the job stays running at its last committed chunk, and the
        # next worker start resumes it once the database is back.
        raise
    except Exception:
        # Anything else would fail again on every retry: say so rather than leave the job hanging.
        logger.exception("import %s failed", job.pk)
        _finish_import(
            job_id=job.pk, runner=runner,
            error="The import stopped on an internal error; the rows before it are stored. "
                  "Please report the import id to the administrators.",
        )
        return
    _finish_import(job_id=job.pk, runner=runner, error=None)


def _import_rows(
    *, job_id: int, runner: str, rows: Iterator[import_files.FileRow], file_format: str, resume: dict | None = None,
) -> None:
    """Read, validate and store the rows chunk by chunk, in file order.

    Each chunk is split into parts by customer (``_split``), written at once by as many
    writer threads (``_writers``), each on a connection of its own: no two parts share a
    customer, so they never wait for each other's row locks, and the server works on both
    cores. The next chunk is read and validated meanwhile: the driver releases the GIL while
    it waits for the server, so reading overlaps writing.

    Each part index is a stream of its own: one thread writes part i of every chunk, in file
    order, and goes on to part i of the next chunk as soon as it is done with this one, while
    the other parts of this chunk may still be written (two chunks in flight at most). Part i
    holds the same customers in every chunk of one split (``part_of``), so a customer's rows
    are still stored in file order and the streams never wait for each other's row locks.
    With every chunk waited for whole, each writer stood idle at the end of a chunk until the
    slower part was done: 4-5 s of a 30 s import at a million rows (docs/PERFORMANCE.md). The
    resume marker keeps how far each part of both chunks is (``_save_progress``).

    Inside an atomic block (a test case) the chunks are written inline, whole, since another
    thread's connection could not see the caller's uncommitted rows. ``resume``: the job's
    ``chunk_in_progress``, from a run that stopped with some parts of a chunk (or two) committed.
    """
    ways = _writers()
    chunks = _collected_between(
        _validated_chunks(job_id=job_id, rows=rows, file_format=file_format, ways=ways, resume=resume)
    )
    if connection.in_atomic_block:
        for chunk in chunks:
            _write_chunk(job_id=job_id, runner=runner, chunk=chunk, submit=_run_now)
        return
    # Each time a query returns, a writer needs the GIL back from the reading thread; by
    # default it waits up to 5 ms for it, a dozen times a chunk.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, IMPORT_SWITCH_INTERVAL))
    streams: dict[int, ThreadPoolExecutor] = {}  # a writer thread for each part index

    def submit(function, /, *, part_index: int, **kwargs) -> Future:
        if part_index not in streams:
            streams[part_index] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job_id}-{part_index}")
        return streams[part_index].submit(function, part_index=part_index, **kwargs)

    older: list[Future] = []  # the parts of the chunk before the last one submitted
    newer: list[Future] = []  # the parts of the last one
    try:
        previous: _Chunk | None = None
        for chunk in chunks:
            # An error (database gone, taken over) stops the run here.
            _wait_for(older)  # two chunks in flight at most
            if previous is not None and (previous.ways, previous.block) != (chunk.ways, chunk.block):
                # Split otherwise (a resumed chunk split by older settings): its part i holds
                # other customers, so the chunk before is written whole first.
                _wait_for(newer)
            elif previous is not None:
                chunk.before = previous.progress()
            older, newer = newer, _write_chunk(job_id=job_id, runner=runner, chunk=chunk, submit=submit)
            previous = chunk
        _wait_for(older)
        _wait_for(newer)
    finally:
        for future in older + newer:
            future.cancel()  # after an error: no part starts anew (one being written ends as it will)
        for stream in streams.values():
            close_pool_connections(stream)
        sys.setswitchinterval(switch_interval)


def _collected_between(chunks: Iterator[_Chunk]) -> Iterator[_Chunk]:
    """The chunks, with Python's cyclic garbage collector run every ``COLLECT_EVERY_CHUNKS``
    chunks instead of on its own: a chunk makes hundreds of thousands of objects that live
    until it is written, and the collector, set off every 700 allocations, walked them again
    and again (13% of the worker's samples, holding the GIL the writers wait for). A collection
    walks the objects alive since the one before, about two chunks' worth however far apart
    they are, so once every few chunks costs that much less (once a chunk was still 5% of the
    samples). Records hold no cycles; what does (an exception's traceback) waits that long."""
    with collector_paused():
        for number, chunk in enumerate(chunks):
            if number % COLLECT_EVERY_CHUNKS == 0:
                gc.collect(1)
            yield chunk


def _writers() -> int:
    """How many parts each chunk is written in at once (``CDP_IMPORT_WRITERS``): one inside an
    atomic block, and where the database writes one transaction at a time (SQLite)."""
    if connection.in_atomic_block or not operations().has_row_locks:
        return 1
    return max(1, settings.CDP_IMPORT_WRITERS)


def _run_now(function, /, **kwargs) -> None:
    function(**kwargs)


def _write_chunk(*, job_id: int, runner: str, chunk: _Chunk, submit) -> list:
    """Each part of the chunk left to write handed to ``submit`` (its part index's stream, or
    ``_run_now``)."""
    return [submit(_import_chunk, job_id=job_id, runner=runner, chunk=chunk, part_index=index, part=part)
            for index, part in chunk.parts]


def _wait_for(futures: list[Future]) -> None:
    """Wait for every part of a chunk, then raise the first part's error, if any."""
    errors = []
    for future in futures:
        try:
            future.result()
        except BaseException as exc:  # noqa: B036 - a part "killed" in a test is re-raised below
            errors.append(exc)
    if errors:
        raise errors[0]


@dataclass(slots=True)
class _ValidatedChunk:
    """A chunk's rows in file order, each a record to store or a rejected row, and where each
    ends in the file (so that the chunk can be split at any row)."""

    rows: list[TransactionRecord | RejectedRow]
    # Just past each row: its byte offset and line number (arrays: 16 bytes a row, not 100).
    end_offsets: array
    end_lines: array
    # The records, prepared for the set-based writer (``bulk.prepared``) by the thread that
    # validated them, so that the writer thread has only the database's work left.
    prepared_records: Sequence[TransactionRecord] | None = None

    @property
    def records(self) -> Sequence[TransactionRecord]:
        if self.prepared_records is not None:
            return self.prepared_records
        return [row for row in self.rows if not isinstance(row, RejectedRow)]

    def prepare(self) -> _ValidatedChunk:
        self.prepared_records = bulk.prepared(self.records)
        return self

    @property
    def rejected(self) -> list[RejectedRow]:
        return [row for row in self.rows if isinstance(row, RejectedRow)]

    @property
    def row_count(self) -> int:
        return len(self.rows)

    @property
    def end_offset(self) -> int:
        return self.end_offsets[-1]

    @property
    def end_line(self) -> int:
        return self.end_lines[-1]

    def halves(self) -> tuple[_ValidatedChunk, _ValidatedChunk]:
        middle = len(self.rows) // 2
        return (_ValidatedChunk(self.rows[:middle], self.end_offsets[:middle], self.end_lines[:middle]),
                _ValidatedChunk(self.rows[middle:], self.end_offsets[middle:], self.end_lines[middle:]))


@dataclass(slots=True)
class _Chunk:
    """A chunk of the file split into parts by customer, and what its resume marker needs.

    Each customer's rows go to part ``part_of(customer_id, ways=ways, block=block)``; part 0
    also holds the rejected rows. The split depends on the rows, ``ways`` and ``block`` alone,
    so a run that resumes a chunk (from its ``progress()``, kept in the job) splits it again
    the same way.
    """

    end_offset: int
    end_line: int
    row_count: int  # all its rows, those committed before a resume too
    ways: int
    block: int
    last_lines: dict[str, int]  # each part's last row's end line, by part index (as JSON keys)
    done: dict[str, int]  # each part's line committed through before a resume, by part index
    parts: list[tuple[int, _ValidatedChunk]]  # the parts left to write, with their index
    # The progress of the chunk before, where that one was still being written when this one
    # was handed to the writers (see _save_progress).
    before: dict | None = None

    def progress(self) -> dict:
        """This chunk's entry in the job's ``chunk_in_progress`` before this run commits any of it."""
        return {"end_offset": self.end_offset, "end_line": self.end_line, "rows": self.row_count,
                "ways": self.ways, "block": self.block, "last": dict(self.last_lines), "done": dict(self.done)}


def part_of(customer_id: int, *, ways: int, block: int) -> int:
    """Which of a chunk's ``ways`` parts holds a customer's rows: customers go in blocks of
    ``block`` consecutive ids, the blocks to the parts in turn. Whole blocks, not every
    ``ways``-th id: parts of neighbouring ids shared the same index pages (of the customers,
    their per-pincode totals and the transactions' customer indexes), and their writers
    waited for each other's page latches. Blocks of 1,024 took 8% less of the server's CPU for
    the 1M-row import, less in each of four interleaved pairs (docs/PERFORMANCE.md); a file
    whose customers all fall in one block is written in one part. A chunk that resumes one
    from before the blocks (no ``block`` in its progress) is split by block 1, as it was."""
    return customer_id // block % ways


def _validated_chunks(
    *, job_id: int, rows: Iterator[import_files.FileRow], file_format: str, ways: int, resume: dict | None,
) -> Iterator[_Chunk]:
    """The file's rows in chunks of CDP_IMPORT_CHUNK_ROWS, each row validated as it is read: only
    the validated chunks stay in memory (a file row with its raw line takes more than its record).
    A resumed chunk (or two, see ``_progress_entries``) is read and split as the run that started
    it did, without its committed rows."""
    resumed = _progress_entries(resume)
    while True:
        size, split_ways, block, done = settings.CDP_IMPORT_CHUNK_ROWS, ways, CUSTOMERS_PER_BLOCK, {}
        if resumed:
            entry = resumed.pop(0)
            size, split_ways, block, done = entry["rows"], entry["ways"], entry.get("block", 1), entry["done"]
        chunk = _validated_chunk(job_id=job_id, chunk=islice(rows, size), file_format=file_format)
        if not chunk.rows:
            return
        yield _split(chunk, ways=split_ways, block=block, done=done)


def _split(chunk: _ValidatedChunk, *, ways: int, block: int, done: dict[str, int]) -> _Chunk:
    """The chunk in ``ways`` parts by customer (see ``_Chunk``), less the rows of each part up
    to the line ``done`` says that part was committed through. (Should none be left, the next
    chunk's first commit moves the marker past this one, as it replaces its progress.)"""
    parts = [_ValidatedChunk([], array("q"), array("q")) for _ in range(ways)]
    for row, end_offset, end_line in zip(chunk.rows, chunk.end_offsets, chunk.end_lines):
        part = parts[0 if isinstance(row, RejectedRow) else part_of(row.customer_id, ways=ways, block=block)]
        part.rows.append(row)
        part.end_offsets.append(end_offset)
        part.end_lines.append(end_line)
    last_lines = {str(index): part.end_lines[-1] for index, part in enumerate(parts) if part.rows}
    left = []
    for index, part in enumerate(parts):
        through = done.get(str(index), 0)
        if through:
            keep = [k for k, line in enumerate(part.end_lines) if line > through]
            part = _ValidatedChunk([part.rows[k] for k in keep], array("q", [part.end_offsets[k] for k in keep]),
                                   array("q", [part.end_lines[k] for k in keep]))
        if part.rows:
            left.append((index, part.prepare()))
    return _Chunk(chunk.end_offset, chunk.end_line, chunk.row_count, ways, block, last_lines, dict(done), left)


def _validated_chunk(*, job_id: int, chunk: Iterable[import_files.FileRow], file_format: str) -> _ValidatedChunk:
    rows: list[TransactionRecord | RejectedRow] = []
    end_offsets, end_lines = array("q"), array("q")
    for row in chunk:
        end_offsets.append(row.end_offset)
        end_lines.append(row.end_line)
        if row.problem is None:
            try:
                rows.append(parse_transaction_record(row.values))
                continue
            except RecordInvalid as exc:
                row.problem = rejection_reason(exc.errors)
        # PostgreSQL text cannot hold NUL; a binary byte past the sniffed head would otherwise
        # fail the chunk and leave the job running for ever. Shown as undecodable bytes are.
        raw = row.raw.replace("\x00", "\ufffd")
        raw_masked = import_files.masked_raw(row, file_format=file_format).replace("\x00", "\ufffd")
        rows.append(
            RejectedRow(job_id=job_id, line_number=row.line_number, raw=raw, raw_masked=raw_masked, reason=row.problem)
        )
    return _ValidatedChunk(rows, end_offsets, end_lines)


def _import_chunk(*, job_id: int, runner: str, chunk: _Chunk, part_index: int, part: _ValidatedChunk) -> None:
    """Store one part of a chunk (its records and rejected rows) and note it in the resume
    marker, all or nothing.

    A part that keeps losing to other writers for its customers (lock waits and deadlocks on
    one server, certification failures on a Galera cluster, where a large transaction loses to
    any small write committed on another node while it runs) is split in two, each half
    committed on its own, down to single rows: the import yields to the other writers instead
    of starving. The counts come out the same, since a split only moves the commit points.
    """
    single_row = part.row_count == 1
    rounds = 0
    while True:
        try:
            _store_part(job_id=job_id, runner=runner, chunk=chunk, part_index=part_index, part=part,
                        max_attempts=MAX_INGEST_ATTEMPTS if single_row else CHUNK_ATTEMPTS_BEFORE_SPLIT)
            return
        except (OperationalError, IntegrityError) as exc:
            if isinstance(exc, OperationalError) and not operations().is_transient(exc):
                raise
            if not single_row:
                logger.warning("import %s: a part of %s rows lost %r; splitting it", job_id, part.row_count, exc)
                for half in part.halves():
                    _import_chunk(job_id=job_id, runner=runner, chunk=chunk, part_index=part_index, part=half)
                return
            # One row, still losing after a full round of retries: wait longer and try again. A
            # run that stalls here past CDP_IMPORT_STALE_SECONDS is taken over by another worker.
            rounds += 1
            logger.warning("import %s: line %s lost %s rounds of retries (%r)", job_id, part.end_line, rounds, exc)
            time.sleep(random.uniform(0, min(SINGLE_ROW_PAUSE_CAP_SECONDS, 0.05 * 2**rounds)))


def _store_part(*, job_id: int, runner: str, chunk: _Chunk, part_index: int, part: _ValidatedChunk, max_attempts: int) -> None:
    records, rejected = part.records, part.rejected

    def save_progress(outcomes: list[IngestOutcome]) -> None:
        _insert_rejected_rows(rejected)
        _save_progress(job_id=job_id, runner=runner, chunk=chunk, part_index=part_index, part=part,
                       statuses=[outcome.status for outcome in outcomes], rejected=len(rejected))

    if records:
        # A part is stored set-based wherever the database has a bulk loader, whatever its size
        # (services.bulk): so the import has one path per database, at any chunk size.
        ingest_transactions(records=records, before_commit=save_progress, max_attempts=max_attempts, in_bulk=True)
    else:
        with transaction.atomic():
            save_progress([])


def _save_progress(
    *, job_id: int, runner: str, chunk: _Chunk, part_index: int, part: _ValidatedChunk, statuses: list[str],
    rejected: int,
) -> None:
    """In the transaction storing a part (or part of one): its counts (``rejected``: its
    rejected rows, counted by the caller, which stores them), and the resume marker.

    The marker (``byte_offset``, ``line_number``) moves past a chunk once every part of it is
    committed; until then ``chunk_in_progress`` says how far each part is, since the parts
    commit in any order, for the chunk after the marker and, while that one is not whole, the
    chunk after it (whose part i is written once part i of the first is: ``_import_rows``). The
    job's row lock orders the parts' commits.
    """
    job = ImportJob.objects.select_for_update().only("runner", "line_number", "chunk_in_progress").get(pk=job_id)
    if job.runner != runner:
        raise ImportTakenOver()
    entries = [entry for entry in _progress_entries(job.chunk_in_progress) if entry["end_line"] > job.line_number]
    if not any(entry["end_line"] == chunk.end_line for entry in entries):  # this chunk's first commit
        before = chunk.before
        if before is not None and before["end_line"] > job.line_number and all(
                entry["end_line"] != before["end_line"] for entry in entries):
            # The chunk before is not whole yet, and none of it is committed (this part's
            # stream had nothing of it to write): the marker needs it first.
            entries.append(dict(before, done=dict(before["done"])))
        entries.append(chunk.progress())
        entries.sort(key=lambda entry: entry["end_line"])
    next(entry for entry in entries if entry["end_line"] == chunk.end_line)["done"][str(part_index)] = part.end_line
    marker: dict = {}
    while entries and all(entries[0]["done"].get(index, 0) >= last for index, last in entries[0]["last"].items()):
        whole = entries.pop(0)
        marker.update(byte_offset=whole["end_offset"], line_number=whole["end_line"])
    marker["chunk_in_progress"] = _stored_progress(entries)
    ImportJob.objects.filter(pk=job_id).update(
        rows_processed=F("rows_processed") + part.row_count,
        created=F("created") + statuses.count("created"),
        duplicates=F("duplicates") + statuses.count("duplicate"),
        conflicts=F("conflicts") + statuses.count("conflict"),
        rejected=F("rejected") + rejected,
        heartbeat_at=timezone.now(),
        **marker,
    )


def _progress_entries(stored: dict | None) -> list[dict]:
    """The chunks a job's ``chunk_in_progress`` describes, in file order: the chunk after its
    resume marker, and the one after that under ``"next"`` (see ``_save_progress``)."""
    if not stored:
        return []
    first = dict(stored)
    following = first.pop("next", None)
    return [first] if following is None else [first, following]


def _stored_progress(entries: list[dict]) -> dict | None:
    """``chunk_in_progress`` for these chunks, in file order (``_progress_entries`` again)."""
    if len(entries) > 2:
        raise AssertionError("an import has at most two chunks in flight")
    return None if not entries else dict(entries[0], next=entries[1]) if len(entries) == 2 else entries[0]


def _insert_rejected_rows(rows: Sequence[RejectedRow]) -> None:
    """INSERT the rows in statements of at most REJECTED_ROW_CHARS_PER_STATEMENT characters."""
    statement: list[RejectedRow] = []
    characters = 0
    for row in rows:
        size = len(row.raw) + len(row.raw_masked) + len(row.reason)
        if statement and characters + size > REJECTED_ROW_CHARS_PER_STATEMENT:
            RejectedRow.objects.bulk_create(statement, batch_size=BULK_BATCH_SIZE)
            statement, characters = [], 0
        statement.append(row)
        characters += size
    RejectedRow.objects.bulk_create(statement, batch_size=BULK_BATCH_SIZE)


def rejection_reason(errors: dict[str, list[str]]) -> str:
    """The API's validation messages for one record, on one line: ``field: message; ...``."""
    return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())


def _finish_import(*, job_id: int, runner: str, error: str | None) -> None:

    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.runner != runner:
            return
        job.status = ImportJob.Status.FAILED if error else ImportJob.Status.DONE
        job.error = error or ""
        job.finished_at = timezone.now()
        job.heartbeat_at = job.finished_at
        job.save(update_fields=["status", "error", "finished_at", "heartbeat_at"])
    # The file's month and pincode deltas into the totals, so the tail readers add stays short.
    fold_summary_deltas()


def requeue_stale_imports(*, stale_after: dt.timedelta) -> list[int]:
    """Queue again the imports nobody is running; the ids of those queued.

    That is a running import whose worker stopped reporting for ``stale_after`` (killed, its
    machine or database node lost) and, with the database task queue, an import with no task
    waiting or running: its task ended while the import had not (FAILED: a database error
    outlasted its retries), or it was queued ``stale_after`` ago and its task is gone. The new
    run takes the job over from the last committed chunk; should the old run still be alive
    after all, its next commit finds another runner on the job and stops.

    Each job is queued in the transaction that moves its heartbeat from the value seen here,
    so two workers doing this at once queue it once: on one server the second waits for the
    first's row lock and then matches no row; on a Galera cluster one loses certification.
    Run ``clean_orphaned_import_tasks`` first, so that a dead worker's task stops counting.
    """
    from ..tasks import run_import

    cutoff = timezone.now() - stale_after
    tasks = _live_import_tasks()  # read before the jobs: a job starts running only under a task
    candidates = ImportJob.objects.filter(
        Q(status=ImportJob.Status.RUNNING) | Q(status=ImportJob.Status.QUEUED, created_at__lt=cutoff)
    ).values_list("pk", "status", "heartbeat_at")
    requeued = []
    for job_id, status, heartbeat_at in candidates:
        stale = status == ImportJob.Status.RUNNING and heartbeat_at is not None and heartbeat_at < cutoff
        if tasks is None:
            unattended = stale
        else:
            unattended = job_id not in tasks.ready and (stale or job_id not in tasks.running)
        if not unattended:
            continue
        try:
            with transaction.atomic():
                claimed = ImportJob.objects.filter(pk=job_id, status=status, heartbeat_at=heartbeat_at).update(
                    heartbeat_at=timezone.now()
                )
                if claimed:
                    run_import.enqueue(job_id=job_id)
        except OperationalError as exc:
            if not operations().is_transient(exc):
                raise
            continue  # another worker is queueing it
        if claimed:
            requeued.append(job_id)
    return requeued


def clean_orphaned_import_tasks(*, stale_after: dt.timedelta) -> int:
    """Mark FAILED the import tasks left RUNNING by a worker that died; how many.

    A running task is orphaned when its import has ended, or was queued again after it (its
    run was taken to be dead), or has been running without a heartbeat for ``stale_after``,
    or is still queued though the task was claimed that long ago. A run that was only slow and
    finishes after all records its own outcome over this one.
    """
    from django_tasks_db.models import DBTaskResult

    tasks = _live_import_tasks()
    if tasks is None or not tasks.running:
        return 0
    cutoff = timezone.now() - stale_after
    jobs = {pk: (status, heartbeat_at) for pk, status, heartbeat_at in
            ImportJob.objects.filter(pk__in=list(tasks.running)).values_list("pk", "status", "heartbeat_at")}
    orphaned = []
    for job_id, running in tasks.running.items():
        status, heartbeat_at = jobs.get(job_id, (None, None))
        newest = max(task.enqueued_at for task in running + tasks.ready.get(job_id, []))
        for task in running:
            if (
                status not in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)
                or task.enqueued_at < newest
                or (status == ImportJob.Status.RUNNING and (heartbeat_at is None or heartbeat_at < cutoff))
                or (status == ImportJob.Status.QUEUED and (task.started_at is None or task.started_at < cutoff))
            ):
                orphaned.append(task.pk)
    if orphaned:
        DBTaskResult.objects.filter(pk__in=orphaned, status="RUNNING").update(
            status="FAILED", finished_at=timezone.now(), return_value=None,
            exception_class_path=f"{__name__}.WorkerLost",
            traceback="The worker running this task stopped reporting; its import is queued again.",
        )
    return len(orphaned)


class WorkerLost(Exception):
    """Names the failure of a task whose worker died (``clean_orphaned_import_tasks``)."""


@dataclass(slots=True)
class _LiveImportTasks:
    """The database queue's import tasks waiting (READY) or being run (RUNNING), by job id."""

    ready: dict[int, list]
    running: dict[int, list]


def _live_import_tasks() -> _LiveImportTasks | None:
    """None when the tasks backend keeps no rows (the immediate backend runs tasks inline)."""
    from django_tasks_db.backend import DatabaseBackend
    from django_tasks_db.models import DBTaskResult

    from ..tasks import run_import

    if not isinstance(run_import.get_backend(), DatabaseBackend):
        return None
    tasks = _LiveImportTasks({}, {})
    rows = DBTaskResult.objects.filter(task_path=run_import.module_path, status__in=["READY", "RUNNING"]).only(
        "id", "status", "enqueued_at", "started_at", "args_kwargs"
    )
    for task in rows:
        job_id = (task.args_kwargs or {}).get("kwargs", {}).get("job_id")
        if job_id is not None:
            (tasks.ready if task.status == "READY" else tasks.running).setdefault(job_id, []).append(task)
    return tasks


def prune_imports(*, older_than: dt.timedelta) -> int:
    """Delete the uploaded files of finished imports older than the retention period.

    The import records and their rejected rows stay, so what was loaded remains on record.
    """

    cutoff = timezone.now() - older_than
    pruned = 0
    for job in ImportJob.objects.filter(created_at__lt=cutoff).exclude(file="").exclude(
        status__in=[ImportJob.Status.QUEUED, ImportJob.Status.RUNNING]
    ):
        job.file.delete(save=True)
        pruned += 1
    return pruned
