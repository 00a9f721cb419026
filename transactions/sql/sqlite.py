"""SQLite: one writer at a time, DECIMAL kept as floats."""

from __future__ import annotations

from .base import Operations


class SQLiteOperations(Operations):
    exact_decimal_sums = False
    has_row_locks = False

    def is_transient(self, exc) -> bool:
        return "locked" in str(exc)  # database is locked (busy past its timeout)

    def rows_per_statement(self, width: int) -> int:
        # SQLITE_MAX_VARIABLE_NUMBER is 32,766 since 3.32, 999 before.
        return max(1, min(2500, 32000 // max(1, width)))

    def exact_decimal_sum(self, expression: str) -> str:
        # SQLite adds DECIMAL columns as binary floats (0.1 + 0.2 = 0.30000000000000004):
        # rounded to cents, the float stored is the one a stored 0.30 is.
        return f"ROUND({expression}, 2)"
