"""Writes: storing transactions and keeping the report totals in step with them."""

from __future__ import annotations

import datetime as dt
import logging
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice
from typing import Literal, NamedTuple

from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, connection, connections, transaction
from django.db.models import F
from django.db.models.constants import OnConflict
from django.utils import timezone

from . import selectors
from .db_values import datetime_adapter, filter_by_ids, mysql_literal_writer
from .models import Customer, CustomerPincodeTotal, ImportJob, MonthlyTotal, PincodeTotal, RejectedRow, Transaction
from . import import_files
from .validation import RecordInvalid, TransactionRecord, parse_transaction_record, state_key_for

logger = logging.getLogger(__name__)

IngestStatus = Literal["created", "duplicate", "conflict"]

# Lock waits and deadlocks between concurrent batches are resolved by running the losing
# database transaction again; the unique constraint guarantees a retry never stores twice.
MAX_INGEST_ATTEMPTS = 10
BULK_BATCH_SIZE = 2500
IMPORT_SWITCH_INTERVAL = 0.0005  # seconds
# A statement must fit max_allowed_packet (4 MB on MySQL 5.7, more since): a transaction row is
# at most ~800 bytes (100- and 50-character texts in 4-byte UTF-8), so 2 MB at worst.
MYSQL_ROWS_PER_STATEMENT = 2500
# A rejected row keeps its line as sent, up to import_files.MAX_LINE_BYTES (1 MiB): a chunk's
# over-long lines written in one INSERT passed max_allowed_packet (16 MiB on MariaDB), and the
# server refused the chunk (and dropped the connection) on every retry, so the import never
# ended. An INSERT of rejected rows carries at most this many characters (4 MiB of UTF-8), or a
# single row; one row is at most ~6 MiB (a 1 MiB line of undecodable bytes, as sent and masked).
REJECTED_ROW_CHARS_PER_STATEMENT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of one record: stored, a repeat of a stored row, or contradicting one.

    ``transaction`` is set for a single record only: the stored row it collided with, or the
    row it became. Batches compare and insert plain values and carry no rows.
    """

    index: int
    status: IngestStatus
    transaction: Transaction | None = None


def ingest_transactions(
    *,
    records: Sequence[TransactionRecord],
    before_commit: Callable[[list[IngestOutcome]], None] | None = None,
    prepared: PreparedBatch | None = None,
) -> list[IngestOutcome]:
    """Store validated records, each key at most once, and return one outcome per record.

    ``before_commit`` runs inside the same database transaction once the records are stored
    (a file import saves its progress marker there, so the two commit or roll back together).
    It may run more than once if the transaction is retried.

    ``prepared`` (MySQL only) is ``prepare_batch(records)``: a file import works it out while
    it reads the file, so that this, the slower of its two threads, mostly sends SQL. On MySQL
    a batch is otherwise prepared here.

    Every customer a batch touches is locked (SELECT ... FOR UPDATE) before its transactions
    are looked up, so concurrent requests carrying the same key serialise on that customer and
    exactly one of them creates the row; the unique constraint backs this up.
    """
    if not records:
        return []
    if prepared is None and len(records) > 1:
        prepared = prepare_batch(records)
    for attempt in range(1, MAX_INGEST_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                if prepared is not None:
                    outcomes = _ingest_prepared_batch(records, prepared)
                else:
                    outcomes = _ingest_with_customers_locked(records)
                if before_commit is not None:
                    before_commit(outcomes)
                return outcomes
        except (OperationalError, _CustomerCreatedConcurrently) as exc:
            retryable = isinstance(exc, _CustomerCreatedConcurrently) or is_transient_lock_error(exc)
            if attempt == MAX_INGEST_ATTEMPTS or not retryable:
                raise
            logger.info("ingest attempt %s hit %r; retrying", attempt, exc)
            time.sleep(random.uniform(0.005, 0.02) * attempt)
    raise AssertionError("unreachable")


def is_transient_lock_error(exc: OperationalError) -> bool:
    cause = exc.__cause__
    if connection.vendor == "mysql":
        return bool(exc.args) and exc.args[0] in (1205, 1213)  # lock wait timeout, deadlock
    if connection.vendor == "postgresql":
        return getattr(cause, "sqlstate", None) in ("40001", "40P01")
    return "locked" in str(exc)  # SQLite: database is locked


def _same_payment(
    stored: Transaction | selectors.StoredPayment | TransactionRecord, record: TransactionRecord
) -> bool:
    """A record repeating a stored key is a duplicate if it agrees on these, else a conflict."""
    return (
        stored.transaction_amount == record.transaction_amount
        and stored.pincode == record.pincode
        and stored.state_key == record.state_key
    )


class RecordLiterals(NamedTuple):
    """A record as MySQL literals: its key, and its row up to (not including) created_at."""

    key: str
    row_start: str


@dataclass(slots=True)
class _CustomerAddition:
    """What a batch adds to one customer: its latest details, and its amount and count."""

    name: str
    mob_no: str
    details_as_of: dt.datetime
    amount: Decimal
    count: int


@dataclass(slots=True)
class PreparedBatch:
    """A batch worked out for MySQL before its customers are locked (see ``prepare_batch``).

    Everything assumes each record will be stored; the few that turn out to repeat a stored
    key or an earlier record are taken out again by ``_ingest_prepared_batch``.
    """

    literals: list[RecordLiterals]
    customer_ids: list[int]  # sorted: the order their locks are taken in
    customer_rows: dict[int, str]
    pincode_additions: dict[tuple[int, str, str], str]  # key -> "customer,state_key,pincode,state,amount,count)"
    summaries: _SummaryDeltas


def prepare_batch(records: Sequence[TransactionRecord]) -> PreparedBatch | None:
    """The batch as MySQL SQL, with what it adds to every running total; None on other databases.

    A file import calls this on its reading thread, so the writer thread, which waits for the
    server, spends little time of its own on a chunk.
    """
    if connection.vendor != "mysql":
        return None
    connection.ensure_connection()
    literal = _remembering(mysql_literal_writer(connection.connection))
    literals = []
    for r in records:
        moment = literal(r.transaction_datetime)
        # In TRANSACTION_COLUMNS order. Mobile number and pincode are validated digits; the
        # free text goes through the driver's escaper.
        literals.append(RecordLiterals(
            f"({r.customer_id},{moment})",
            f"({r.customer_id},{literal(r.name)},'{r.mob_no}',{r.transaction_amount:f},{moment},"
            f"'{r.pincode}',{literal(r.state)},{literal(r.state_key)},",
        ))
    customer_additions = _customer_additions(records)
    summaries = _SummaryDeltas()
    for record in records:
        summaries.add(record, sign=1)
    return PreparedBatch(
        literals=literals,
        customer_ids=sorted(customer_additions),
        customer_rows=_customer_rows(customer_additions, literal),
        pincode_additions=_pincode_additions(records, literal),
        summaries=summaries,
    )


def _remembering(literal: Callable[[object], str]) -> Callable[[object], str]:
    """``literal`` for texts and datetimes, each value written once.

    A batch writes each record's name and datetime again in its customer's row, and a few
    dozen states thousands of times.
    """
    written: dict[object, str] = {}

    def remembered(value: object) -> str:
        text = written.get(value)
        if text is None:
            text = written[value] = literal(value)
        return text

    return remembered


def _customer_additions(records: Iterable[TransactionRecord]) -> dict[int, _CustomerAddition]:
    additions: dict[int, _CustomerAddition] = {}
    for r in records:
        addition = additions.get(r.customer_id)
        if addition is None:
            additions[r.customer_id] = _CustomerAddition(r.name, r.mob_no, r.transaction_datetime, r.transaction_amount, 1)
            continue
        if r.transaction_datetime > addition.details_as_of:
            addition.name, addition.mob_no, addition.details_as_of = r.name, r.mob_no, r.transaction_datetime
        addition.amount += r.transaction_amount
        addition.count += 1
    return additions


def _customer_rows(additions: dict[int, _CustomerAddition], literal) -> dict[int, str]:
    """Each customer's addition as a row of CUSTOMER_COLUMNS."""
    return {
        customer_id: f"({customer_id},{literal(a.name)},'{a.mob_no}',{literal(a.details_as_of)},{a.amount:f},{a.count})"
        for customer_id, a in additions.items()
    }


