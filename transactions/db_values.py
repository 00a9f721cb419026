"""Values as the database driver takes them, for the few raw statements the ORM can't spell."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from decimal import Decimal

from django.db import connection


def datetime_adapter() -> Callable[[dt.datetime], object]:
    """How an aware UTC datetime goes to the database as a query parameter.

    On MySQL Django's adapter converts time zones and formats a string per value, the largest
    cost of a 10,000-row insert after the database's own work; the values here are already UTC,
    so dropping the tzinfo is the same conversion and lets the driver format them natively.
    """
    if connection.vendor == "mysql":
        return lambda value: value.replace(tzinfo=None)
    return connection.ops.adapt_datetimefield_value


def mysql_literal_writer(driver_connection) -> Callable[[object], str]:
    """SQL literals for the value types the app writes, cheaper than the driver's parameters.

    mysqlclient turns each parameter into a literal in Python through several calls; for a
    10,000-row insert that takes longer than the server's work. Validated ints, Decimals, UTC
    datetimes and strings each have a cheap exact spelling; only strings need escaping, done by
    the driver's C escaper (it honours the connection's character set and NO_BACKSLASH_ESCAPES).
    """
    escape = driver_connection.string_literal
    encoding = driver_connection.encoding

    def literal(value: object) -> str:
        kind = type(value)
        if kind is str:
            return escape(value.encode(encoding)).decode(encoding)
        if kind is int:
            return str(value)
        if kind is Decimal:
            # Fixed-point spelling: MySQL reads 1E+3 as a float, 1000.00 as an exact DECIMAL.
            return format(value, "f")
        if kind is dt.datetime:
            # The column holds naive UTC; MariaDB takes no offset in a datetime literal.
            offset = value.utcoffset()
            if offset is None:
                return f"'{value.isoformat(' ')}'"
            if offset:
                value = value.astimezone(dt.timezone.utc)
            return f"'{value.isoformat(' ')[:-6]}'"  # without its "+00:00"
        if value is None:
            return "NULL"
        if kind is bool:
            return "1" if value else "0"
        if kind is dt.date:
            return f"'{value.isoformat()}'"
        raise TypeError(f"no SQL literal for {kind.__name__}")

    return literal


def filter_by_ids(queryset, *, column: str, ids: Collection[int]):
    """``queryset`` narrowed to rows whose `column` is one of `ids` (ints).

    On MySQL the ids are written into the SQL: the ORM prepares each IN parameter one by one,
    which a file import would pay for thousands of times a chunk.
    """
    if connection.vendor == "mysql" and ids:
        written = ",".join(str(int(value)) for value in ids)
        return queryset.extra(where=[f"{connection.ops.quote_name(column)} IN ({written})"])
    return queryset.filter(**{f"{column}__in": ids})
