"""The one seam for SQL the ORM cannot spell: one module per database vendor.

Everything else asks ``operations()`` for a *feature* (an upsert that adds, an insert that skips
stored keys and says which rows it stored, a transient-error test), never for a vendor's name,
as Django's own ``connection.ops`` and ``connection.features`` are asked. The statements are
assembled from quoted identifiers and the renderer's values (``render_rows``): parameters, or
on MySQL literals the driver's escaper writes, every value alike.
"""

from __future__ import annotations

from functools import lru_cache

from django.db import DEFAULT_DB_ALIAS, connections

from .base import Operations


@lru_cache(maxsize=None)
def _operations_class(vendor: str) -> type[Operations]:
    if vendor == "mysql":
        from .mysql import MySQLOperations as found
    elif vendor == "postgresql":
        from .postgresql import PostgreSQLOperations as found
    elif vendor == "sqlite":
        from .sqlite import SQLiteOperations as found
    else:
        found = Operations
    return found


def operations(connection=None) -> Operations:
    """The operations of ``connection`` (the default database's when not given).

    Kept on the connection object itself (each thread has its own), which the operations hold
    directly: through ``django.db.connection``, a proxy, every attribute read looks the
    thread's connection up again (a few microseconds each, tens of them a request).
    """
    if connection is None:
        connection = connections[DEFAULT_DB_ALIAS]
    ops = getattr(connection, "_cdp_sql_operations", None)
    if ops is None:
        ops = connection._cdp_sql_operations = _operations_class(connection.vendor)(connection)
    return ops


__all__ = ["Operations", "operations"]