def _pincode_additions(records: Iterable[TransactionRecord], literal) -> dict[tuple[int, str, str], str]:
    sums: dict[tuple[int, str, str], list] = {}
    for r in records:
        key = (r.customer_id, r.state_key, r.pincode)
        delta = sums.get(key)
        if delta is None:
            sums[key] = [r.state, r.transaction_amount, 1]
        else:
            delta[1] += r.transaction_amount
            delta[2] += 1
    return {
        key: f"{key[0]},{literal(key[1])},'{key[2]}',{literal(state)},{amount:f},{count})"
        for key, (state, amount, count) in sums.items()
    }


# On a customer who has transactions, the batch's latest details replace the stored ones only
# if they are newer. MySQL assigns left to right, each assignment seeing the ones before it:
# the details first, the count (which says whether there were transactions) last.
_CUSTOMER_ADDITION_SUFFIX = (
    "ON DUPLICATE KEY UPDATE "
    "name = IF(transaction_count = 0 OR VALUES(details_as_of) > details_as_of, VALUES(name), name), "
    "mob_no = IF(transaction_count = 0 OR VALUES(details_as_of) > details_as_of, VALUES(mob_no), mob_no), "
    "details_as_of = IF(transaction_count = 0, VALUES(details_as_of), GREATEST(details_as_of, VALUES(details_as_of))), "
    "total_amount = total_amount + VALUES(total_amount), "
    "transaction_count = transaction_count + VALUES(transaction_count)"
)


