"""PostgreSQL: ON CONFLICT, and SQLSTATEs for the errors worth a retry."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Operations


class PostgreSQLOperations(Operations):
    # PostgreSQL reads a statement in parallel itself, but plans a window's sums over every
    # customer as a parallel sequential scan with a hash aggregate (450-630 ms at a million
    # rows), where a customer range is an index-only scan along the customer/time index, summed
    # in order (about 100 ms for half of them): in two parts at once, 147 ms.
    reads_faster_in_parts = True

    def one_of(self, expression: str, values: Sequence) -> tuple[str, list]:
        # One array parameter: bound as 2,000 parameters of an IN list, 30,000 customers' names
        # took 361-398 ms to read where the array took 139-146 (a warm whole range answer).
        return f"{expression} = ANY(%s)", [list(values)]

    def is_transient(self, exc) -> bool:
        # serialization_failure, deadlock_detected
        return getattr(exc.__cause__, "sqlstate", None) in ("40001", "40P01")

    def customer_total_json(self, *, customer_id: str, name: str, total: str) -> str | None:
        # numeric keeps its scale in text (a sum of DECIMAL(x, 2) has two places); to_json of a
        # text escapes as Python's JSON encoder does.
        return (f"""CONCAT('{{"customer_id":', {customer_id}, ',"name":', to_json(({name})::text)::text, """
                f"""',"total_transaction_amount":', {total}, '}}')""")
