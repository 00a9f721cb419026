"""A JSON batch: validated, and stored in parts at once on connections of their own, committed as one.

On one connection a batch's statements run on one of the server's cores, one after the other,
and only once the whole batch is validated: 10,000 records spent 5.5 µs a row validating and
24 µs in SQL, where a file import, which validates the next chunk while it writes this one in
parts at once (``services.imports``), spent 25 µs in all. An import's parts commit one by one
(its progress marker says which are stored); a batch's may not: its answer says what became of
every record, nothing is stored if one record is invalid, and a batch whose answer the client
did not get is stored whole or not at all (``tests/hardening/test_crash_consistency.py``).

So where the database commits one transaction made on several connections
(``has_two_phase_commit``: XA on a single MariaDB/MySQL server, not a Galera cluster),
``ingest_batch`` stores a batch of ``MIN_RECORDS`` or more this way:

1. The records are cut into ``SLICES_PER_WRITER`` slices per writer by customer id as sent
   (ranges of consecutive ids, about as many records each): a customer's records, their
   repeats among them, are in one slice, and no two writers touch the same customer. Slice i
   goes to writer i mod ``CDP_BATCH_WRITERS``, each a thread with a connection of its own
   writing one branch of the two-phase commit.
2. This thread validates the slices in turn and hands each to its writer as soon as it is
   valid, so the writers' SQL overlaps the validation of the next slices. A writer stores its
   slices one after the other with ``bulk.store_in_bulk``. Writer 0's branch begins with the
   batch's ``CommittedBatch`` row, and ends with the batch's month and pincode deltas, appended
   once for the whole batch in its records' order (``totals.append_summary_deltas``).
3. Every record valid and every slice stored: each branch is prepared (from then on it survives
   a crash), then writer 0's is committed, which commits the batch (its row is there for good),
   then the others. An invalid record: every branch is rolled back and the errors answered
   (the rest of the batch is still validated, for every error). A writer that failed (a lost
   race, a lock wait, a lost connection): every branch is rolled back and the batch is written
   on one connection by ``ingest_transactions``, with its retries. Nothing of the attempt is left.

A writer waits for a row lock at most ``PART_LOCK_WAIT_SECONDS``: a prepared branch keeps its
locks until the others are prepared, a wait the server cannot see, so two batches that each hold
what the other's writer needs would otherwise both wait out the server's lock timeout.

After a crash between the phases, prepared branches stay on the server, holding their locks,
until ``recover_prepared_parts`` finishes them: writer 0's is rolled back (the batch was not
committed); another is committed if its batch's row is there, once the row's lock says writer
0's branch is finished. Every new database connection runs it (``apps.py``), so a restarted
server or web worker finishes them at once; the worker's housekeeping runs it too. A branch
still held by a live connection is that connection's to finish: the server refuses it to others.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone

from ..models import CommittedBatch
from ..parts import close_pool_connections
from ..sql import operations
from ..validation import RecordInvalid, TransactionRecord, clean_customer_id, parse_transaction_record
from . import bulk, totals
from .collector import collector_paused

logger = logging.getLogger(__name__)

# Below this many records a batch is written on one connection: the branches' own round trips
# (two phases, the batch's row) cost more than they save.
MIN_RECORDS = 2000
# Slices per writer: the first slice's SQL waits for its validation alone, and the last slice's
# SQL is what is left once the validation is done.
SLICES_PER_WRITER = 2
# The validating thread gives up the GIL every this many records (0: never), see ``_validated``:
# 10,000-record batches, two pairs interleaved, 373 and 376 ms (medians of 10) against 397 and
# 390 without, the writers' first LOAD DATA 46-51 ms into the batch against 70-74.
YIELD_EVERY = 200
# How long a writer waits for a row lock before the batch is written on one connection instead.
PART_LOCK_WAIT_SECONDS = 3
# How long ``recover_prepared_parts`` waits for a batch's first branch to finish.
DECISION_WAIT_SECONDS = 2
# A branch's xid: the prefix, the database's mark (``_xid_prefix``), the batch's id (32 hex
# digits), a dash and the writer's number. XA RECOVER lists every database's branches on the
# server; each database's recovery finishes its own, whose batch rows it holds.
XID_PREFIX = "cdp-batch-"
# How long a failed commit's recovery waits for the server to let go of the closed connections'
# branches (it notices a closed connection a moment later).
RECOVERY_WAIT_SECONDS = 2


def ingest_batch(raw_records: Sequence) -> tuple[dict[str, dict], list]:
    """Validate a batch (records as sent, or ``TransactionRecord``s) and store it if every record
    is valid: (the errors by index, as the API answers them, and no outcomes) or (no errors, one
    ``IngestOutcome`` per record)."""
    from .ingest import ingest_transactions  # ingest -> bulk; this module is the API's

    # The batch's records live until it is stored: the collector walking them is time the
    # writers wait for (``collector``).
    with collector_paused():
        written = _ingest_in_parts(raw_records) if _writes_in_parts(raw_records) else None
        if isinstance(written, tuple):  # answered: the errors, or every record stored
            return written
        records = written  # validated but not stored (a writer failed), or None: not validated yet
        if records is None:
            records, errors = _validated(raw_records, range(len(raw_records)))
            if errors:
                return errors, []
        return {}, ingest_transactions(records=records)


def _validated(raw_records: Sequence, indexes, *, let_others_run: bool = False) -> tuple[list[TransactionRecord], dict[str, dict]]:
    """The records at ``indexes`` validated (a ``TransactionRecord`` is already), and the errors.
    ``let_others_run``: give up the GIL every ``YIELD_EVERY`` records, so that a writer whose
    statement has returned goes on at once, not after the interpreter's switch interval (5 ms)."""
    records, errors = [], {}
    for count, index in enumerate(indexes):
        if let_others_run and not count % YIELD_EVERY:
            time.sleep(0)
        raw = raw_records[index]
        try:
            records.append(raw if type(raw) is TransactionRecord else parse_transaction_record(raw))
        except RecordInvalid as exc:
            errors[str(index)] = exc.errors
    return records, errors