def _ingest_prepared_batch(records: Sequence[TransactionRecord], prepared: PreparedBatch) -> list[IngestOutcome]:
    """``_ingest_with_customers_locked`` for a prepared batch on MySQL.

    The customers are locked (and the new ones looked for) without reading their totals: the
    totals are added to in SQL, so no customer row travels to Python and back. On MariaDB the
    records of customers who have transactions are inserted first, skipping stored keys, and
    only the keys it skipped are looked up (almost never, in a file of new transactions):
    looking every key up first cost a tenth of an import's server time. MySQL, which cannot
    say which rows an INSERT stored, looks them up first.
    """
    quote = connection.ops.quote_name
    customer_table = quote(Customer._meta.db_table)
    with connection.cursor() as cursor:
        ids = ",".join(map(str, prepared.customer_ids))
        cursor.execute(
            f"SELECT customer_id, transaction_count FROM {customer_table} "
            f"WHERE customer_id IN ({ids}) ORDER BY customer_id FOR UPDATE"
        )
        stored_counts = dict(cursor.fetchall())
    # The first record of each key is the one that may be stored; later ones repeat it.
    first_of_key: dict[tuple, int] = {}
    candidates: list[int] = []
    for index, record in enumerate(records):
        if first_of_key.setdefault(record.key, index) == index:
            candidates.append(index)
    candidates.sort(key=lambda index: records[index].key)  # index pages fill in order
    # A new customer, or one whose transactions were all deleted, has none to collide with.
    may_collide = [index for index in candidates if stored_counts.get(records[index].customer_id)]
    insert_first = bool(may_collide) and connection.features.can_return_rows_from_bulk_insert

    if insert_first:
        repeats = [record for index, record in enumerate(records) if first_of_key[record.key] != index]
        customer_rows = prepared.customer_rows
        if any(record.customer_id not in stored_counts for record in repeats):
            customer_rows = _without_left_out(records, candidates, repeats, prepared)[0]
        _insert_new_customers(customer_rows, stored_counts)
        stored_keys = _insert_transactions_skipping_stored(records, candidates, prepared)
        collided = [index for index in candidates if records[index].key not in stored_keys]
        stored_by_key = _stored_payments(records, collided, prepared)
        if len(stored_by_key) != len(collided):
            raise RuntimeError("INSERT IGNORE skipped rows that are not stored: not a duplicate key")
        created = [index for index in candidates if records[index].key in stored_keys]
    else:
        stored_by_key = _stored_payments(records, may_collide, prepared)
        created = [index for index in candidates if records[index].key not in stored_by_key]

    created_set = set(created)
    outcomes: list[IngestOutcome] = []
    left_out: list[TransactionRecord] = []
    for index, record in enumerate(records):
        if index in created_set:
            outcomes.append(IngestOutcome(index=index, status="created"))
            continue
        # A stored row, or else the batch's own first record of the key, stored just now.
        earlier = stored_by_key.get(record.key) or records[first_of_key[record.key]]
        left_out.append(record)
        outcomes.append(IngestOutcome(index=index, status="duplicate" if _same_payment(earlier, record) else "conflict"))

    customer_rows, pincode_additions, summaries = _without_left_out(records, created, left_out, prepared)
    if not insert_first:
        _insert_new_customers(customer_rows, stored_counts)
        if created:
            _insert_rendered_rows(
                Transaction, TRANSACTION_COLUMNS, [prepared.literals[index].row_start for index in created],
                last_value=timezone.now(),
            )
    _send_mysql_rows(
        f"INSERT INTO {customer_table} ({_columns_of(Customer, CUSTOMER_COLUMNS)}) VALUES",
        [row for customer_id, row in sorted(customer_rows.items()) if customer_id in stored_counts],
        _CUSTOMER_ADDITION_SUFFIX,
    )
    _add_to_pincode_totals_as_sql(pincode_additions)
    summaries.write()  # shared rows, so taken last (see _SummaryDeltas)
    return outcomes


def _columns_of(model, field_names: Sequence[str]) -> str:
    quote = connection.ops.quote_name
    return ", ".join(quote(model._meta.get_field(name).column) for name in field_names)


def _insert_new_customers(customer_rows: dict[int, str], stored_counts: dict[int, int]) -> None:
    """Insert the batch's new customers with their totals; first, as their transactions refer to them."""
    new_customer_rows = [row for customer_id, row in sorted(customer_rows.items()) if customer_id not in stored_counts]
    table = connection.ops.quote_name(Customer._meta.db_table)
    try:
        _send_mysql_rows(f"INSERT INTO {table} ({_columns_of(Customer, CUSTOMER_COLUMNS)}) VALUES", new_customer_rows)
    except IntegrityError as exc:
        raise _CustomerCreatedConcurrently() from exc


def _stored_payments(
    records: Sequence[TransactionRecord], indexes: Sequence[int], prepared: PreparedBatch
) -> dict[tuple, selectors.StoredPayment]:
    key_literals = {records[index].key: prepared.literals[index].key for index in indexes}
    return selectors.stored_payments_with_keys(keys=key_literals.keys(), mysql_key_literals=key_literals)


def _insert_transactions_skipping_stored(
    records: Sequence[TransactionRecord], indexes: Sequence[int], prepared: PreparedBatch
) -> set[tuple]:
    """INSERT IGNORE the records (MariaDB); the keys of the rows it stored.

    IGNORE would also skip a row for another error (a value too long, say) with a warning of
    its own: a statement with more warnings than skipped rows is an error, and a skipped key
    that is not stored is caught by the caller.
    """
    quote = connection.ops.quote_name
    customer, moment = (quote(Transaction._meta.get_field(name).column) for name in ("customer", "transaction_datetime"))
    statement_start = (
        f"INSERT IGNORE INTO {quote(Transaction._meta.db_table)} ({_columns_of(Transaction, TRANSACTION_COLUMNS)}) VALUES"
    )
    ending = mysql_literal_writer(connection.connection)(timezone.now()) + ")"
    stored: set[tuple] = set()
    with connection.cursor() as cursor:
        for start in range(0, len(indexes), MYSQL_ROWS_PER_STATEMENT):
            some = indexes[start : start + MYSQL_ROWS_PER_STATEMENT]
            values = ",".join([prepared.literals[index].row_start + ending for index in some])
            cursor.execute(f"{statement_start} {values} RETURNING {customer}, {moment}")
            returned = cursor.fetchall()
            if connection.connection.warning_count() > len(some) - len(returned):
                raise DatabaseError("INSERT IGNORE skipped rows for another reason than a stored key")
            stored.update((customer_id, stored_moment.replace(tzinfo=dt.timezone.utc)) for customer_id, stored_moment in returned)
    return stored


def _without_left_out(
    records: Sequence[TransactionRecord], new_indexes: list[int], left_out: list[TransactionRecord], prepared: PreparedBatch
) -> tuple[dict[int, str], dict[tuple[int, str, str], str], _SummaryDeltas]:
    """The prepared additions less the records that were not stored (duplicates, conflicts).

    Only the customers of those records are worked out again, from their stored records.
    """
    if not left_out:
        return prepared.customer_rows, prepared.pincode_additions, prepared.summaries
    literal = mysql_literal_writer(connection.connection)
    touched = {record.customer_id for record in left_out}
    stored_of_touched = [records[index] for index in new_indexes if records[index].customer_id in touched]
    customer_rows = {
        customer_id: row for customer_id, row in prepared.customer_rows.items() if customer_id not in touched
    }
    customer_rows.update(_customer_rows(_customer_additions(stored_of_touched), literal))
    pincode_additions = {key: row for key, row in prepared.pincode_additions.items() if key[0] not in touched}
    pincode_additions.update(_pincode_additions(stored_of_touched, literal))
    summaries = prepared.summaries.copy()
    for record in left_out:
        summaries.add(record, sign=-1)
    return customer_rows, pincode_additions, summaries


