"""PostgreSQL: ON CONFLICT, and SQLSTATEs for the errors worth a retry."""

from __future__ import annotations

from .base import Operations


class PostgreSQLOperations(Operations):
    def is_transient(self, exc) -> bool:
        # serialization_failure, deadlock_detected
        return getattr(exc.__cause__, "sqlstate", None) in ("40001", "40P01")