def _writes_in_parts(raw_records: Sequence) -> bool:
    if len(raw_records) < MIN_RECORDS or settings.CDP_BATCH_WRITERS < 2 or connection.in_atomic_block:
        return False  # inside a transaction (a test case) the other connections would not see it
    ops = operations()
    return ops.has_bulk_loader and ops.has_two_phase_commit


def _customer_id_as_sent(raw: object) -> int | None:
    """The customer id a record will have if it is valid (``validation.clean_customer_id``, whose
    common spellings take a few checks), or None where it has none: the batch is then not split,
    and its validation says why."""
    if type(raw) is TransactionRecord:
        return raw.customer_id
    if type(raw) is not dict or "customer_id" not in raw:
        return None
    try:
        return clean_customer_id(raw["customer_id"])
    except ValidationError:
        return None


def _slices(raw_records: Sequence, count: int) -> list[list[int]] | None:
    """The records' indexes in up to ``count`` slices of consecutive customer ids, about as many
    records each, in the batch's order within each; None if an id can't be told before validation."""
    ids = list(map(_customer_id_as_sent, raw_records))
    if None in ids:
        return None
    ordered = sorted(ids)
    bounds = sorted({ordered[len(ordered) * number // count] for number in range(1, count)})
    slices: list[list[int]] = [[] for _ in range(len(bounds) + 1)]
    for index, customer_id in enumerate(ids):
        slices[bisect.bisect_right(bounds, customer_id)].append(index)
    return [indexes for indexes in slices if indexes]


def _ingest_in_parts(raw_records: Sequence) -> tuple[dict[str, dict], list] | list[TransactionRecord] | None:
    """(errors, outcomes) as ``ingest_batch`` answers; or the validated records, nothing stored,
    for ``ingest_transactions`` to write on one connection; or None: not split, not validated."""
    ways = settings.CDP_BATCH_WRITERS
    slices = _slices(raw_records, ways * SLICES_PER_WRITER)
    if slices is None or len(slices) < 2:
        return None
    ways = min(ways, len(slices))
    batch_id = uuid.uuid4().hex
    # Writer 0's branch begins with the batch's row: it is the batch's commit.
    prefix = _xid_prefix(connection)
    branches = [_Branch(f"{prefix}{batch_id}-{number}", batch_id if number == 0 else None) for number in range(ways)]
    writers = _take_writers(ways)
    try:
        records: list = [None] * len(raw_records)
        errors: dict[str, dict] = {}
        # Begun while this thread validates the first slice, so its writer can start on it at once.
        begun = [writer.submit(branch.begin) for branch, writer in zip(branches, writers)]
        stored: list[Future] = []  # each slice's outcomes
        try:
            for number, indexes in enumerate(slices):
                valid, invalid = _validated(raw_records, indexes, let_others_run=YIELD_EVERY > 0)
                errors.update(invalid)
                if errors:
                    continue  # nothing more is stored; the rest is validated for its errors
                for index, record in zip(indexes, valid):
                    records[index] = record
                branch, writer = branches[number % ways], writers[number % ways]
                # The staging file's text made here: the writers then hold the GIL only between
                # statements, instead of taking turns with this thread's validation.
                stored.append(writer.submit(branch.store, bulk.PreparedRecords(valid), indexes))
            failures = _failures(begun + stored)
            if not errors and not failures:
                # The batch's month and pincode deltas, appended once in writer 0's branch, in the
                # order of the records stored (each slice appending its own took a few hundred
                # rows a slice, four times a 10,000-record batch's, and ran on every writer's time).
                created = sorted(
                    outcome.index for future in stored for outcome in future.result() if outcome.status == "created"
                )
                failures = _failures([writers[0].submit(branches[0].append_summary_deltas, [records[i] for i in created])])
            if not errors and not failures:
                failures = _failures([writer.submit(branch.prepare) for branch, writer in zip(branches, writers)])
        except BaseException:
            _failures(begun + stored)
            _roll_back(branches, writers)
            raise
        if errors or failures:
            _roll_back(branches, writers)
            if errors:
                return dict(sorted(errors.items(), key=lambda item: int(item[0]))), []
            if not all(isinstance(exc, DatabaseError) for exc in failures):
                raise next(exc for exc in failures if not isinstance(exc, DatabaseError))
            logger.info("batch %s: a writer failed (%r); written on one connection", batch_id, failures[0])
            return records
        _commit(batch_id, branches, writers)
    finally:
        _give_back(writers)
    outcomes: list = [None] * len(raw_records)
    for future in stored:
        for outcome in future.result():
            outcomes[outcome.index] = outcome
    return {}, outcomes


def _failures(futures: list[Future]) -> list[BaseException]:
    """Wait for every future; the exceptions raised."""
    return [exc for exc in (future.exception() for future in futures) if exc is not None]


class _Branch:
    """One writer's branch of a batch's two-phase commit. Its methods run on the writer's own
    thread (the branch lives on that thread's connection), one at a time, in order."""

    def __init__(self, xid: str, decided_by: str | None):
        self.xid, self.decided_by = xid, decided_by
        self.state = "new"  # then "active", "prepared"; "failed" once rolled back on an error

    def begin(self) -> None:
        try:
            self._begin()
        except BaseException:
            self._abandon()
            raise

    def store(self, records: list[TransactionRecord], indexes: list[int]) -> list:
        """Store one slice in the branch; its outcomes, by the records' ``indexes`` in the batch.
        On an error the branch is rolled back and stores nothing more."""
        if self.state != "active":
            raise DatabaseError(f"branch {self.xid} is {self.state}, not active")
        try:
            return bulk.store_in_bulk(records, indexes=indexes, summary_deltas=False)
        except BaseException:
            self._abandon()
            raise

    def append_summary_deltas(self, records: list[TransactionRecord]) -> None:
        """Append the month and pincode deltas of the batch's stored ``records`` to the branch."""
        if self.state != "active":
            raise DatabaseError(f"branch {self.xid} is {self.state}, not active")
        try:
            totals.append_summary_deltas(records)
        except BaseException:
            self._abandon()
            raise

    def prepare(self) -> None:
        if self.state != "active":
            raise DatabaseError(f"branch {self.xid} is {self.state}, not active")
        try:
            with connection.cursor() as cursor:
                for statement in operations().two_phase_prepare(self.xid):
                    cursor.execute(statement)
        except BaseException:
            self._abandon()
            raise
        self.state = "prepared"

    def commit(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(operations().two_phase_finish(self.xid, commit=True))

    def roll_back(self) -> bool:
        """Roll the branch back; False if it is left prepared (its connection closed, so that
        recovery may finish it: rolled back, as the batch's row was never committed)."""
        if self.state == "prepared":
            try:
                with connection.cursor() as cursor:
                    cursor.execute(operations().two_phase_finish(self.xid, commit=False))
            except DatabaseError:
                connection.close()
                return False
            self.state = "failed"
        elif self.state == "active":
            self._abandon()
        return True

    def _begin(self) -> None:
        # As a request does at its start (never between a branch's statements: a connection
        # closed there would take the branch with it, and the next slice would commit alone).
        connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()
        connection.ensure_connection()
        session = connection.connection
        with connection.cursor() as cursor:
            if not getattr(session, "cdp_part_lock_wait", False):  # a writer's sessions keep it
                for statement in operations().lock_wait_statements(PART_LOCK_WAIT_SECONDS):
                    cursor.execute(statement)
                session.cdp_part_lock_wait = True
            cursor.execute(operations().two_phase_start(self.xid))
        self.state = "active"
        if self.decided_by is not None:
            CommittedBatch.objects.create(batch_id=self.decided_by, created_at=timezone.now())

    def _abandon(self) -> None:
        """Roll back the branch, not prepared, on an error. A connection that cannot is closed:
        the server rolls back what a lost connection had not prepared."""
        if self.state == "active":
            end, roll_back = operations().two_phase_abandon(self.xid)
            try:
                with connection.cursor() as cursor:
                    try:
                        cursor.execute(end)
                    except DatabaseError:
                        pass  # a failed branch (a deadlock) may be ended already
                    cursor.execute(roll_back)
            except DatabaseError:
                connection.close()
        self.state = "failed"


def _roll_back(branches: list[_Branch], writers: list[ThreadPoolExecutor]) -> None:
    """Roll back every branch, each on its writer; any left prepared is finished by recovery,
    before the batch is written again on one connection (it holds the locks that one needs)."""
    rolled_back = [writer.submit(branch.roll_back).result() for branch, writer in zip(branches, writers)]
    if not all(rolled_back):
        try:
            recover_prepared_parts()
        except DatabaseError as exc:
            logger.warning("prepared parts left for later recovery (%r)", exc)


def _commit(batch_id: str, branches: list[_Branch], writers: list[ThreadPoolExecutor]) -> None:
    """Writer 0's branch first: its commit is the batch's. A failed commit is left to recovery
    (every connection of the batch closed) and raised: the client is told the batch failed,
    and a resend finds it stored whole or not at all."""
    for branch, writer in zip(branches, writers):
        try:
            writer.submit(branch.commit).result()
        except DatabaseError:
            _let_recovery_finish(writers, batch_id)
            raise
    try:
        CommittedBatch.objects.filter(pk=batch_id).delete()  # every branch is in: no longer needed
    except DatabaseError as exc:
        logger.warning("batch %s: its row stays until the worker prunes it (%r)", batch_id, exc)


def _let_recovery_finish(writers: list[ThreadPoolExecutor], batch_id: str) -> None:
    """After a failed commit: every connection of the batch is closed, which leaves its
    prepared branches to anyone, and recovery finishes them as the batch's row says."""
    for writer in writers:
        writer.submit(connections.close_all).result()
    deadline = time.monotonic() + RECOVERY_WAIT_SECONDS
    try:
        while True:
            recover_prepared_parts()
            left = [xid for xid, batch, _ in _prepared_branches(connection) if batch == batch_id]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    except DatabaseError as exc:
        logger.warning("prepared parts left for later recovery (%r)", exc)


# --- the writers' threads --------------------------------------------------------------------

_idle_writers: list[ThreadPoolExecutor] = []
_all_writers: list[ThreadPoolExecutor] = []
_writers_lock = threading.Lock()


def _take_writers(count: int) -> list[ThreadPoolExecutor]:
    """``count`` single threads, each keeping its database connection between batches as a web
    server's threads do (a branch is finished on the connection that began it). Taken by one
    request at a time, so concurrent batches never queue behind each other."""
    with _writers_lock:
        taken = [_idle_writers.pop() for _ in range(min(count, len(_idle_writers)))]
        while len(taken) < count:
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdp-batch-writer")
            _all_writers.append(writer)
            taken.append(writer)
    return taken


def _give_back(writers: list[ThreadPoolExecutor]) -> None:
    with _writers_lock:
        _idle_writers.extend(writers)


def close_part_writers() -> None:
    """End the threads that write batches' parts, their connections closed (the test runners
    call it before they drop the test databases)."""
    with _writers_lock:
        writers = list(_all_writers)
        _all_writers.clear()
        _idle_writers.clear()
    for writer in writers:
        close_pool_connections(writer)


# --- recovery ---------------------------------------------------------------------------------

def _xid_prefix(db) -> str:
    """The xids' prefix for a database: ``XID_PREFIX`` and a mark of the database's name."""
    name = str(db.settings_dict["NAME"])
    return f"{XID_PREFIX}{hashlib.sha1(name.encode()).hexdigest()[:8]}-"


def _prepared_branches(db) -> list[tuple[str, str, str]]:
    """This database's branches left prepared on the server: (xid, batch id, writer's number)."""
    prefix = _xid_prefix(db)
    with db.cursor() as cursor:
        xids = [xid for xid in operations(db).prepared_branches(cursor) if xid.startswith(prefix)]
    return [(xid, *xid[len(prefix):].rpartition("-")[::2]) for xid in xids]


def recover_prepared_parts(using: str = DEFAULT_DB_ALIAS) -> int:
    """Finish this database's prepared branches that no live connection holds (a crash between
    the two phases): a first branch is rolled back, another committed if its batch's row is
    there. The number of branches finished."""
    db = connections[using]
    ops = operations(db)
    if not ops.has_two_phase_commit:
        return 0  # none were written (a Galera node, say, refuses XA)
    finished = 0
    # First branches first: a batch's row is locked until its first branch is finished.
    for xid, batch_id, number in sorted(_prepared_branches(db), key=lambda branch: branch[2] != "0"):
        if number == "0":
            commit = False
        else:
            commit = _was_committed(batch_id, using=using)
            if commit is None:
                continue  # its first branch is still at work: its writer finishes the batch
        try:
            with db.cursor() as cursor:
                cursor.execute(ops.two_phase_finish(xid, commit=commit))
        except DatabaseError as exc:
            if not ops.is_unknown_branch(exc):
                raise
            continue  # finished meanwhile, or held by its writer's live connection
        logger.warning("prepared branch %s of a batch %s after a crash", xid, "committed" if commit else "rolled back")
        finished += 1
    return finished


def _was_committed(batch_id: str, *, using: str) -> bool | None:
    """Whether the batch's row is committed, once writer 0's branch is finished (its lock taken);
    None if that takes longer than ``DECISION_WAIT_SECONDS``."""
    db = connections[using]
    ops = operations(db)
    with db.cursor() as cursor:
        for statement in ops.lock_wait_statements(DECISION_WAIT_SECONDS):
            cursor.execute(statement)
    try:
        with transaction.atomic(using=using):
            return CommittedBatch.objects.using(using).select_for_update().filter(pk=batch_id).exists()
    except DatabaseError as exc:
        if not ops.is_transient(exc):
            raise
        return None
    finally:
        with db.cursor() as cursor:
            for statement in ops.lock_wait_statements(None):
                cursor.execute(statement)


def prune_committed_batches(*, older_than) -> int:
    """Delete the rows of batches a crash left (older than ``older_than``) whose parts are all
    finished; the number deleted."""
    if not operations().has_two_phase_commit:
        return 0
    pending = {batch_id for _, batch_id, _ in _prepared_branches(connection)}
    stale = CommittedBatch.objects.filter(created_at__lt=timezone.now() - older_than).exclude(pk__in=pending)
    return stale.delete()[0]