def _ingest_with_customers_locked(records: Sequence[TransactionRecord]) -> list[IngestOutcome]:
    customers = _lock_customers(records)
    # A customer this batch has just created has no stored transactions to collide with.
    keys_to_look_up = {record.key for record in records if customers[record.customer_id].transaction_count}
    stored_by_key: dict[tuple, Transaction | selectors.StoredPayment | TransactionRecord]
    if len(records) == 1:
        # A single record's answer shows the stored row it collided with.
        stored_by_key = {row.key: row for row in selectors.transactions_with_keys(keys=keys_to_look_up)}
    else:
        stored_by_key = selectors.stored_payments_with_keys(keys=keys_to_look_up)
    outcomes: list[IngestOutcome] = []
    new_records: list[TransactionRecord] = []
    new_indexes: list[int] = []
    for index, record in enumerate(records):
        stored = stored_by_key.get(record.key)
        if stored is None:
            stored_by_key[record.key] = record  # a repeat later in the same batch meets this one
            new_records.append(record)
            new_indexes.append(index)
            outcomes.append(IngestOutcome(index=index, status="created"))
        else:
            status: IngestStatus = "duplicate" if _same_payment(stored, record) else "conflict"
            row = stored if isinstance(stored, Transaction) else None
            outcomes.append(IngestOutcome(index=index, status=status, transaction=row))

    if len(new_records) == 1:
        # save() reports the new id on every backend, MySQL 8 included (no RETURNING there).
        [record] = new_records
        row = Transaction(
            customer_id=record.customer_id,
            name=record.name,
            mob_no=record.mob_no,
            transaction_amount=record.transaction_amount,
            transaction_datetime=record.transaction_datetime,
            pincode=record.pincode,
            state=record.state,
            state_key=record.state_key,
        )
        row.skip_history_when_saving = True  # the history records operators' corrections, not ingests
        row.save(force_insert=True)
        [created_index] = [i for i, outcome in enumerate(outcomes) if outcome.status == "created"]
        outcomes[created_index] = IngestOutcome(index=created_index, status="created", transaction=row)
    elif new_records:
        created_at = timezone.now()
        _insert_rows(
            Transaction,
            TRANSACTION_COLUMNS,
            [
                (
                    r.customer_id, r.name, r.mob_no, r.transaction_amount, r.transaction_datetime,
                    r.pincode, r.state, r.state_key, created_at,
                )
                for r in sorted(new_records, key=_by_key)
            ],
        )
    _add_to_totals(customers=customers, new_rows=new_records)
    _add_to_summaries(new_rows=new_records)  # shared rows, so taken last (see below)
    return outcomes


def _by_key(record: TransactionRecord) -> tuple:
    return (record.customer_id, record.transaction_datetime)


@dataclass(slots=True)
class _CustomerState:
    """A locked customer row, as plain values: cheaper than model instances by the thousand."""

    customer_id: int
    name: str
    mob_no: str
    details_as_of: dt.datetime
    total_amount: Decimal
    transaction_count: int


CUSTOMER_COLUMNS = ["customer_id", "name", "mob_no", "details_as_of", "total_amount", "transaction_count"]


class _CustomerCreatedConcurrently(Exception):
    """Another request created one of this batch's new customers first; run the batch again."""


def _lock_customers(records: Sequence[TransactionRecord]) -> dict[int, _CustomerState]:
    """Lock every customer of the batch (in id order), creating the ones that don't exist.

    A new customer is inserted plainly, not with INSERT IGNORE: on MySQL a duplicate key
    ignored that way leaves a shared lock that deadlocks with the FOR UPDATE of the next
    request for the same customer. Instead the loser of that race gets a unique-key error,
    rolls back, and its next attempt finds the customer and waits for its lock.
    """
    first_record_of: dict[int, TransactionRecord] = {}
    for record in records:
        first_record_of.setdefault(record.customer_id, record)
    customers = _locked_customer_states(sorted(first_record_of))
    missing = [
        (customer_id, record.name, record.mob_no, record.transaction_datetime, Decimal("0"), 0)
        for customer_id, record in sorted(first_record_of.items())
        if customer_id not in customers
    ]
    try:
        _insert_rows(Customer, CUSTOMER_COLUMNS, missing)
    except IntegrityError as exc:
        raise _CustomerCreatedConcurrently() from exc
    for row in missing:
        customers[row[0]] = _CustomerState(*row)
    return customers


def _locked_customer_states(customer_ids: Sequence[int]) -> dict[int, _CustomerState]:
    queryset = filter_by_ids(Customer.objects.select_for_update(), column="customer_id", ids=customer_ids).order_by("pk")
    return {row[0]: _CustomerState(*row) for row in queryset.values_list(*CUSTOMER_COLUMNS)}


def _write_customers(states: Iterable[_CustomerState]) -> None:
    _insert_rows(
        Customer,
        CUSTOMER_COLUMNS,
        [
            (c.customer_id, c.name, c.mob_no, c.details_as_of, c.total_amount, c.transaction_count)
            for c in states
        ],
        unique_fields=["customer_id"],
        update_fields=CUSTOMER_COLUMNS[1:],
    )


