"""The write path's one statement builder: multi-row INSERTs of plain value tuples.

``bulk_create`` prepares every value through its field, which for 10,000 rows costs more than
the database's own work; these take plain tuples (ints, Decimals, UTC datetimes, texts) and
hand them to ``sql.operations().render_rows``, the one place values reach SQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.db import transaction

from ..sql import operations

# Beyond this many characters of statements waiting, they are sent rather than kept waiting
# (well under MariaDB's max_allowed_packet of 16 MB).
MAX_WAITING_CHARACTERS = 4_000_000

_waiting = threading.local()  # .statements: the statements of the open sent_together() block


@contextmanager
def sent_together() -> Iterator[None]:
    """Send the statements ``insert_rows`` runs in this block in as few round trips as may be.

    Where the database takes several statements at once (``sends_statements_together``), a
    statement that returns nothing waits, and goes with the next one that returns rows, or at
    the block's end: a single ingest's five writes make two round trips instead of five. Only
    ``insert_rows`` waits; nothing in the block may read what a waiting statement writes.
    Elsewhere every statement is sent at once, as outside the block.
    """
    if not operations().sends_statements_together or getattr(_waiting, "statements", None) is not None:
        yield
        return
    _waiting.statements = []
    try:
        yield
        send_waiting()
    finally:
        _waiting.statements = None


@contextmanager
def transaction_sent_together() -> Iterator[None]:
    """``transaction.atomic()`` and ``sent_together()`` in one, with the transaction's own
    statements sent along with the block's.

    Where statements go together, ``START TRANSACTION`` waits for the block's first statement
    and ``COMMIT`` goes with its last: a single ingest makes two round trips in all, where
    ``atomic()`` adds three of its own (``SET autocommit=0``, ``COMMIT``, ``SET autocommit=1``).
    On any error the transaction is rolled back before the error goes on, as ``atomic()``
    would; if even that fails the connection is closed, which rolls it back on the server.
    Elsewhere, or inside another transaction, it is ``atomic()`` around ``sent_together()``.
    """
    ops = operations()
    connection = ops.connection  # the thread's own (not django.db.connection's proxy: see sql.operations)
    connection.ensure_connection()
    if (not ops.sends_statements_together or connection.in_atomic_block
            or not connection.get_autocommit() or getattr(_waiting, "statements", None) is not None):
        with transaction.atomic(), sent_together():
            yield
        return
    _waiting.statements = ["START TRANSACTION"]
    try:
        yield
        _waiting.statements.append("COMMIT")
        send_waiting()
    except BaseException:
        _waiting.statements = None
        try:
            with connection.cursor() as cursor:
                cursor.execute("ROLLBACK")
        except Exception:
            connection.close()
        raise
    finally:
        _waiting.statements = None


def run_last(statement: str) -> None:
    """Run a statement that returns nothing now or, in a ``sent_together`` block, with the
    block's waiting statements (in a ``transaction_sent_together`` block, just before COMMIT)."""
    waiting = getattr(_waiting, "statements", None)
    if waiting is not None:
        waiting.append(statement)
        return
    with operations().connection.cursor() as cursor:
        cursor.execute(statement)


def send_waiting() -> None:
    """Send the statements waiting in a ``sent_together`` block now (before a read of what they write)."""
    waiting = getattr(_waiting, "statements", None)
    if waiting:
        connection = operations().connection
        with connection.cursor() as cursor:
            _send(connection, cursor, waiting)


def _send(connection, cursor, statements: list[str]) -> None:
    """Run the statements in one round trip; the cursor is left at the last one's result."""
    cursor.execute(";\n".join(statements))
    if len(statements) > 1:
        # The server reports a later statement's error as the client moves on to its result.
        with connection.wrap_database_errors:
            for _ in range(len(statements) - 1):
                cursor.cursor.nextset()
    statements.clear()


class Upsert:
    """On a conflict with ``conflict_fields``, assign ``assignments`` (field, expression).

    Expressions are built from ``stored(field)`` and ``new(field)`` of the model's table.
    """

    def __init__(self, model, conflict_fields: Sequence[str], assignments: Sequence[tuple[str, str]]):
        self.conflict_fields = conflict_fields
        self.assignments = assignments


def column(model, field_name: str) -> str:
    return model._meta.get_field(field_name).column


