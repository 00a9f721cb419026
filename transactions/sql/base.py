"""What every vendor shares; the vendor modules override what they spell differently."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import OperationalError


class Operations:
    """SQL features of one database connection (see the package docstring)."""

    # The collation that compares text exactly, where the database default does not (fields.py).
    exact_collation: str | None = None
    # Whether SUM over DECIMAL columns is exact (SQLite sums binary floats).
    exact_decimal_sums = True
    # Whether "INSERT ... skip stored keys ... RETURNING" says which rows were stored.
    can_return_rows_from_insert_skipping_conflicts = True
    # Whether the database waits for row locks at all (SQLite locks the whole database).
    has_row_locks = True
    # Whether several statements (of literals, no parameters) may go in one round trip
    # (``services.rows.sent_together``): MySQL with CLIENT.MULTI_STATEMENTS on the connection.
    sends_statements_together = False
    # Whether a big read (a window's sums) split in parts, each on a connection of its own and
    # all at once, takes less time than as one statement (``transactions.parts``).
    reads_faster_in_parts = False
    # Whether a file of rows can be loaded into a table by the database's own bulk loader
    # (``bulk_load``): MySQL's LOAD DATA LOCAL INFILE, where the connection allows it.
    # ``services.bulk`` then stores big batches set-based; elsewhere they go row by row.
    has_bulk_loader = False
    # Whether one transaction's work can be split over several connections and committed as
    # one by two-phase commit (``two_phase_*``): MySQL/MariaDB's XA on a single server (a
    # Galera cluster has no XA). ``services.batch_parts`` writes a big batch that way.
    has_two_phase_commit = False
    # Whether the names of a ranking's few rows are read faster by joining the customers to
    # them than by a look-up of each in a subquery (``selectors._ranked_rows``). PostgreSQL
    # planned the join as a hash of every customer; MariaDB ran each look-up as a subquery.
    joins_names_to_ranked_rows = False

    def __init__(self, connection) -> None:
        self.connection = connection
        self.quote = connection.ops.quote_name

    # --- errors -------------------------------------------------------------------------

    def is_transient(self, exc: OperationalError) -> bool:
        """A lock wait timeout, deadlock or serialization failure: run the transaction again."""
        return False

    # --- values ---------------------------------------------------------------------------

    def adapt_datetime(self, value: dt.datetime):
        return self.connection.ops.adapt_datetimefield_value(value)

    def render_rows(self, rows: Sequence[tuple], datetime_positions: Sequence[int] = ()) -> tuple[str, list]:
        """``(v, ...), (v, ...)`` for a VALUES list, and its parameters.

        The one place values reach the write path's SQL: as parameters here; MySQL's module
        writes them as literals instead, every value through one writer.
        """
        width = len(rows[0])
        placeholder = "(" + ", ".join(["%s"] * width) + ")"
        params: list = []
        adapt = self.adapt_datetime
        for row in rows:
            if datetime_positions:
                row = list(row)
                for position in datetime_positions:
                    row[position] = adapt(row[position])
            params.extend(row)
        return ", ".join([placeholder] * len(rows)), params

    def one_of(self, expression: str, values: Sequence) -> tuple[str, list]:
        """A condition that ``expression`` (SQL) equals one of ``values`` (numbers or texts, a
        few thousand at most), and its parameters."""
        listed, params = self.render_rows([(value,) for value in values])
        return f"{expression} IN ({listed})", params

    def exact_decimal_sum(self, expression: str) -> str:
        """``expression`` (a sum of DECIMAL(…, 2) values) as the exact sum in cents."""
        return expression

    # --- statements -----------------------------------------------------------------------

    def insert_start(self, *, skip_conflicts: bool = False) -> str:
        return "INSERT INTO"

    def new_value(self, column: str) -> str:
        """The value the conflicting row would have had, inside an upsert's assignments."""
        return f"EXCLUDED.{self.quote(column)}"

    def stored_value(self, table: str, column: str) -> str:
        """The stored row's value inside an upsert's assignments."""
        return f"{self.quote(table)}.{self.quote(column)}"

    def upsert_suffix(self, *, conflict_columns: Sequence[str], assignments: Sequence[tuple[str, str]]) -> str:
        """What follows the VALUES of an INSERT that updates the row it collides with.

        ``assignments`` are (column, expression) in order; an expression reads stored values
        through ``stored_value`` and the new ones through ``new_value``. MySQL applies them left
        to right, each seeing the ones before; PostgreSQL and SQLite see only the stored row. A
        caller whose expressions read only columns assigned after them gets the same on all.
        """
        sets = ", ".join(f"{self.quote(column)} = {expression}" for column, expression in assignments)
        conflict = ", ".join(self.quote(column) for column in conflict_columns)
        return f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}"

    def skip_conflicts_suffix(self, *, conflict_columns: Sequence[str]) -> str:
        conflict = ", ".join(self.quote(column) for column in conflict_columns)
        return f"ON CONFLICT ({conflict}) DO NOTHING"

    def returning(self, columns: Sequence[str]) -> str:
        return "RETURNING " + ", ".join(self.quote(column) for column in columns)

    def rows_per_statement(self, width: int) -> int:
        """Rows per INSERT: within the driver's parameter limit (65,535 on PostgreSQL)."""
        return max(1, min(2500, 30000 // max(1, width)))

    def check_skipped_rows(self, cursor, *, sent: int, stored: int) -> None:
        """Raise if an insert skipping stored keys skipped a row for another reason."""

    # --- a commit that holds only while a stored value is unchanged -----------------------

    def commit_condition(self, *, table: str, key_column: str, value_column: str, key: str, expected: str | None) -> str | None:
        """A statement that fails unless ``table``'s row ``key`` still holds ``expected`` in
        ``value_column`` (no row: ``expected`` is None), sent last before a transaction's
        COMMIT so that the commit happens only if it holds; None where the database has none
        (the caller then reads the value before it writes)."""
        return None

    def is_failed_commit_condition(self, exc: Exception) -> bool:
        """Whether ``exc`` is a ``commit_condition`` statement failing."""
        return False

    # --- two-phase commit (where ``has_two_phase_commit``) ----------------------------------

    def two_phase_start(self, xid: str) -> str:
        """Begin this connection's branch ``xid`` of a transaction committed in two phases."""
        raise NotImplementedError

    def two_phase_prepare(self, xid: str) -> list[str]:
        """End the branch's work and prepare it: once these succeed, it survives a crash of the
        client or the server and waits, holding its locks, for ``two_phase_finish``."""
        raise NotImplementedError

    def two_phase_finish(self, xid: str, *, commit: bool) -> str:
        """Commit (or roll back) a prepared branch: from the connection that prepared it, or
        from any connection once that one is gone."""
        raise NotImplementedError

    def two_phase_abandon(self, xid: str) -> list[str]:
        """Roll back a branch that is not prepared (its work failed part-way)."""
        raise NotImplementedError

    def prepared_branches(self, cursor) -> list[str]:
        """The xids of every prepared branch the server holds (any client's)."""
        return []

    def is_unknown_branch(self, exc: Exception) -> bool:
        """Whether ``exc`` says the branch is not one this connection may finish: finished
        already, or still held by the live connection that prepared it."""
        return False

    def lock_wait_statements(self, seconds: int | None) -> list[str]:
        """Set how long this session waits for a row lock (None: the server's default)."""
        return []

    # --- the bulk loader (where ``has_bulk_loader``) --------------------------------------

    def create_staging_table(self, *, table: str, columns: Sequence[tuple[str, str]], primary_key: Sequence[str]) -> str:
        """A table of this connection only (TEMPORARY), of ``columns`` (name, type)."""
        spelled = ", ".join(f"{self.quote(name)} {kind}" for name, kind in columns)
        key = ", ".join(self.quote(name) for name in primary_key)
        return f"CREATE TEMPORARY TABLE {self.quote(table)} ({spelled}, PRIMARY KEY ({key}))"

    def parents_known(self, insert: str) -> str:
        """An INSERT ... SELECT whose every row's parent row (a foreign key's target) this very
        transaction has just written and holds locked: the rows need no foreign key check each."""
        return insert

    def bulk_session_statements(self) -> list[str]:
        """What a connection runs before it stages rows (session settings)."""
        return []

    def drop_staging_table(self, *, table: str) -> str:
        return f"DROP TABLE IF EXISTS {self.quote(table)}"

    def bulk_file_text(self, columns: Sequence[Sequence]) -> str:
        """Rows, given as their columns (each of one type), as the text of a file ``bulk_load`` reads."""
        raise NotImplementedError

    def bulk_load(self, cursor, *, table: str, columns: Sequence[str], path: str, rows: int) -> None:
        """Load the file at ``path`` (``rows`` rows of ``bulk_file_text``) into ``table``.

        Raises unless every row was loaded exactly as written.
        """
        raise NotImplementedError

    def customer_total_json(self, *, customer_id: str, name: str, total: str) -> str | None:
        """An expression writing a range answer's row as ``json_codec._CUSTOMER_TOTAL_JSON``
        does (the two name each other), from these column expressions (the total a DECIMAL with
        two places); None where the database cannot write it exactly (its JSON strings escape
        what ``json_codec.dumps_exact`` escapes; ``json_codec.WrittenRows`` evens out case)."""
        return None

    def summed_once(self, select: str) -> str:
        """A SELECT joining a derived table of per-customer sums to another table, planned so
        that the sums are computed once (not again for each joined row)."""
        return select