def _add_to_totals(
    *, customers: dict[int, _CustomerState], new_rows: Iterable[Transaction | TransactionRecord]
) -> None:
    """Fold newly stored rows into the customer and per-pincode running totals."""
    changed_customers: dict[int, _CustomerState] = {}
    pincode_deltas: dict[tuple[int, str, str], list] = {}
    for row in new_rows:
        customer = customers[row.customer_id]
        if customer.transaction_count == 0 or row.transaction_datetime > customer.details_as_of:
            customer.name = row.name
            customer.mob_no = row.mob_no
            customer.details_as_of = row.transaction_datetime
        customer.total_amount += row.transaction_amount
        customer.transaction_count += 1
        changed_customers[customer.customer_id] = customer
        delta = pincode_deltas.get((row.customer_id, row.state_key, row.pincode))
        if delta is None:
            pincode_deltas[(row.customer_id, row.state_key, row.pincode)] = [row.state, row.transaction_amount, 1]
        else:
            delta[1] += row.transaction_amount
            delta[2] += 1
    if not changed_customers:
        return
    _write_customers(changed_customers.values())
    _add_to_pincode_totals(pincode_deltas)


PINCODE_TOTAL_COLUMNS = ["customer", "state_key", "pincode", "state", "total_amount", "transaction_count"]


def _add_to_pincode_totals(deltas: dict[tuple[int, str, str], list]) -> None:
    """Add (state, amount, count) deltas to the per-pincode totals, creating missing rows.

    Rows that exist are upserted through their primary key: an upsert that collides on the
    secondary unique key makes InnoDB insert the row and undo it before updating, which costs
    as much again. New rows still go through the unique key. (``state_key`` compares exactly on
    every database, as the dict of existing ids does; see ``transactions.fields``.)
    """
    if not deltas:
        return
    existing_ids = selectors.pincode_total_ids_of(customer_ids={customer_id for customer_id, _, _ in deltas})
    known, new = [], []
    for key, (state, amount, count) in deltas.items():
        row_id = existing_ids.get(key)
        if row_id is None:
            new.append((*key, state, amount, count))
        else:
            known.append((row_id, *key, state, amount, count))
    increments = ["total_amount", "transaction_count"]
    _insert_rows(CustomerPincodeTotal, ["id", *PINCODE_TOTAL_COLUMNS], known, unique_fields=["id"], increment_fields=increments)
    _insert_rows(
        CustomerPincodeTotal, PINCODE_TOTAL_COLUMNS, new,
        unique_fields=["customer", "state_key", "pincode"], increment_fields=increments,
    )


def _add_to_pincode_totals_as_sql(additions: dict[tuple[int, str, str], str]) -> None:
    """``_add_to_pincode_totals`` for additions written as SQL by ``prepare_batch``."""
    if not additions:
        return
    existing_ids = selectors.pincode_total_ids_of(customer_ids={customer_id for customer_id, _, _ in additions})
    known: list[tuple[int, str]] = []
    new: list[str] = []
    for key, row_end in additions.items():
        row_id = existing_ids.get(key)
        if row_id is None:
            new.append(f"({row_end}")
        else:
            known.append((row_id, f"({row_id},{row_end}"))
    known.sort()
    increments = ["total_amount", "transaction_count"]
    by_id = _insert_statement(
        CustomerPincodeTotal, ["id", *PINCODE_TOTAL_COLUMNS], unique_fields=["id"], increment_fields=increments
    )
    _send_mysql_rows(by_id[0], [row for _, row in known], by_id[1])
    by_unique_key = _insert_statement(
        CustomerPincodeTotal, PINCODE_TOTAL_COLUMNS,
        unique_fields=["customer", "state_key", "pincode"], increment_fields=increments,
    )
    _send_mysql_rows(by_unique_key[0], new, by_unique_key[1])


def recompute_customer_totals(*, customer_ids: Iterable[int]) -> None:
    """Rebuild the running totals of some customers from their stored transactions.

    For transactions changed outside the services (a data fix). The name and mobile number
    become those of the newest remaining transaction, unless an operator has corrected them.
    The per-month and per-pincode totals are rebuilt too, from every transaction: which months
    and pincodes a change outside the services touched is no longer known.
    """
    with transaction.atomic():
        _recompute_totals_of_customers(customer_ids=customer_ids)
        recompute_summary_totals()


def _recompute_totals_of_customers(*, customer_ids: Iterable[int]) -> None:
    customer_ids = sorted(set(customer_ids))
    with transaction.atomic():
        customers = _locked_customer_states(customer_ids)
        corrected = set(
            Customer.objects.filter(pk__in=customer_ids, details_corrected_at__isnull=False).values_list("pk", flat=True)
        )
        kept_details = {c.customer_id: (c.name, c.mob_no) for c in customers.values() if c.customer_id in corrected}
        for customer in customers.values():
            customer.total_amount = Decimal("0")
            customer.transaction_count = 0
        CustomerPincodeTotal.objects.filter(customer_id__in=customer_ids).delete()
        rows = Transaction.objects.filter(customer_id__in=customer_ids).order_by("customer_id", "transaction_datetime")
        _add_to_totals(customers=customers, new_rows=rows.iterator(chunk_size=BULK_BATCH_SIZE))
        for customer_id, (name, mob_no) in kept_details.items():
            customers[customer_id].name, customers[customer_id].mob_no = name, mob_no
        _write_customers(customers.values())


class TransactionKeyTaken(Exception):
    """A correction would give a transaction the key of another one of the same customer."""


def save_corrected_transaction(*, row: Transaction, previous_customer_id: int | None, changed_by=None) -> None:
    """Store an operator's correction of a transaction (or its restoration from history).

    The totals of the customers before and after are rebuilt, and the stored row's month and
    pincode totals moved from its old values to its new ones, in the same database
    transaction, so every report reflects the correction as soon as it is committed.
    """
    row.state_key = state_key_for(row.state)
    if changed_by is not None:
        row._history_user = changed_by
    with transaction.atomic():
        collides = Transaction.objects.filter(
            customer_id=row.customer_id, transaction_datetime=row.transaction_datetime
        ).exclude(pk=row.pk)
        if collides.exists():
            raise TransactionKeyTaken()
        deltas = _SummaryDeltas()
        if row.pk is not None:
            # Locked, so that two corrections of one row each take away what the other stored.
            # None when a deleted row is being restored from its history.
            stored = Transaction.objects.select_for_update().filter(pk=row.pk).first()
            if stored is not None:
                deltas.add(stored, sign=-1)
            _record_values_before_correction(Transaction, pk=row.pk)
        row.save()
        deltas.add(row, sign=1)
        _recompute_totals_of_customers(customer_ids={row.customer_id, previous_customer_id or row.customer_id})
        deltas.write()