def stored(model, field_name: str) -> str:
    return operations().stored_value(model._meta.db_table, column(model, field_name))


def new(model, field_name: str) -> str:
    return operations().new_value(column(model, field_name))


def adding(model, field_names: Sequence[str]) -> list[tuple[str, str]]:
    """Assignments that add the new row's values to the stored ones (a counter's upsert)."""
    ops = operations()
    assignments = []
    for name in field_names:
        total = f"{stored(model, name)} + {new(model, name)}"
        if model._meta.get_field(name).get_internal_type() == "DecimalField":
            total = ops.exact_decimal_sum(total)
        assignments.append((name, total))
    return assignments


# (vendor's operations class, model, fields, upsert, skip, returning) -> _statement_around_values
_statements: dict[tuple, tuple[str, str, tuple[int, ...]]] = {}


def _statement_around_values(
    ops, model, field_names: tuple[str, ...], upsert: tuple | None, skip_conflicts_on: tuple[str, ...], returning: tuple[str, ...]
) -> tuple[str, str, tuple[int, ...]]:
    """``insert_rows``' statement before and after its VALUES, and where its datetimes are.

    The same few statements are written on every request: each is built once per vendor (its
    text depends on nothing else) and kept.
    """
    key = (type(ops), model, field_names, upsert, skip_conflicts_on, returning)
    found = _statements.get(key)
    if found is None:
        if len(_statements) >= 1000:  # never, with the app's few statements; a bound all the same
            _statements.clear()
        found = _statements[key] = _build_statement_around_values(ops, model, *key[2:])
    return found


def _build_statement_around_values(ops, model, field_names, upsert, skip_conflicts_on, returning):
    quote = ops.quote
    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(quote(field.column) for field in fields)
    datetime_positions = tuple(i for i, field in enumerate(fields) if field.get_internal_type() == "DateTimeField")
    start = f"{ops.insert_start(skip_conflicts=bool(skip_conflicts_on))} {quote(model._meta.db_table)} ({columns}) VALUES"
    suffix = ""
    if upsert is not None:
        conflict_fields, assignments = upsert
        suffix = ops.upsert_suffix(
            conflict_columns=[column(model, name) for name in conflict_fields],
            assignments=[(column(model, name), expression) for name, expression in assignments],
        )
    elif skip_conflicts_on:
        suffix = ops.skip_conflicts_suffix(conflict_columns=[column(model, name) for name in skip_conflicts_on])
    if returning:
        suffix = f"{suffix} {ops.returning([column(model, name) for name in returning])}"
    return start, suffix, datetime_positions


def insert_rows(
    model,
    field_names: Sequence[str],
    rows: Sequence[tuple],
    *,
    upsert: Upsert | None = None,
    skip_conflicts_on: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[tuple]:
    """INSERT the rows in statements of ``rows_per_statement``; what RETURNING gave back.

    ``skip_conflicts_on``: rows colliding with these fields' unique key are skipped (and,
    with ``returning``, left out of what comes back: that is how a caller learns which rows
    were stored).
    """
    if not rows:
        return []
    ops = operations()
    start, suffix, datetime_positions = _statement_around_values(
        ops, model, tuple(field_names),
        None if upsert is None else (tuple(upsert.conflict_fields), tuple(upsert.assignments)),
        tuple(skip_conflicts_on), tuple(returning),
    )
    returned: list[tuple] = []
    step = ops.rows_per_statement(len(field_names))
    connection = ops.connection
    with connection.cursor() as cursor:
        for first in range(0, len(rows), step):
            chunk = rows[first : first + step]
            values, params = ops.render_rows(chunk, datetime_positions)
            statement = f"{start} {values} {suffix}"
            waiting = getattr(_waiting, "statements", None)
            if waiting is not None and not params:
                waiting.append(statement)
                if not returning and sum(map(len, waiting)) < MAX_WAITING_CHARACTERS:
                    continue
                _send(connection, cursor, waiting)
            else:
                # No parameters (MySQL: literals) must be None, or the driver reads a "%" in a text as one.
                cursor.execute(statement, params or None)
            if returning:
                got = cursor.fetchall()
                returned.extend(got)
                if skip_conflicts_on:
                    ops.check_skipped_rows(cursor, sent=len(chunk), stored=len(got))
    return returned
