"""Reads: the two reports and the look-ups ingest needs. All aggregation happens in SQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice

from django.db import connection
from django.db.models import DecimalField, F, Max, Min, OuterRef, QuerySet, Subquery, Sum, Window
from django.db.models.functions import Round, RowNumber

from .db_values import datetime_adapter
from .models import Customer, CustomerPincodeTotal, ImportJob, Transaction
from .validation import state_key_for

TOTAL_FIELD = DecimalField(max_digits=30, decimal_places=2)
KEYS_PER_QUERY = 2000


def _sum_of_amounts() -> Sum | Round:
    """SUM(transaction_amount) as the exact total, for comparing and ordering in SQL.

    SQLite has no decimal type and sums the amounts as binary floats, so 0.10 + 0.20 comes out
    as 0.30000000000000004 and fails "total <= 0.30". Rounding to cents gives back the float
    nearest the exact total, the same float a stored 0.30 is.
    """
    total = Sum("transaction_amount", output_field=TOTAL_FIELD)
    return Round(total, 2, output_field=TOTAL_FIELD) if connection.vendor == "sqlite" else total


@dataclass(frozen=True, slots=True)
class CustomerTotal:
    customer_id: int
    name: str
    total_transaction_amount: Decimal


def transactions_with_keys(*, keys: Collection[tuple[int, dt.datetime]]) -> Iterator[Transaction]:
    """The stored transactions among the given (customer_id, transaction_datetime) keys."""
    return _rows_with_keys(Transaction, ("customer", "transaction_datetime"), keys)


def _rows_with_keys(model, field_names: tuple[str, ...], keys: Collection[tuple]) -> Iterator:
    """Rows of `model` whose `field_names` equal one of `keys`, a few hundred keys a query.

    A row-value IN list is an index range scan on a composite unique key on all three
    databases; the ORM has no public spelling for it.
    """
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(quote(field.column) for field in fields)
    adapt_datetime = datetime_adapter()
    preparers = [
        adapt_datetime if field.get_internal_type() == "DateTimeField" else (lambda value: value) for field in fields
    ]
    key_iter = iter(keys)
    while chunk := list(islice(key_iter, KEYS_PER_QUERY)):
        params: list[object] = []
        for key in chunk:
            params += [prepare(value) for prepare, value in zip(preparers, key)]
        row_placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        placeholders = ", ".join([row_placeholder] * len(chunk))
        yield from model.objects.raw(
            f"SELECT * FROM {quote(model._meta.db_table)} WHERE ({columns}) IN ({placeholders})", params
        )


@dataclass(frozen=True, slots=True)
class StoredTimeSpan:
    oldest: dt.datetime | None
    newest: dt.datetime | None


def stored_time_span() -> StoredTimeSpan:
    span = Transaction.objects.aggregate(oldest=Min("transaction_datetime"), newest=Max("transaction_datetime"))
    return StoredTimeSpan(oldest=span["oldest"], newest=span["newest"])


def _window_covers_everything(*, start: dt.datetime | None, end: dt.datetime | None) -> bool:
    """Whether [start, end] contains every stored transaction, so all-time totals apply."""
    if start is None and end is None:
        return True
    span = stored_time_span()
    if span.newest is None:
        return True
    return (start is None or start <= span.oldest) and (end is None or end >= span.newest)


def _windowed(queryset: QuerySet, *, start: dt.datetime | None, end: dt.datetime | None) -> QuerySet:
    if start is not None:
        queryset = queryset.filter(transaction_datetime__gte=start)
    if end is not None:
        queryset = queryset.filter(transaction_datetime__lte=end)
    return queryset


def customers_in_total_range(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> QuerySet:
    """Customers whose total in the window lies in [min_amount, max_amount], biggest first.

    Rows are dicts with ``customer_id``, ``name`` and ``total_transaction_amount``, ordered by
    total descending then customer_id. A window holding every stored transaction reads the
    running totals; any other window sums the transactions in it.
    """
    if _window_covers_everything(start=start, end=end):
        return (
            Customer.objects.filter(
                transaction_count__gt=0, total_amount__gte=min_amount, total_amount__lte=max_amount
            )
            .order_by("-total_amount", "customer_id")
            .values("customer_id", "name", total_transaction_amount=F("total_amount"))
        )
    customer_name = Customer.objects.filter(pk=OuterRef("customer_id")).values("name")
    return (
        _windowed(Transaction.objects.all(), start=start, end=end)
        .values("customer_id")
        .annotate(total_transaction_amount=_sum_of_amounts())
        .filter(total_transaction_amount__gte=min_amount, total_transaction_amount__lte=max_amount)
        .annotate(name=Subquery(customer_name))
        .order_by("-total_transaction_amount", "customer_id")
        .values("customer_id", "name", "total_transaction_amount")
    )


def top_customers_by_pincode(
    *,
    state: str,
    limit: int = 5,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, list[CustomerTotal]]:
    """For each pincode of a state (case-insensitive), its `limit` biggest customers there.

    Keys are pincodes in ascending order; each list is ordered by total descending, then
    customer_id. Ranking is done in SQL with ROW_NUMBER() over each pincode.
    """
    state_key = state_key_for(state)
    rank_window = dict(
        expression=RowNumber(),
        partition_by=[F("pincode")],
        order_by=[F("total_transaction_amount").desc(), F("customer_id").asc()],
    )
    if _window_covers_everything(start=start, end=end):
        ranked = CustomerPincodeTotal.objects.filter(state_key=state_key, transaction_count__gt=0).annotate(
            total_transaction_amount=F("total_amount"), rank=Window(**rank_window)
        )
    else:
        ranked = (
            _windowed(Transaction.objects.filter(state_key=state_key), start=start, end=end)
            .values("pincode", "customer_id")
            .annotate(total_transaction_amount=_sum_of_amounts())
            .annotate(rank=Window(**rank_window))
        )
    rows = list(
        ranked.filter(rank__lte=limit)
        .order_by("pincode", "rank")
        .values_list("pincode", "customer_id", "total_transaction_amount")
    )
    # Names are fetched for the ranked few only: joining them before ranking made the database
    # carry every customer of the state through the window function.
    names = dict(Customer.objects.filter(pk__in={row[1] for row in rows}).values_list("pk", "name"))
    by_pincode: dict[str, list[CustomerTotal]] = {}
    for pincode, customer_id, total in rows:
        by_pincode.setdefault(pincode, []).append(
            CustomerTotal(customer_id=customer_id, name=names[customer_id], total_transaction_amount=total)
        )
    return by_pincode


def imports_visible_to(*, user) -> QuerySet:
    """A user's own imports, newest first; staff see everybody's."""
    jobs = ImportJob.objects.select_related("owner")
    return jobs if user.is_staff else jobs.filter(owner=user)


def rejected_rows_of(*, job: ImportJob) -> Iterator[tuple[int, str, str]]:
    """(line number, raw row, reason) of every rejected row, in file order, streamed."""
    return job.rejected_rows.order_by("line_number").values_list("line_number", "raw", "reason").iterator(chunk_size=2000)