def delete_transactions(*, rows: Iterable[Transaction], changed_by=None) -> None:
    """Delete transactions (each recorded in the history) and rebuild their customers' totals.

    The month and pincode totals lose the deleted rows as stored (read under a lock, not from
    the possibly stale instances given).
    """
    with transaction.atomic():
        rows = list(rows)
        deltas = _SummaryDeltas()
        for stored in Transaction.objects.select_for_update().filter(pk__in=[row.pk for row in rows]).order_by("pk"):
            deltas.add(stored, sign=-1)
        customer_ids = set()
        for row in rows:
            if changed_by is not None:
                row._history_user = changed_by
            customer_ids.add(row.customer_id)
            row.delete()
        _recompute_totals_of_customers(customer_ids=customer_ids)
        deltas.write()


# --- Whole-table summaries -------------------------------------------------------------------
# MonthlyTotal and PincodeTotal: every write adds its rows' deltas in the database transaction
# that stores them. They are rows every writer shares, so each writer changes them last (the
# locks are held only until its commit) and in one order, months then pincodes, each sorted,
# so two writers never wait for each other in a circle.


class _SummaryDeltas:
    """What a write adds to (or takes from) the per-month and per-pincode totals."""

    def __init__(self) -> None:
        self.months: dict[tuple[int, int], list] = {}  # (year, month) -> [count, amount]
        self.pincodes: dict[tuple[str, str], list] = {}  # (state_key, pincode) -> [state, count, amount]

    def copy(self) -> _SummaryDeltas:
        copied = _SummaryDeltas()
        copied.months = {key: list(value) for key, value in self.months.items()}
        copied.pincodes = {key: list(value) for key, value in self.pincodes.items()}
        return copied

    def add(self, row: Transaction | TransactionRecord, *, sign: int) -> None:
        # Called for every row of every batch: plain tuples and no conversions when, as always
        # from ingest and the database, the datetime is in UTC already.
        amount = row.transaction_amount if sign > 0 else -row.transaction_amount
        moment = row.transaction_datetime
        if moment.tzinfo is not dt.timezone.utc:
            moment = moment.astimezone(dt.timezone.utc)
        month = self.months.get((moment.year, moment.month))
        if month is None:
            self.months[(moment.year, moment.month)] = [sign, amount]
        else:
            month[0] += sign
            month[1] += amount
        pincode = self.pincodes.get((row.state_key, row.pincode))
        if pincode is None:
            self.pincodes[(row.state_key, row.pincode)] = [row.state, sign, amount]
        else:
            pincode[1] += sign
            pincode[2] += amount

    def write(self) -> None:
        increments = ["transaction_count", "total_amount"]
        _insert_rows(
            MonthlyTotal,
            ["month", *increments],
            [
                (dt.date(year, month, 1), count, amount)
                for (year, month), (count, amount) in sorted(self.months.items())
                if count or amount
            ],
            unique_fields=["month"],
            increment_fields=increments,
        )
        _insert_rows(
            PincodeTotal,
            ["state_key", "pincode", "state", *increments],
            [
                (*key, state, count, amount)
                for key, (state, count, amount) in sorted(self.pincodes.items())
                if count or amount
            ],
            unique_fields=["state_key", "pincode"],
            increment_fields=increments,
        )


def _add_to_summaries(*, new_rows: Iterable[Transaction | TransactionRecord]) -> None:
    """Fold newly stored rows into the per-month and per-pincode totals."""
    deltas = _SummaryDeltas()
    for row in new_rows:
        deltas.add(row, sign=1)
    deltas.write()


def recompute_summary_totals() -> None:
    """Rebuild the per-month and per-pincode totals from every stored transaction.

    Reads without locking, so ingest goes on meanwhile. Each table's difference between its
    stored rows and the transactions is read in one statement, which sees one snapshot of
    both: a concurrent write committed before it counts on both sides, one committed after
    on neither. Adding that difference to the rows (not overwriting them) then keeps what
    the later writes add. A few hundred rows are written, but every transaction is read:
    0.7 s at a million rows on MariaDB.
    """
    with transaction.atomic():
        deltas = _SummaryDeltas()
        for month, count, amount in selectors.monthly_total_differences():
            deltas.months[(month.year, month.month)] = [count, amount]
        for state_key, pincode, state, count, amount in selectors.pincode_total_differences():
            deltas.pincodes[(state_key, pincode)] = [state, count, amount]
        deltas.write()


def save_corrected_customer(*, customer: Customer, changed_by=None) -> None:
    """Store an operator's correction of a customer's name or mobile number."""
    if changed_by is not None:
        customer._history_user = changed_by
    with transaction.atomic():
        _record_values_before_correction(Customer, pk=customer.pk)
        customer.details_corrected_at = timezone.now()
        customer.save(update_fields=["name", "mob_no", "details_corrected_at"])


