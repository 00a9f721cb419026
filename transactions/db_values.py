"""Values as the database driver takes them, for the few raw statements the ORM can't spell."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

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
