"""MySQL and MariaDB: ON DUPLICATE KEY UPDATE, INSERT IGNORE, and values written as literals."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cached_property

from django.db import DatabaseError
from MySQLdb.constants.CLIENT import MULTI_STATEMENTS

from .base import Operations

# LOAD DATA's escapes (FIELDS ESCAPED BY '\\'), the backslash first. Validated texts hold no
# tab, line break or NUL; they are escaped all the same, so no text can shift a column.
_BULK_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})
_BULK_SPECIAL = re.compile(r"[\\\t\n\r\0]")

# Session-wide bound of the server's in-memory internal temporary tables while staging (see
# bulk_session_statements); the server's default is 16 MB.
BULK_TEMPORARY_TABLE_BYTES = 64 * 1024 * 1024

LOCK_WAIT_TIMEOUT, DEADLOCK = 1205, 1213  # 1213 is also Galera's certification failure
SUBQUERY_RETURNS_MORE_THAN_ONE_ROW = 1242  # how commit_condition fails
XAER_NOTA = 1397  # "Unknown XID": no such branch, or one another live connection holds


class MySQLOperations(Operations):
    exact_collation = "utf8mb4_bin"
    # One statement runs on one core of the server: a window's sums split in two took 182 ms
    # where one statement took 282 (docs/PERFORMANCE.md).
    reads_faster_in_parts = True
    # Half the largest state's pincodes ranked with names, a million rows: the statement took
    # 92-114 ms with the join where it took 98-121 ms with a look-up per row (ANALYZE, in turn).
    joins_names_to_ranked_rows = True

    def __init__(self, connection) -> None:
        super().__init__(connection)
        # MariaDB has INSERT ... RETURNING; MySQL 8 has not (Django's feature says which).
        self.can_return_rows_from_insert_skipping_conflicts = connection.features.can_return_rows_from_bulk_insert
        # settings.py turns CLIENT.MULTI_STATEMENTS on (values reach SQL only as the escaper's
        # literals, render_rows below, so a stacked statement has no way in).
        flags = connection.settings_dict.get("OPTIONS", {}).get("client_flag", 0)
        self.sends_statements_together = bool(flags & MULTI_STATEMENTS)
        # settings.py asks mysqlclient for LOCAL INFILE; the server must allow it too
        # (local_infile: ON by default on MariaDB, OFF on MySQL 8).
        self.has_bulk_loader = bool(connection.settings_dict.get("OPTIONS", {}).get("local_infile"))

    @cached_property
    def has_two_phase_commit(self) -> bool:
        # XA on a single server; a server that runs wsrep (a Galera node) refuses XA.
        with self.connection.cursor() as cursor:
            try:
                cursor.execute("SELECT @@wsrep_on")
            except DatabaseError:  # MySQL: no wsrep at all
                return True
            (wsrep_on,) = cursor.fetchone()
        return not wsrep_on

    def is_transient(self, exc) -> bool:
        return bool(exc.args) and exc.args[0] in (LOCK_WAIT_TIMEOUT, DEADLOCK)

    def adapt_datetime(self, value: dt.datetime):
        # Django's adapter converts zones and formats a string per value; the values are UTC.
        return value.replace(tzinfo=None)

    def render_rows(self, rows: Sequence[tuple], datetime_positions: Sequence[int] = ()) -> tuple[str, list]:
        """Every value as a literal: mysqlclient turns each parameter into one in Python through
        several calls, which for a 10,000-row insert took longer than the server's work."""
        literal = self.literal_writer()
        return ",".join(["(" + ",".join([literal(value) for value in row]) + ")" for row in rows]), []

    def literal_writer(self) -> Callable[[object], str]:
        """SQL literals for the value types the app writes; strings through the driver's C escaper
        (it honours the connection's character set and NO_BACKSLASH_ESCAPES). Texts repeat within
        a batch (a few dozen states, thousands of times), so each is escaped once."""
        self.connection.ensure_connection()
        driver = self.connection.connection
        escape, encoding = driver.string_literal, driver.encoding
        written: dict = {}

        def literal(value: object) -> str:
            kind = type(value)
            if kind is int:
                return str(value)
            if kind is Decimal:
                # Fixed-point spelling: MySQL reads 1E+3 as a float, 1000.00 as an exact DECIMAL.
                return format(value, "f")
            if kind is str:
                text = written.get(value)
                if text is None:
                    text = escape(value.encode(encoding)).decode(encoding)
                    if len(written) < 100_000:
                        written[value] = text
                return text
            if kind is dt.datetime:
                # The column holds naive UTC; MariaDB takes no offset in a datetime literal.
                # Not kept: a batch's moments are nearly all different.
                if value.tzinfo is not None:
                    if value.utcoffset():
                        value = value.astimezone(dt.timezone.utc)
                    value = value.replace(tzinfo=None)
                return f"'{value.isoformat(' ')}'"
            if value is None:
                return "NULL"
            if kind is bool:
                return "1" if value else "0"
            if kind is dt.date:
                return f"'{value.isoformat()}'"
            raise TypeError(f"no SQL literal for {kind.__name__}")

        return literal

    def commit_condition(self, *, table: str, key_column: str, value_column: str, key: str, expected: str | None) -> str | None:
        # MySQL has no statement that raises an error of one's choosing outside a stored
        # program; a scalar subquery that returns two rows does (error 1242), and it returns
        # the second row only when the stored value differs (<=>: NULL-safe, so a missing row
        # equals an expected None). Assigned to a session variable so that it is evaluated.
        if not self.sends_statements_together:
            return None
        literal = self.literal_writer()
        stored = f"(SELECT {self.quote(value_column)} FROM {self.quote(table)} WHERE {self.quote(key_column)} = {literal(key)})"
        # Compared as bytes: the column's collation may ignore case.
        return (f"SET @cdp_commit_condition = (SELECT 1 UNION ALL SELECT 1 FROM DUAL "
                f"WHERE NOT (CAST({stored} AS BINARY) <=> CAST({literal(expected)} AS BINARY)))")

    def is_failed_commit_condition(self, exc: Exception) -> bool:
        return bool(getattr(exc, "args", None)) and exc.args[0] == SUBQUERY_RETURNS_MORE_THAN_ONE_ROW

    def customer_total_json(self, *, customer_id: str, name: str, total: str) -> str | None:
        # A DECIMAL(x, 2) converts to its text with both places; JSON_QUOTE escapes as
        # Python's JSON encoder does, with upper-case hex (json_codec.WrittenRows evens it out).
        return (f"""CONCAT('{{"customer_id":', {customer_id}, ',"name":', JSON_QUOTE({name}), """
                f"""',"total_transaction_amount":', {total}, '}}')""")

    def summed_once(self, select: str) -> str:
        # MariaDB's optimizer may push the join into the derived table ("split materialized",
        # a lateral derived table): the window summed again for each of tens of thousands of
        # customers, seconds instead of a fraction of one. Turned off for this statement only.
        if self.connection.mysql_is_mariadb:
            return f"SET STATEMENT optimizer_switch='split_materialized=off' FOR {select}"
        return select

    def parents_known(self, insert: str) -> str:
        # Each row's check is a look-up of its parent under a shared lock: 10-13% of the staged
        # transactions' INSERT ... SELECT (docs/PERFORMANCE.md, eighth session). For this
        # statement only, on MariaDB (MySQL has no SET STATEMENT).
        if self.connection.mysql_is_mariadb:
            return f"SET STATEMENT foreign_key_checks=0 FOR {insert}"
        return insert

    def insert_start(self, *, skip_conflicts: bool = False) -> str:
        # IGNORE would also skip a row for another error (a value too long, say) with a warning
        # of its own: check_skipped_rows catches that.
        return "INSERT IGNORE INTO" if skip_conflicts else "INSERT INTO"

    def new_value(self, column: str) -> str:
        return f"VALUES({self.quote(column)})"

    def stored_value(self, table: str, column: str) -> str:
        return self.quote(column)

    def upsert_suffix(self, *, conflict_columns: Sequence[str], assignments: Sequence[tuple[str, str]]) -> str:
        sets = ", ".join(f"{self.quote(column)} = {expression}" for column, expression in assignments)
        return f"ON DUPLICATE KEY UPDATE {sets}"

    def skip_conflicts_suffix(self, *, conflict_columns: Sequence[str]) -> str:
        return ""  # said by INSERT IGNORE

    def rows_per_statement(self, width: int) -> int:
        # A statement must fit max_allowed_packet (4 MB on MySQL 5.7, more since): a transaction
        # row is at most ~800 bytes (100- and 50-character texts in 4-byte UTF-8), so 2 MB at worst.
        return 2500

    def check_skipped_rows(self, cursor, *, sent: int, stored: int) -> None:
        if self.connection.connection.warning_count() > sent - stored:
            raise DatabaseError("INSERT IGNORE skipped rows for another reason than a stored key")

    # --- two-phase commit: XA ---------------------------------------------------------------
    # A branch's xid is written as a literal: XA takes no parameters. Xids are the app's own
    # (letters, digits, dashes), spelled through the one literal writer all the same.

    def two_phase_start(self, xid: str) -> str:
        return f"XA START {self.literal_writer()(xid)}"

    def two_phase_prepare(self, xid: str) -> list[str]:
        literal = self.literal_writer()(xid)
        return [f"XA END {literal}", f"XA PREPARE {literal}"]

    def two_phase_finish(self, xid: str, *, commit: bool) -> str:
        return f"XA {'COMMIT' if commit else 'ROLLBACK'} {self.literal_writer()(xid)}"

    def two_phase_abandon(self, xid: str) -> list[str]:
        literal = self.literal_writer()(xid)
        return [f"XA END {literal}", f"XA ROLLBACK {literal}"]

    def prepared_branches(self, cursor) -> list[str]:
        cursor.execute("XA RECOVER")
        # formatID, gtrid_length, bqual_length, data (the gtrid then the bqual; ours have none)
        return [data.decode() if isinstance(data, bytes) else data for _, _, _, data in cursor.fetchall()]

    def is_unknown_branch(self, exc: Exception) -> bool:
        return bool(getattr(exc, "args", None)) and exc.args[0] == XAER_NOTA

    def lock_wait_statements(self, seconds: int | None) -> list[str]:
        return [f"SET SESSION innodb_lock_wait_timeout = {'DEFAULT' if seconds is None else int(seconds)}"]

    # --- the bulk loader -----------------------------------------------------------------

    def bulk_session_statements(self) -> list[str]:
        # The grouped statements over a staging table of tens of thousands of rows need internal
        # temporary tables larger than the default 16 MB, which would otherwise be written to
        # the server's tmpdir (slower, and one import lost a chunk to a file deleted there).
        # Session values only: the server's globals are left alone.
        return [f"SET SESSION tmp_table_size = {BULK_TEMPORARY_TABLE_BYTES}, "
                f"max_heap_table_size = {BULK_TEMPORARY_TABLE_BYTES}"]

    def drop_staging_table(self, *, table: str) -> str:
        # TEMPORARY: never a real table by mistake, and no implicit commit (a plain DROP TABLE
        # ends the transaction on MySQL).
        return f"DROP TEMPORARY TABLE IF EXISTS {self.quote(table)}"

    def bulk_file_text(self, columns: Sequence[Sequence]) -> str:
        """Tab-separated lines in LOAD DATA's default format. Not SQL: what a text holds reaches
        the table as data, whatever it is. Written a column at a time (each column holds one
        type), which for 50,000 rows takes a fraction of writing each value by its type."""
        if not columns or not columns[0]:
            return ""
        spelled = [self._bulk_column(values) for values in columns]
        return "\n".join(map("\t".join, zip(*spelled))) + "\n"

    @staticmethod
    def _bulk_column(values: Sequence) -> Sequence[str]:
        kinds = set(map(type, values))
        if len(kinds) != 1:
            raise TypeError(f"a bulk-file column holds one type, not {sorted(k.__name__ for k in kinds)}")
        [kind] = kinds
        if kind is str:
            if _BULK_SPECIAL.search("".join(values)) is None:  # nearly always: one search, nothing to copy
                return values
            special = _BULK_SPECIAL.search
            escaped = {text: text.translate(_BULK_ESCAPES) if special(text) else text for text in set(values)}  # each once
            return list(map(escaped.__getitem__, values))
        if kind is int:
            return list(map(str, values))
        if kind is Decimal:
            return [format(value, "f") for value in values]  # fixed point: 1E+3 would not read as 1000
        if kind is dt.datetime:
            # The column holds naive UTC: str() spells a datetime as isoformat(" ") does, and
            # one in UTC (as validated records are) ends in "+00:00".
            zones = {value.tzinfo for value in values}
            if zones == {dt.timezone.utc}:
                return [text[:-6] for text in map(str, values)]
            if zones == {None}:
                return list(map(str, values))
            utc = dt.timezone.utc
            return [
                (value.replace(tzinfo=None) if value.tzinfo is utc or value.tzinfo is None
                 else value.astimezone(utc).replace(tzinfo=None)).isoformat(" ")
                for value in values
            ]
        raise TypeError(f"no bulk-file spelling for {kind.__name__}")

    def bulk_load(self, cursor, *, table: str, columns: Sequence[str], path: str, rows: int) -> None:
        # LOCAL turns every error in the data into a warning and goes on (the server cannot stop
        # the client's stream), so a warning means a row was not loaded as written.
        spelled = ", ".join(self.quote(column) for column in columns)
        cursor.execute(
            f"LOAD DATA LOCAL INFILE {self.literal_writer()(path)} INTO TABLE {self.quote(table)} "
            f"CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
            f"({spelled})"
        )
        warnings = self.connection.connection.warning_count()
        if cursor.rowcount != rows or warnings:
            raise DatabaseError(f"LOAD DATA loaded {cursor.rowcount} of {rows} rows with {warnings} warnings")