def _record_values_before_correction(model, *, pk) -> None:
    """Put a row's stored values in its history, unless its latest history entry holds them.

    Ingest stores rows in bulk without history, and moves a customer's name and mobile number
    on to those of a newer transaction; without this, a correction's history entry would hold
    the new values only and the old ones would be lost from the audit trail.
    """
    history_model = model.history.model
    stored = model.objects.filter(pk=pk).first()
    if stored is None:
        return  # a deleted row being restored: its history ends with the values it had
    tracked = [field.attname for field in history_model.tracked_fields]
    latest = (
        history_model.objects.filter(**{model._meta.pk.attname: pk}).order_by("-history_date", "-history_id").first()
    )
    if latest is not None and all(getattr(latest, name) == getattr(stored, name) for name in tracked):
        return
    # Built by hand: the history manager's helpers would credit the operator (the request's
    # user) with values that ingest stored.
    history_model.objects.create(
        history_date=(None if latest else getattr(stored, "created_at", None)) or timezone.now(),
        history_user=None,
        history_type="~" if latest else "+",
        history_change_reason="As stored before an operator's correction",
        **{name: getattr(stored, name) for name in tracked},
    )


ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Browser users: run the reports and upload files (an upload ingests transactions).
    "analyst": ("view_transaction", "view_customer", "add_transaction"),
    # Analysts who also correct data in the admin and see full mobile numbers.
    "operator": (
        "view_transaction", "view_customer", "add_transaction", "change_transaction", "delete_transaction",
        "change_customer", "view_pii", "view_historicaltransaction", "view_historicalcustomer",
    ),
    # Machines: ingest and query through the API.
    "api-client": ("add_transaction", "view_transaction"),
}


def ensure_roles() -> None:
    """Create (or bring up to date) the groups behind the three roles."""
    from django.contrib.auth.models import Group, Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(Permission.objects.filter(content_type__app_label="transactions", codename__in=codenames))


def assign_role(*, user, role: str) -> None:
    """Put a user in a role; operators also get staff status, which the admin requires."""
    from django.contrib.auth.models import Group

    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"Unknown role {role!r}; the roles are {', '.join(ROLE_PERMISSIONS)}.")
    ensure_roles()
    user.groups.add(Group.objects.get(name=role))
    if role == "operator" and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


