"""Storing a big batch set-based, through the database's own bulk loader.

Where the database has one (``has_bulk_loader``: LOAD DATA LOCAL INFILE on MariaDB/MySQL),
``ingest_transactions`` hands batches of ``MIN_RECORDS`` or more (a file import's chunk, a large
API batch) to ``store_in_bulk`` instead of writing them row by row (``ingest._store``), whose
SQL literals and per-row statements cost more than the server's own work:

1. the first record of each key is written to a file and loaded into a staging table of this
   connection (TEMPORARY: no other session sees it; a Galera cluster does not replicate it, and
   replicates what is inserted from it as row events);
2. one join finds the staged keys that are stored already; they leave the staging table, and
   Python tells duplicates from conflicts by the API's rule (``ingest._same_payment``);
3. grouped statements add what is left to the customers (in id order, which takes their row
   locks in the order ``ingest`` takes them), store the transactions (INSERT ... SELECT) and add
   to the per-pincode totals; the month and pincode deltas, a few hundred rows, are worked out
   in Python by ``totals.append_summary_deltas``, as every other writer's are.

All of it runs in the caller's transaction. The look-up takes no locks: a key another writer
stores meanwhile makes the INSERT fail on the unique constraint (IntegrityError), and
``ingest_transactions`` runs the batch again, as it does for its own path.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from operator import attrgetter

from django.db import DatabaseError, connection
from django.utils import timezone

from .. import selectors
from ..models import Customer, CustomerPincodeTotal, Transaction
from ..sql import operations
from ..validation import TransactionRecord
from . import totals
from .rows import adding, column

# Below this many records the staging table's set-up (a file, five statements more) costs more
# than it saves (measured: docs/PERFORMANCE.md, "Set-based import").
MIN_RECORDS = 200

STAGING_TABLE = "cdp_staged_transactions"
# The staged columns: the transaction's own, and ``seq``, the record's index in the batch.
STAGED_FIELDS = ["customer", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state", "state_key"]
STAGED_ATTRIBUTES = ["customer_id", *STAGED_FIELDS[1:]]  # of a TransactionRecord


def writes_in_bulk(records: Sequence[TransactionRecord], *, minimum: int = MIN_RECORDS) -> bool:
    """Whether ``ingest_transactions`` stores these records with ``store_in_bulk``."""
    return len(records) >= minimum and operations().has_bulk_loader


class PreparedRecords(list):
    """Records with what ``store_in_bulk`` works out from them alone done ahead: which record
    of each key is the first, and the staging file's text. A file import prepares its next
    chunk this way while the writer thread stores the one before (``services.imports``): the
    file's text was half of the writer's Python, which held the GIL the validation needed."""

    def __init__(self, records: Sequence[TransactionRecord]):
        super().__init__(records)
        # The first record of each key is the one that may be stored (a later one's index is
        # overwritten by the earlier one's, walking backwards).
        self.first_of_key = {self[index].key: index for index in range(len(self) - 1, -1, -1)}
        candidates = list(self.first_of_key.values())
        staged = map(self.__getitem__, candidates)
        self.file_text = operations().bulk_file_text([candidates, *zip(*map(attrgetter(*STAGED_ATTRIBUTES), staged))])


def prepared(records: Sequence[TransactionRecord]) -> Sequence[TransactionRecord]:
    """The records as ``PreparedRecords`` where ``ingest_transactions(in_bulk=True)`` would store
    them set-based; as they are elsewhere."""
    return PreparedRecords(records) if writes_in_bulk(records, minimum=1) else records


def store_in_bulk(
    records: Sequence[TransactionRecord], *, indexes: Sequence[int] | None = None, summary_deltas: bool = True
) -> list:
    """Store the records (in the caller's transaction); one ``IngestOutcome`` per record, whose
    index is the record's own, or its number in ``indexes`` (a slice of a bigger batch's).
    ``summary_deltas=False``: the month and pincode deltas are the caller's to append (a batch
    written in slices appends its own once, ``batch_parts``)."""
    from .ingest import IngestOutcome, _same_payment  # ingest routes big batches here

    records = records if isinstance(records, PreparedRecords) else PreparedRecords(records)
    first_of_key = records.first_of_key
    ops = operations()
    with connection.cursor() as cursor:
        for statement in ops.bulk_session_statements():
            cursor.execute(statement)
        cursor.execute(ops.drop_staging_table(table=STAGING_TABLE))  # left by a rolled-back attempt
        cursor.execute(ops.create_staging_table(
            table=STAGING_TABLE, columns=_staging_columns(), primary_key=[_column("customer"), _column("transaction_datetime")]
        ))
        try:
            _load(cursor, records)
            stored = _stored_repeats(cursor)  # seq -> what the stored row says
            if stored:
                cursor.execute(f"DELETE FROM {_quote(STAGING_TABLE)} WHERE seq IN ({', '.join(['%s'] * len(stored))})",
                               list(stored))
            staged = len(first_of_key) - len(stored)
            if staged:
                # Customers first: their row locks, in id order, before any transaction row.
                _add_to_customers(cursor)
                _insert_transactions(cursor, staged)
                _add_to_pincode_totals(cursor)
                # The month and pincode deltas in Python, as every writer adds them: grouped
                # statements over the staging table cost the server 2.4 us a row for a few
                # hundred rows of answer; the loop costs 0.9 (docs/PERFORMANCE.md, eighth session).
                if summary_deltas:
                    totals.append_summary_deltas(
                        records[index] for index in sorted(first_of_key.values()) if index not in stored
                    )
        except BaseException:
            try:  # the next attempt drops it anyway; the error that got here is the one to tell
                cursor.execute(ops.drop_staging_table(table=STAGING_TABLE))
            except DatabaseError:
                pass
            raise
        cursor.execute(ops.drop_staging_table(table=STAGING_TABLE))

    numbers = range(len(records)) if indexes is None else indexes
    if not stored and len(first_of_key) == len(records):  # the usual batch: every record new
        return [IngestOutcome(number, "created") for number in numbers]
    outcomes = []
    for index, (number, record) in enumerate(zip(numbers, records)):
        first = first_of_key[record.key]
        if first == index and index not in stored:
            outcomes.append(IngestOutcome(number, "created"))
            continue
        earlier = stored.get(first) or records[first]
        outcomes.append(IngestOutcome(number, "duplicate" if _same_payment(earlier, record) else "conflict"))
    return outcomes


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _column(field_name: str, model=Transaction) -> str:
    return column(model, field_name)


def _staging_columns() -> list[tuple[str, str]]:
    """The staged columns with their types as the model declares them (collations included),
    so a value the table would refuse is refused (a warning, see ``bulk_load``) when staged."""
    columns = [("seq", "integer NOT NULL")]
    for name in STAGED_FIELDS:
        field = Transaction._meta.get_field(name)
        parameters = field.db_parameters(connection)
        kind = parameters["type"]
        if parameters.get("collation"):
            kind = f"{kind} COLLATE {parameters['collation']}"
        columns.append((field.column, f"{kind} NOT NULL"))
    return columns


def _load(cursor, records: PreparedRecords) -> None:
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="\n", prefix="cdp-bulk-", suffix=".tsv") as file:
        file.write(records.file_text)
        file.flush()
        operations().bulk_load(cursor, table=STAGING_TABLE, columns=["seq", *(_column(name) for name in STAGED_FIELDS)],
                               path=file.name, rows=len(records.first_of_key))


def _stored_repeats(cursor) -> dict[int, selectors.StoredPayment]:
    staging, table = _quote(STAGING_TABLE), _quote(Transaction._meta.db_table)
    customer, moment = _quote(_column("customer")), _quote(_column("transaction_datetime"))
    amount, pincode, state_key = (_quote(_column(name)) for name in ("transaction_amount", "pincode", "state_key"))
    cursor.execute(
        f"SELECT s.seq, t.{amount}, t.{pincode}, t.{state_key} FROM {staging} s "
        f"JOIN {table} t ON t.{customer} = s.{customer} AND t.{moment} = s.{moment}"
    )
    return {seq: selectors.StoredPayment(amount_value, pincode_value, state_key_value)
            for seq, amount_value, pincode_value, state_key_value in cursor.fetchall()}


def _add_to_customers(cursor) -> None:
    """What the staged rows add to each customer, upserted in customer id order.

    The SQL half of ``totals.customer_additions`` (the rule in Python: the newest row's details,
    amounts and counts added up), folded in by the same upsert (``totals._customer_addition_upsert``).
    The additions are selected under names of their own: in the upsert, ``name`` must mean the
    customer's column, not the staged one.
    """
    ops = operations()
    staging = _quote(STAGING_TABLE)
    customer, moment = _quote(_column("customer")), _quote(_column("transaction_datetime"))
    name, mob_no, amount = (_quote(_column(field)) for field in ("name", "mob_no", "transaction_amount"))
    targets = ", ".join(_quote(column(Customer, field)) for field in totals.CUSTOMER_COLUMNS)
    upsert = totals._customer_addition_upsert()
    suffix = ops.upsert_suffix(
        conflict_columns=[column(Customer, field) for field in upsert.conflict_fields],
        assignments=[(column(Customer, field), expression) for field, expression in upsert.assignments],
    )
    cursor.execute(
        f"INSERT INTO {_quote(Customer._meta.db_table)} ({targets}) "
        "SELECT added_customer, added_name, added_mob_no, added_as_of, added_amount, added_count FROM ("
        f"SELECT {customer} AS added_customer, {name} AS added_name, {mob_no} AS added_mob_no, {moment} AS added_as_of, "
        f"SUM({amount}) OVER per_customer AS added_amount, COUNT(*) OVER per_customer AS added_count, "
        f"ROW_NUMBER() OVER (PARTITION BY {customer} ORDER BY {moment} DESC) AS recency "
        f"FROM {staging} WINDOW per_customer AS (PARTITION BY {customer})"
        f") AS additions WHERE recency = 1 ORDER BY added_customer {suffix}"
    )


def _insert_transactions(cursor, staged: int) -> None:
    """The staged rows into the transactions table, in key order (the unique index fills in order).

    Every staged row's customer was upserted just before, by this transaction, which holds its
    row lock until it commits: the customer exists, and no one can delete it meanwhile. So the
    foreign key is not checked again row by row (``parents_known``)."""
    columns = [_quote(_column(name)) for name in STAGED_FIELDS]
    customer, moment = _quote(_column("customer")), _quote(_column("transaction_datetime"))
    ops = operations()
    cursor.execute(
        ops.parents_known(
            f"INSERT INTO {_quote(Transaction._meta.db_table)} ({', '.join(columns)}, {_quote(_column('created_at'))}) "
            f"SELECT {', '.join(columns)}, %s FROM {_quote(STAGING_TABLE)} ORDER BY {customer}, {moment}"
        ),
        [ops.adapt_datetime(timezone.now())],
    )
    if cursor.rowcount != staged:
        raise DatabaseError(f"stored {cursor.rowcount} of {staged} staged transactions")


def _add_to_pincode_totals(cursor) -> None:
    """The SQL half of ``totals.add_to_pincode_totals``: per customer, state and pincode, added up."""
    ops = operations()
    model = CustomerPincodeTotal
    customer, state_key, pincode, state, amount = (
        _quote(_column(name)) for name in ("customer", "state_key", "pincode", "state", "transaction_amount")
    )
    targets = ", ".join(_quote(column(model, field)) for field in totals.PINCODE_TOTAL_COLUMNS)
    suffix = ops.upsert_suffix(
        conflict_columns=[column(model, field) for field in ("customer", "state_key", "pincode")],
        assignments=[(column(model, field), expression) for field, expression in adding(model, ["total_amount", "transaction_count"])],
    )
    cursor.execute(
        f"INSERT INTO {_quote(model._meta.db_table)} ({targets}) "
        f"SELECT {customer}, {state_key}, {pincode}, MIN({state}), SUM({amount}), COUNT(*) FROM {_quote(STAGING_TABLE)} "
        f"GROUP BY {customer}, {state_key}, {pincode} ORDER BY {customer}, {state_key}, {pincode} {suffix}"
    )