def _as_increments(suffix: str, model, increment_fields: Sequence[str]) -> str:
    """Turn Django's "col = <new value>" upsert assignments into "col = col + <new value>".

    Django renders the new value as VALUE(col) on MariaDB, new.col on MySQL 8 and
    EXCLUDED.col on PostgreSQL and SQLite; adding the stored value in front is the same edit
    on all of them, and lets the database add a delta without the row being read first.
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    for name in increment_fields:
        column = quote(model._meta.get_field(name).column)
        stored = column if connection.vendor == "mysql" else f"{table}.{column}"
        assignment = f"{column} = "
        position = suffix.index(assignment) + len(assignment)
        suffix = f"{suffix[:position]}{stored} + {suffix[position:]}"
    return suffix


TRANSACTION_COLUMNS = [
    "customer", "name", "mob_no", "transaction_amount", "transaction_datetime",
    "pincode", "state", "state_key", "created_at",
]


def _insert_rows(
    model,
    field_names: Sequence[str],
    rows: Sequence[tuple],
    *,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
    increment_fields: Sequence[str] = (),
    ignore_conflicts: bool = False,
) -> None:
    """Multi-row INSERT of plain value tuples, in chunks.

    On a conflict with `unique_fields`: `update_fields` are overwritten (the values were
    computed under the customers' locks, so that is safe), `increment_fields` are added to,
    or, with `ignore_conflicts`, the row is skipped. This is what ``bulk_create`` sends, minus
    its per-value preparation, which costs more than the database's own work for 10,000 rows.
    """
    if not rows:
        return
    statement_start, suffix = _insert_statement(
        model, field_names, unique_fields=unique_fields, update_fields=update_fields,
        increment_fields=increment_fields, ignore_conflicts=ignore_conflicts,
    )
    if connection.vendor == "mysql":
        _insert_rows_as_mysql_literals(statement_start, suffix, rows)
        return
    fields = [model._meta.get_field(name) for name in field_names]
    datetime_positions = [i for i, field in enumerate(fields) if field.get_internal_type() == "DateTimeField"]
    row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
    adapt_datetime = datetime_adapter()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), BULK_BATCH_SIZE):
            chunk = rows[start : start + BULK_BATCH_SIZE]
            params: list[object] = []
            for row in chunk:
                row = list(row)
                for position in datetime_positions:
                    row[position] = adapt_datetime(row[position])
                params += row
            cursor.execute(f"{statement_start} {', '.join([row_placeholder] * len(chunk))} {suffix}", params)


def _insert_statement(
    model,
    field_names: Sequence[str],
    *,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
    increment_fields: Sequence[str] = (),
    ignore_conflicts: bool = False,
) -> tuple[str, str]:
    """``_insert_rows``'s statement around its rows: "INSERT ... VALUES" and the conflict clause."""
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(quote(field.column) for field in fields)
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    if update_fields or increment_fields:
        on_conflict = OnConflict.UPDATE
    # Django's own backend hooks spell INSERT IGNORE / ON CONFLICT / ON DUPLICATE KEY per vendor.
    insert = connection.ops.insert_statement(on_conflict=on_conflict)
    suffix = connection.ops.on_conflict_suffix_sql(
        fields,
        on_conflict,
        [model._meta.get_field(name).column for name in [*update_fields, *increment_fields]],
        [model._meta.get_field(name).column for name in unique_fields],
    ) or ""
    if increment_fields:
        suffix = _as_increments(suffix, model, increment_fields)
    return f"{insert} {quote(model._meta.db_table)} ({columns}) VALUES", suffix


def _insert_rendered_rows(model, field_names: Sequence[str], row_starts: Sequence[str], *, last_value) -> None:
    """INSERT rows already written as SQL up to their last value, which all rows share."""
    ending = mysql_literal_writer(connection.connection)(last_value) + ")"
    _send_mysql_rows(
        f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({_columns_of(model, field_names)}) VALUES",
        [row_start + ending for row_start in row_starts],
    )


def _insert_rows_as_mysql_literals(statement_start: str, suffix: str, rows: Sequence[tuple]) -> None:
    """Send the rows as literals written by ``mysql_literal_writer``, not as driver parameters."""
    connection.ensure_connection()
    literal = mysql_literal_writer(connection.connection)
    _send_mysql_rows(statement_start, ["(" + ",".join([literal(value) for value in row]) + ")" for row in rows], suffix)


def _send_mysql_rows(statement_start: str, written_rows: Sequence[str], suffix: str = "") -> None:
    with connection.cursor() as cursor:
        for start in range(0, len(written_rows), MYSQL_ROWS_PER_STATEMENT):
            values = ",".join(written_rows[start : start + MYSQL_ROWS_PER_STATEMENT])
            cursor.execute(f"{statement_start} {values} {suffix}")


# --- File imports -------------------------------------------------------------------------


class ImportTakenOver(Exception):
    """Another run now owns the import (this one was presumed dead); stop without writing."""


def start_import(*, owner, uploaded_file, file_format: str | None = None) -> ImportJob:
    """Store an uploaded file and queue its import; the rows are read later by the worker."""
    from .tasks import run_import

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
            _import_rows(job_id=job.pk, runner=runner, rows=rows, file_format=job.format)
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


def _import_rows(*, job_id: int, runner: str, rows: Iterator[import_files.FileRow], file_format: str) -> None:
    """Read, validate and store the rows chunk by chunk, in file order.

    The database work of a chunk runs on a thread of its own while the next chunk is read and
    validated: the driver releases the GIL while it waits for the server, so the two overlap
    and the import takes about as long as its database work. Inside an atomic block (a test
    case) the chunks are written inline, since another thread's connection could not see the
    caller's uncommitted rows.
    """
    chunks = iter(lambda: list(islice(rows, settings.CDP_IMPORT_CHUNK_ROWS)), [])
    if connection.in_atomic_block:
        for chunk in chunks:
            validated = _validated_chunk(job_id=job_id, chunk=chunk, file_format=file_format)
            _import_chunk(job_id=job_id, runner=runner, chunk=validated)
        return
    # Each time a query returns, the writer needs the GIL back from the reading thread; by
    # default it waits up to 5 ms for it, a dozen times a chunk.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval, IMPORT_SWITCH_INTERVAL))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"import-{job_id}") as writer:
        try:
            pending: Future | None = None
            for chunk in chunks:
                validated = _validated_chunk(job_id=job_id, chunk=chunk, file_format=file_format)
                if pending is not None:
                    pending.result()  # one chunk in flight; its error (database gone, taken over) stops the run
                pending = writer.submit(_import_chunk, job_id=job_id, runner=runner, chunk=validated)
            if pending is not None:
                pending.result()
        finally:
            # Run there, close_all finds the writer thread's own connection.
            writer.submit(connections.close_all)
            sys.setswitchinterval(switch_interval)


@dataclass(slots=True)
class _ValidatedChunk:
    records: list[TransactionRecord]
    prepared: PreparedBatch | None
    rejected: list[RejectedRow]
    row_count: int
    end_offset: int
    end_line: int


def _validated_chunk(*, job_id: int, chunk: list[import_files.FileRow], file_format: str) -> _ValidatedChunk:
    records: list[TransactionRecord] = []
    rejected: list[RejectedRow] = []
    for row in chunk:
        if row.problem is None:
            try:
                records.append(parse_transaction_record(row.values))
                continue
            except RecordInvalid as exc:
                row.problem = rejection_reason(exc.errors)
        # PostgreSQL text cannot hold NUL; a binary byte past the sniffed head would otherwise
        # fail the chunk and leave the job running for ever. Shown as undecodable bytes are.
        raw = row.raw.replace("\x00", "\ufffd")
        raw_masked = import_files.masked_raw(row, file_format=file_format).replace("\x00", "\ufffd")
        rejected.append(
            RejectedRow(job_id=job_id, line_number=row.line_number, raw=raw, raw_masked=raw_masked, reason=row.problem)
        )
    return _ValidatedChunk(
        records, prepare_batch(records) if records else None, rejected, len(chunk), chunk[-1].end_offset, chunk[-1].end_line
    )


def _import_chunk(*, job_id: int, runner: str, chunk: _ValidatedChunk) -> None:
    """Store one chunk's records and rejected rows and move the resume marker, all or nothing."""

    def save_progress(outcomes: list[IngestOutcome]) -> None:
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.runner != runner:
            raise ImportTakenOver()
        statuses = [outcome.status for outcome in outcomes]
        _insert_rejected_rows(chunk.rejected)
        ImportJob.objects.filter(pk=job_id).update(
            rows_processed=F("rows_processed") + chunk.row_count,
            created=F("created") + statuses.count("created"),
            duplicates=F("duplicates") + statuses.count("duplicate"),
            conflicts=F("conflicts") + statuses.count("conflict"),
            rejected=F("rejected") + len(chunk.rejected),
            byte_offset=chunk.end_offset,
            line_number=chunk.end_line,
            heartbeat_at=timezone.now(),
        )

    if chunk.records:
        ingest_transactions(records=chunk.records, before_commit=save_progress, prepared=chunk.prepared)
    else:
        with transaction.atomic():
            save_progress([])


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


def requeue_stale_imports(*, stale_after: dt.timedelta) -> list[int]:
    """Queue again the imports whose worker stopped reporting (killed, machine lost).

    The new run takes the job over from the last committed chunk; should the old run still be
    alive after all, its next commit finds another runner on the job and stops.
    """
    from .tasks import run_import

    cutoff = timezone.now() - stale_after
    stale = list(
        ImportJob.objects.filter(status=ImportJob.Status.RUNNING, heartbeat_at__lt=cutoff).values_list("pk", flat=True)
    )
    for job_id in stale:
        run_import.enqueue(job_id=job_id)
    return stale


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
