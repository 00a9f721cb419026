"""Reads: the two reports and the look-ups ingest needs. All aggregation happens in SQL."""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import hashlib
import io
import operator
from array import array
from collections.abc import Collection, Iterator, Sequence
from typing import NamedTuple
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from itertools import islice

from django.core.cache import caches
from django.db import connection
from django.db.models import (
    BigIntegerField, CharField, Count, DateField, DecimalField, F, Max, Min, OuterRef, QuerySet, Subquery, Sum, Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Collate, Round, TruncMonth

from . import import_files, parts
from .api.json_codec import CustomerTotalRow, WrittenRows, cents_as_text, dumps_exact, loads_exact, rows_in_cents_json
from .sql import operations
from .models import (
    Customer, CustomerPincodeTotal, ImportJob, MonthlyTotal, MonthlyTotalDelta, PincodeTotal, PincodeTotalDelta,
    StateSpelling, Transaction,
)
from .privacy import can_view_rows_as_sent
from .validation import CENT, state_key_for

TOTAL_FIELD = DecimalField(max_digits=30, decimal_places=2)
KEYS_PER_QUERY = 2000


def _sum_of_amounts() -> Sum | Round:
    """SUM(transaction_amount) as the exact total, for comparing and ordering in SQL.

    SQLite has no decimal type and sums the amounts as binary floats, so 0.10 + 0.20 comes out
    as 0.30000000000000004 and fails "total <= 0.30". Rounding to cents gives back the float
    nearest the exact total, the same float a stored 0.30 is.
    """
    total = Sum("transaction_amount", output_field=TOTAL_FIELD)
    return total if operations().exact_decimal_sums else Round(total, 2, output_field=TOTAL_FIELD)


class CustomerTotal(NamedTuple):
    """One customer's total (a top-customers entry). A NamedTuple, not a dataclass: a report
    holds thousands, made and unpickled from the cache at about a third of the cost."""

    customer_id: int
    name: str
    total_transaction_amount: Decimal


def transactions_with_keys(*, keys: Collection[tuple[int, dt.datetime]]) -> Iterator[Transaction]:
    """The stored transactions among the given (customer_id, transaction_datetime) keys."""
    return _rows_with_keys(Transaction, ("customer", "transaction_datetime"), keys)


class StoredPayment(NamedTuple):
    """What decides whether a record repeating a stored key is a duplicate or a conflict."""

    transaction_amount: Decimal
    pincode: str
    state_key: str


def stored_payments_with_keys(*, keys: Collection[tuple[int, dt.datetime]]) -> dict[tuple, StoredPayment]:
    """Like ``transactions_with_keys``, as plain values: a batch compares, it needs no rows."""
    quote = connection.ops.quote_name
    table = quote(Transaction._meta.db_table)
    wanted = ("customer", "transaction_datetime", "transaction_amount", "pincode", "state_key")
    customer, moment, amount, pincode, state_key = (
        quote(Transaction._meta.get_field(name).column) for name in wanted
    )
    ops = operations()
    found: dict[tuple, StoredPayment] = {}
    key_iter = iter(keys)
    with connection.cursor() as cursor:
        while chunk := list(islice(key_iter, KEYS_PER_QUERY)):
            values, params = ops.render_rows(chunk, datetime_positions=[1])
            cursor.execute(
                f"SELECT {customer}, {moment}, {amount}, {pincode}, {state_key} FROM {table} "
                f"WHERE ({customer}, {moment}) IN ({values})",
                params or None,
            )
            for customer_id, moment_value, amount_value, pincode_value, state_key_value in cursor.fetchall():
                if not isinstance(amount_value, Decimal):  # SQLite keeps DECIMAL as a float
                    amount_value = Decimal(str(amount_value))
                found[(customer_id, _as_aware_utc(moment_value))] = StoredPayment(
                    amount_value, pincode_value, state_key_value
                )
    return found


def _as_aware_utc(value: dt.datetime | str) -> dt.datetime:
    """A datetime column read with a plain cursor: naive UTC on MySQL and SQLite, aware on PostgreSQL."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)


def _rows_with_keys(model, field_names: tuple[str, ...], keys: Collection[tuple]) -> Iterator:
    """Rows of `model` whose `field_names` equal one of `keys`, a few hundred keys a query.

    A row-value IN list is an index range scan on a composite unique key on all three
    databases; the ORM has no public spelling for it.
    """
    quote = connection.ops.quote_name
    fields = [model._meta.get_field(name) for name in field_names]
    columns = ", ".join(quote(field.column) for field in fields)
    adapt_datetime = operations().adapt_datetime
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


def _window_covers_everything(
    *, start: dt.datetime | None, end: dt.datetime | None, span: StoredTimeSpan | None = None
) -> bool:
    """Whether [start, end] contains every stored transaction, so all-time totals apply
    (``span``: the stored time span, when the caller has read it already)."""
    if start is None and end is None:
        return True
    span = span or stored_time_span()
    if span.newest is None:
        return True
    return (start is None or start <= span.oldest) and (end is None or end >= span.newest)


def _window_key(start: dt.datetime | None, end: dt.datetime | None, span: StoredTimeSpan) -> tuple:
    """A window as the kept answers are keyed: a bound past the stored transactions is the same
    window as none ("until now" asked a minute later is the same query; the data version says
    if it isn't)."""
    return (
        None if start is None or span.oldest is None or start <= span.oldest else start.isoformat(),
        None if end is None or span.newest is None or end >= span.newest else end.isoformat(),
    )


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
    state: str | None = None,
    pincode: str | None = None,
) -> QuerySet:
    """Customers whose total in the window lies in [min_amount, max_amount], biggest first.

    Rows are dicts with ``customer_id``, ``name`` and ``total_transaction_amount``, ordered by
    total descending then customer_id. A window holding every stored transaction reads the
    running totals; any other window sums the transactions in it. With `state` (matched
    case-insensitively) or `pincode` only the transactions there count: a customer's total is
    what they spent in that state or pincode (the dashboard's filters; the API sends neither).
    """
    totals = _customer_totals_in_range(
        min_amount=min_amount, max_amount=max_amount, start=start, end=end, state=state, pincode=pincode
    )
    if totals.model is Customer:  # the running totals answer: the name is on the same row
        return totals.values("customer_id", "name", "total_transaction_amount")
    customer_name = Customer.objects.filter(pk=OuterRef("customer_id")).values("name")
    return totals.annotate(name=Subquery(customer_name)).values("customer_id", "name", "total_transaction_amount")


def _customer_totals_in_range(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None,
    end: dt.datetime | None,
    state: str | None = None,
    pincode: str | None = None,
) -> QuerySet:
    """``customers_in_total_range`` without the names: the running totals or the window's sums."""
    sums = _customer_sums(start=start, end=end, state=state, pincode=pincode)
    if sums is None:
        return _running_totals_in_range(min_amount=min_amount, max_amount=max_amount)
    return sums.filter(
        total_transaction_amount__gte=min_amount, total_transaction_amount__lte=max_amount
    ).order_by("-total_transaction_amount", "customer_id")


def _running_totals_in_range(*, min_amount: Decimal, max_amount: Decimal) -> QuerySet:
    customers = Customer.objects.filter(total_amount__gte=min_amount, total_amount__lte=max_amount)
    if min_amount <= 0:
        # Only then can a customer whose transactions were all deleted (a total of 0) match.
        # Amounts are positive (validation), so a positive total has transactions: without the
        # test on transaction_count, which is not in customer_total_idx, counting the matches
        # reads the index alone (MariaDB scanned the table for it, 1M rows: ~50 ms against ~10).
        customers = customers.filter(transaction_count__gt=0)
    return customers.order_by("-total_amount", "customer_id").values(
        "customer_id", total_transaction_amount=F("total_amount")
    )


def _customer_sums(
    *, start: dt.datetime | None, end: dt.datetime | None, state: str | None, pincode: str | None,
    span: StoredTimeSpan | None = None,
) -> QuerySet | None:
    """Each customer's total (``customer_id``, ``total_transaction_amount``) as the query counts
    it, unordered and unfiltered by amount; None when ``Customer.total_amount`` is that total.

    All time: the running totals, per customer or, narrowed to a state or pincode, summed
    from the per-customer-and-pincode totals (a customer has a few). Any other window: the
    window's transactions summed.
    """
    if _window_covers_everything(start=start, end=end, span=span):
        if state is None and pincode is None:
            return None
        rows = CustomerPincodeTotal.objects.filter(transaction_count__gt=0)
        amount = "total_amount"
    else:
        rows = _windowed(Transaction.objects.all(), start=start, end=end)
        amount = "transaction_amount"
    if state is not None:
        rows = rows.filter(state_key=state_key_for(state))
    if pincode is not None:
        rows = rows.filter(pincode=pincode)
    return rows.values("customer_id").annotate(total_transaction_amount=_exact_sum(amount)).order_by()


def _exact_sum(field: str) -> Sum | Round:
    """SUM(field) as the exact total; rounded to cents on SQLite (see ``_sum_of_amounts``)."""
    total = Sum(field, output_field=TOTAL_FIELD)
    return total if operations().exact_decimal_sums else Round(total, 2, output_field=TOTAL_FIELD)


def top_customers_by_pincode(
    *,
    state: str,
    limit: int = 5,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> dict[str, list[CustomerTotal]]:
    """For each pincode of a state (case-insensitive), its `limit` biggest customers there.

    Keys are pincodes in ascending order; each list is ordered by total descending, then
    customer_id. All time reads the per-customer-and-pincode running totals afresh (a few rows
    per pincode along their ranking index); any other window sums its transactions, ranks them
    with ROW_NUMBER() over each pincode and keeps the answer, names included, until new data
    (as the range report keeps its sums).
    """
    state_key = state_key_for(state)
    span = None if start is None and end is None else stored_time_span()
    if _window_covers_everything(start=start, end=end, span=span):
        if connection.features.supports_slicing_ordering_in_compound:
            rows = _with_names(_top_of_each_pincode(state_key=state_key, limit=limit))
        else:
            rows = _ranked_rows(
                CustomerPincodeTotal.objects.filter(state_key=state_key, transaction_count__gt=0).annotate(
                    total_transaction_amount=F("total_amount")
                ),
                limit=limit, with_names=True,
            )
    else:
        query_key = hashlib.sha1(repr((state_key, limit, _window_key(start, end, span))).encode()).hexdigest()
        # Kept as plain tuples, totals as their text: pickled a tenth as fast as CustomerTotals
        # holding Decimals (9 ms for the largest state's 4,000 with `limit` 100, 4 to read back).
        rows = _cached_until_new_data(
            f"top:{query_key}",
            lambda: _ranked_in_window(state_key=state_key, start=start, end=end, limit=limit),
            worth_keeping=lambda rows: len(rows) <= MAX_CACHED_MATCHES,
            kept=lambda rows: [(pincode, customer_id, name, str(total)) for pincode, customer_id, total, name in rows],
            restored=lambda kept: [(pincode, customer_id, Decimal(total), name) for pincode, customer_id, name, total in kept],
        )
    by_pincode: dict[str, list[CustomerTotal]] = {}
    for pincode, customer_id, total, name in rows:
        by_pincode.setdefault(pincode, []).append(CustomerTotal(customer_id, name, total))
    return by_pincode


def _ranked_in_window(
    *, state_key: str, start: dt.datetime | None, end: dt.datetime | None, limit: int
) -> list[tuple[str, int, Decimal, str]]:
    """``_ranked_rows`` of a window's sums per pincode and customer in one state, with names;
    where the parts of a read go faster at once (``parts.read_in_parts``), the state's pincodes
    ranked in as many ranges at once (each pincode is ranked on its own: the ranges' rows, in
    pincode order, are the answer). A range, not a list of its pincodes: the first range has no
    lower bound and the last no upper one, so a pincode the figures missed is still read, and
    PostgreSQL scans a range faster (28 against 34 ms for half the largest state's pincodes)."""

    def ranked(bounds: tuple[str | None, str | None]) -> list[tuple[str, int, Decimal, str]]:
        after, through = bounds
        rows = _windowed(Transaction.objects.filter(state_key=state_key), start=start, end=end)
        if after is not None:
            rows = rows.filter(pincode__gt=after)
        if through is not None:
            rows = rows.filter(pincode__lte=through)
        return _ranked_rows(
            rows.values("pincode", "customer_id").annotate(total_transaction_amount=_sum_of_amounts()),
            limit=limit, with_names=True,
        )

    count = parts.at_once()
    pincodes = _pincodes_of(state_key) if count > 1 else []
    if len(pincodes) < count or count < 2:
        return ranked((None, None))
    size = -(-len(pincodes) // count)
    lasts = [pincodes[min(first + size, len(pincodes)) - 1] for first in range(0, len(pincodes), size)]
    bounds = list(zip([None, *lasts[:-1]], [*lasts[:-1], None]))
    return [row for part in parts.read_in_parts(ranked, bounds) for row in part]


def _pincodes_of(state_key: str) -> list[str]:
    """Every pincode the state's figures name, folded or not, in order (one without customers
    left gives no rows where it is read)."""
    return sorted(
        PincodeTotal.objects.filter(state_key=state_key).order_by().values_list("pincode", flat=True).union(
            PincodeTotalDelta.objects.filter(state_key=state_key).order_by().values_list("pincode", flat=True)
        )
    )


def _ranked_rows(totals: QuerySet, *, limit: int, with_names: bool = False) -> list[tuple]:
    """(pincode, customer_id, total) of each pincode's `limit` biggest totals, by pincode and
    rank; ``with_names``: and the customer's name, looked up for the ranked few by the same statement.

    ``totals`` (rows of pincode, customer_id and total_transaction_amount) is ranked as a
    derived table: with ROW_NUMBER() in the grouping's own SELECT (as the ORM writes a Window
    over an aggregate), MariaDB grouped through a temporary table instead of along the index
    (half the largest state's pincodes at a million rows: 64 ms against 47, medians).
    """
    quote = connection.ops.quote_name
    pincode, customer, total, rank = (quote(name) for name in ("pincode", "customer_id", "total_transaction_amount", "rank_in_pincode"))
    summed, params = totals.values_list("pincode", "customer_id", "total_transaction_amount").query.sql_with_params()
    ranked = quote("ranked")
    select = f"SELECT {ranked}.{pincode}, {ranked}.{customer}, {ranked}.{total}"
    joined = ""
    if with_names:
        customers, name = quote(Customer._meta.db_table), quote(Customer._meta.get_field("name").column)
        customer_key = f"{customers}.{quote(Customer._meta.pk.column)} = {ranked}.{customer}"
        if operations().joins_names_to_ranked_rows:
            select += f", {customers}.{name}"
            joined = f" JOIN {customers} ON {customer_key}"
        else:
            # A look-up by key for each ranked row: PostgreSQL planned a join as a hash of every
            # customer (half of the statement's 62 ms for half the largest state's pincodes).
            select += f", (SELECT {name} FROM {customers} WHERE {customer_key})"
    rows = _fetched(
        f"{select} FROM ("
        f"SELECT {pincode}, {customer}, {total}, "
        f"ROW_NUMBER() OVER (PARTITION BY {pincode} ORDER BY {total} DESC, {customer} ASC) AS {rank} "
        f"FROM ({summed}) {quote('summed')}"
        f") {ranked}{joined} WHERE {ranked}.{rank} <= %s ORDER BY {ranked}.{pincode}, {ranked}.{rank}",
        (*params, limit),
    )
    if not operations().exact_decimal_sums:
        # SQLite gives its sums back as floats (rounded to cents) or integers.
        return [(row[0], row[1], _exact_total(row[2]), *row[3:]) for row in rows]
    return rows


def _with_names(rows: list[tuple[str, int, Decimal]]) -> list[tuple[str, int, Decimal, str]]:
    """Each (pincode, customer_id, total) with the customer's name, as ``_ranked_rows`` gives
    them ``with_names`` (the all-time rankings of ``_top_of_each_pincode``: a query of names).

    Names are read for the ranked few only: joining them before ranking made the database
    carry every customer of the state through the window function.
    """
    names = dict(_names_of({row[1] for row in rows}))
    return [(pincode, customer_id, total, names[customer_id]) for pincode, customer_id, total in rows]


# Pincodes ranked in one statement; a state has a few dozen, India's largest some 1,600.
PINCODES_PER_QUERY = 100


def _top_of_each_pincode(*, state_key: str, limit: int) -> list[tuple[str, int, Decimal]]:
    """(pincode, customer_id, total) of each pincode's `limit` biggest all-time customers.

    One "ORDER BY total LIMIT n" per pincode, joined by UNION ALL: each reads its first rows
    along the ranking index and stops, where ranking the whole state with ROW_NUMBER() sorts
    all of its rows (5 ms against 120 ms for the largest state at a million transactions).
    The pincodes come from the per-pincode figures, which every write keeps in step.
    """
    pincodes = _pincodes_of(state_key)
    if not pincodes:
        return []
    # One pincode's query, compiled once and repeated: compiling a queryset per pincode cost
    # more than running them all.
    marker = "\x00pincode"
    one_pincode = (
        CustomerPincodeTotal.objects.filter(state_key=state_key, pincode=marker, transaction_count__gt=0)
        .order_by("-total_amount", "customer_id")
        .values_list("pincode", "customer_id", "total_amount")[:limit]
    )
    sql, params = one_pincode.query.sql_with_params()
    rows: list[tuple[str, int, Decimal]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(pincodes), PINCODES_PER_QUERY):
            some = pincodes[start : start + PINCODES_PER_QUERY]
            cursor.execute(
                " UNION ALL ".join([f"({sql})"] * len(some)),
                [pincode if param == marker else param for pincode in some for param in params],
            )
            rows += cursor.fetchall()
    # UNION ALL promises no order: put it back.
    rows.sort(key=lambda row: (row[0], -row[2], row[1]))
    return rows


def imports_visible_to(*, user) -> QuerySet:
    """A user's own imports, newest first; staff see everybody's."""
    jobs = ImportJob.objects.select_related("owner")
    return jobs if user.is_staff else jobs.filter(owner=user)


def rejected_rows_of(*, job: ImportJob, user) -> Iterator[tuple[int, str, str]]:
    """(line number, raw row, reason) of every rejected row, in file order, streamed.

    The raw rows as sent, or with their mobile numbers masked for a user who may not see them.
    """
    raw = "raw" if can_view_rows_as_sent(user, job) else "raw_masked"
    return job.rejected_rows.order_by("line_number").values_list("line_number", raw, "reason").iterator(chunk_size=2000)


# --- Dashboard reads ------------------------------------------------------------------------
# The overview, the state picker and the charts of the browser dashboard. Every figure is one
# aggregate query; the running totals answer whatever they can.

DASHBOARD_CACHE_SECONDS = 300
DISTRIBUTION_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class OverviewTotals:
    transactions: int
    customers: int
    total_amount: Decimal
    states: int
    pincodes: int
    newest_transaction: dt.datetime | None


def overview_totals() -> OverviewTotals:
    """Counts and sums over everything stored, read from the per-pincode figures, and the
    customers with transactions counted (no figure holds that count: 10 ms at 100,000
    customers, two thirds of the overview's time). Kept until new data."""

    def compute() -> OverviewTotals:
        figures = pincode_figures()
        return OverviewTotals(
            transactions=sum(row.transactions for row in figures),
            customers=Customer.objects.filter(transaction_count__gt=0).count(),
            total_amount=sum((row.total_amount for row in figures), Decimal("0.00")),
            states=len({row.state_key for row in figures}),
            pincodes=len({row.pincode for row in figures}),
            newest_transaction=stored_time_span().newest,
        )

    return _cached_until_new_data("overview", compute)


@dataclass(frozen=True, slots=True)
class MonthTotal:
    month: dt.date
    transactions: int
    total_amount: Decimal


def _month_totals(transactions: QuerySet) -> list[MonthTotal]:
    # Truncating in UTC, the zone the rows are stored in: MySQL/MariaDB then needs no
    # CONVERT_TZ, which returns NULL where the server's time zone tables are not loaded.
    month = TruncMonth("transaction_datetime", tzinfo=dt.timezone.utc)
    rows = (
        transactions.annotate(month=month)
        .values("month")
        .annotate(transactions=Count("pk"), total_amount=_sum_of_amounts())
        .order_by("month")
        .values_list("month", "transactions", "total_amount")
    )
    return [
        MonthTotal(
            month=month.date() if isinstance(month, dt.datetime) else month,
            transactions=count,
            total_amount=Decimal(total).quantize(CENT),  # SQLite answers 300.5 for 300.50
        )
        for month, count, total in rows
    ]


# Inside ``data_version_read_once``: "" until read, then the version read.
_data_version_of_request: ContextVar[str | None] = ContextVar("cdp_data_version_of_request", default=None)


@contextmanager
def data_version_read_once() -> Iterator[None]:
    """Within it, ``_data_version`` is read once: for a page that only reads, whose several
    kept figures each ask for it (half a millisecond a page)."""
    token = _data_version_of_request.set("")
    try:
        yield
    finally:
        _data_version_of_request.reset(token)


def _data_version() -> str:
    """Changes whenever a transaction is added, corrected or deleted, or a customer's details
    corrected (four indexed look-ups).

    Every correction in the admin writes a history row, so the newest history id moves too.
    """
    kept = _data_version_of_request.get()
    if kept:
        return kept
    # One statement, not two queries: a page asks for several kept figures, each checking this.
    with connection.cursor() as cursor:
        cursor.execute(_data_version_sql(connection.vendor))
        last_id, newest, last_correction, last_customer_correction = cursor.fetchone()
    # A datetime, or text on SQLite: either way without spaces, which a cache key must not hold.
    version = f"{last_id}-{str(newest).replace(' ', 'T')}-{last_correction}-{last_customer_correction}"
    if kept is not None:
        _data_version_of_request.set(version)
    return version


@lru_cache(maxsize=None)
def _data_version_sql(vendor: str) -> str:
    """``_data_version``'s statement, written once per database vendor (``Transaction.history``
    builds a manager class each time it is read: a tenth of a millisecond a page)."""
    quote = connection.ops.quote_name
    newest_history = [
        f"(SELECT MAX({quote(history._meta.pk.column)}) FROM {quote(history._meta.db_table)})"
        for history in (Transaction.history.model, Customer.history.model)
    ]
    return (
        f"SELECT MAX({quote(Transaction._meta.pk.column)}), "
        f"MAX({quote(Transaction._meta.get_field('transaction_datetime').column)}), "
        f"{', '.join(newest_history)} "
        f"FROM {quote(Transaction._meta.db_table)}"
    )


def kept_until_new_data(name: str, compute):
    """`compute()`, kept as ``_cached_until_new_data`` keeps the reports' figures: for what a
    page writes from them (``web.views``), which changes only with them."""
    return _cached_until_new_data(name, compute)


def _cached_until_new_data(
    name: str, compute, *, worth_keeping=lambda value: True, kept=lambda value: value, restored=None,
):
    """`compute()`, kept until a transaction is added or corrected, or DASHBOARD_CACHE_SECONDS pass.

    For figures no running total holds, such as a windowed range report's totals. ``kept``:
    what of a computed value the cache keeps (the value itself by default); ``restored``: the
    value again from what was kept, where the two differ in form.
    """
    cache = caches["dashboard"]
    key = f"cdp:dashboard:{name}:{connection.alias}:{_data_version()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        if worth_keeping(value):
            cache.set(key, kept(value), DASHBOARD_CACHE_SECONDS)
    elif restored is not None:
        value = restored(value)
    return value


def amount_per_month() -> list[MonthTotal]:
    """The amount and number of all stored transactions per calendar month (UTC), oldest first.

    Read from the per-month figures: a few dozen rows, however many transactions.
    """
    return [row for row in month_figures() if row.transactions > 0]


class PincodeFigure(NamedTuple):
    state_key: str
    pincode: str
    state: str
    transactions: int
    total_amount: Decimal


def month_figures() -> list[MonthTotal]:
    """Each month's count and sum: its folded ``MonthlyTotal`` plus the deltas not yet folded.

    One statement, so a fold running meanwhile is seen entirely or not at all (see
    ``services.totals``); months whose figures are zero are left out. Oldest first.
    """
    folded = MonthlyTotal.objects.order_by().values_list("month", "transaction_count", "total_amount")
    tail = MonthlyTotalDelta.objects.order_by().values_list("month", "transaction_count", "total_amount")
    rows = _summed(folded.union(tail, all=True), keys=["month"], count="transaction_count", amount="total_amount")
    return sorted((MonthTotal(_as_date(month), count, amount) for month, count, amount in rows), key=lambda row: row.month)


def pincode_figures(*, state_key: str | None = None) -> list[PincodeFigure]:
    """Each pincode's count and sum (all states, or one): ``PincodeTotal`` plus unfolded deltas.

    As ``month_figures``; ``state`` is one spelling the pincode's rows were stored under.
    """
    folded = PincodeTotal.objects.order_by()
    tail = PincodeTotalDelta.objects.order_by()
    if state_key is not None:
        folded, tail = folded.filter(state_key=state_key), tail.filter(state_key=state_key)
    # The folded rows as they are and the tail grouped, in one statement, added up here: the
    # few hundred rows cost a tenth of a millisecond to add, grouping their union in the
    # database (a temporary table) two.
    tail = tail.values("state_key", "pincode").annotate(
        spelled=Min("state"), count=Sum("transaction_count"), amount=Sum("total_amount")
    )
    union = folded.values_list("state_key", "pincode", "state", "transaction_count", "total_amount").union(
        tail.values_list("state_key", "pincode", "spelled", "count", "amount"), all=True
    )
    figures: dict[tuple[str, str], list] = {}
    for key_state, pincode, state, count, amount in union:
        figure = figures.get((key_state, pincode))
        if figure is None:
            figures[(key_state, pincode)] = [state, count, amount]
        else:
            figure[0], figure[1], figure[2] = min(figure[0], state), figure[1] + count, figure[2] + amount
    exact = operations().exact_decimal_sums
    return [
        PincodeFigure(key_state, pincode, state, int(count), amount if exact else _exact_total(amount))
        for (key_state, pincode), (state, count, amount) in sorted(figures.items())
        if count or amount
    ]


def _utc_month():
    # Truncated in UTC, the zone the rows are stored in (see _month_totals), then made a date
    # so that it compares with MonthlyTotal.month on every database.
    return Cast(TruncMonth("transaction_datetime", tzinfo=dt.timezone.utc), DateField())


def monthly_total_differences() -> list[tuple[dt.date, int, Decimal]]:
    """(month, count, amount) by which each month's figures (``month_figures``) fall short of the transactions.

    Months that agree are left out. One statement, so the transactions and the stored rows are
    read in one snapshot (see ``services.recompute_summary_totals``).
    """
    from_transactions = (
        Transaction.objects.annotate(summary_month=_utc_month())
        .values("summary_month")
        .annotate(summary_count=Count("pk"), summary_amount=_sum_of_amounts())
        .order_by()
        .values_list("summary_month", "summary_count", "summary_amount")
    )
    stored = [
        model.objects.order_by().annotate(
            summary_month=F("month"),
            summary_count=F("transaction_count") * Value(-1),
            summary_amount=F("total_amount") * Value(-1),
        ).values_list("summary_month", "summary_count", "summary_amount")
        for model in (MonthlyTotal, MonthlyTotalDelta)
    ]
    rows = _summed(
        from_transactions.union(*stored, all=True), keys=["summary_month"], count="summary_count", amount="summary_amount"
    )
    return [(_as_date(month), count, amount) for month, count, amount in rows]


def pincode_total_differences() -> list[tuple[str, str, str, int, Decimal]]:
    """(state_key, pincode, state, count, amount) by which PincodeTotal rows fall short; as above.

    ``state`` is the stored row's spelling, or for a pincode without a row, one from its
    transactions (read apart: the snapshot matters for the sums only, and the sums alone are
    answered from a covering index).
    """
    from_transactions = (
        Transaction.objects.values(summary_state_key=F("state_key"), summary_pincode=F("pincode"))
        .annotate(summary_state=Value(""), summary_count=Count("pk"), summary_amount=_sum_of_amounts())
        .order_by()
        .values_list("summary_state_key", "summary_pincode", "summary_state", "summary_count", "summary_amount")
    )
    stored = [
        model.objects.order_by().annotate(
            summary_state_key=F("state_key"),
            summary_pincode=F("pincode"),
            summary_state=F("state"),
            summary_count=F("transaction_count") * Value(-1),
            summary_amount=F("total_amount") * Value(-1),
        ).values_list("summary_state_key", "summary_pincode", "summary_state", "summary_count", "summary_amount")
        for model in (PincodeTotal, PincodeTotalDelta)
    ]
    differences = _summed(
        from_transactions.union(*stored, all=True), keys=["summary_state_key", "summary_pincode"],
        label="summary_state", count="summary_count", amount="summary_amount",
    )
    unspelled = [(state_key, pincode) for state_key, pincode, state, _, _ in differences if not state]
    spellings = {}
    if unspelled:
        spelled = Transaction.objects.filter(
            state_key__in={state_key for state_key, _ in unspelled}, pincode__in={pincode for _, pincode in unspelled}
        ).values_list("state_key", "pincode").annotate(state=Min("state"))
        spellings = {(state_key, pincode): state for state_key, pincode, state in spelled}
    return [
        (state_key, pincode, state or spellings[(state_key, pincode)], count, amount)
        for state_key, pincode, state, count, amount in differences
    ]


def _summed(
    union: QuerySet, *, keys: list[str], count: str, amount: str, label: str | None = None
) -> list[tuple]:
    """Sum the counts and amounts of a UNION ALL of (keys, [label,] count, amount) rows per key.

    The ORM cannot group a union, so its SQL is wrapped by hand (column names only; the values
    stay the union's parameters); rows whose sums are zero are left out.
    """
    sql, params = union.query.get_compiler(using=union.db).as_sql()
    quote = connection.ops.quote_name
    key_columns = ", ".join(quote(key) for key in keys)
    label_column = f"MIN({quote(label)}), " if label else ""
    count, amount = quote(count), quote(amount)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {key_columns}, {label_column}SUM({count}), SUM({amount}) FROM ({sql}) summary_rows "
            f"GROUP BY {key_columns} HAVING SUM({count}) <> 0 OR SUM({amount}) <> 0",
            params,
        )
        rows = cursor.fetchall()
    summed = []
    for *key, count_value, amount_value in rows:
        amount_value = _exact_total(amount_value)
        if count_value or amount_value:
            summed.append((*key, int(count_value), amount_value))
    return summed


def _as_date(value: dt.date | dt.datetime | str) -> dt.date:
    """A date column read with a plain cursor: a date, except on SQLite (text)."""
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value.date() if isinstance(value, dt.datetime) else value


@dataclass(frozen=True, slots=True)
class StateCount:
    state: str
    transactions: int
    pincodes: int
    state_key: str = ""


def state_names() -> dict[str, str]:
    """The one spelling of each state shown everywhere: state key -> name.

    States match case-insensitively, so "Karnataka" and "KARNATAKA" are one state; its name is
    the spelling most of its transactions were sent in; of equally common ones, the one sent
    first. Read from the per-spelling counts (``StateSpelling``, a few dozen rows) plus the
    pincode deltas not yet folded, in one statement: never a scan of the transactions or of the
    per-customer totals (the admin's list pages promise none). Kept until new data.
    """

    def compute() -> dict[str, str]:
        best: dict[str, tuple] = {}
        for (key, spelling), (count, first) in state_spelling_counts().items():
            rank = (-count, first, spelling)
            if count > 0 and (key not in best or rank < best[key]):
                best[key] = rank
        return {key: rank[2] for key, rank in best.items()}

    return _cached_until_new_data("state-names", compute)


def state_spelling_counts() -> dict[tuple[str, str], tuple[int, int]]:
    """(state_key, exact spelling) -> (transactions, id of the first delta that brought it):
    the folded counts (``StateSpelling``) plus the unfolded deltas grouped by exact spelling,
    read in one statement."""
    collation = operations().exact_collation
    # Grouped exactly: MySQL's usual collations would call the two spellings one value.
    spelling = Collate("state", collation) if collation else F("state")
    folded = StateSpelling.objects.order_by().values_list("state_key", "state", "transaction_count", "first_delta_id")
    tail = (
        PincodeTotalDelta.objects.order_by().annotate(spelling=spelling).values("state_key", "spelling")
        .annotate(count=Sum("transaction_count"), first=Min("id"))
        .values_list("state_key", "spelling", "count", "first")
    )
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for key, spelled, count, first in folded.union(tail, all=True):  # at most one row of each a spelling
        stored = counts.get((key, spelled))
        counts[(key, spelled)] = (
            (int(count), first) if stored is None else (stored[0] + int(count), min(stored[1], first))
        )
    return counts


def state_spelling_differences() -> list[tuple[str, str, int]]:
    """(state_key, spelling, count) by which the spellings' counts (``StateSpelling`` plus the
    unfolded deltas) fall short of the transactions, in one statement; those that agree are
    left out (see ``services.recompute_summary_totals``)."""
    collation = operations().exact_collation
    spelling = Collate("state", collation) if collation else F("state")
    from_transactions = (
        Transaction.objects.annotate(spelling=spelling).values("state_key", "spelling")
        .annotate(count=Count("pk"), first=Value(0)).order_by()
        .values_list("state_key", "spelling", "count", "first")
    )
    stored = [
        StateSpelling.objects.order_by().annotate(count=F("transaction_count") * Value(-1), first=Value(0))
        .values_list("state_key", "state", "count", "first"),
        PincodeTotalDelta.objects.order_by().annotate(spelling=spelling, count=F("transaction_count") * Value(-1), first=Value(0))
        .values_list("state_key", "spelling", "count", "first"),
    ]
    differences: dict[tuple[str, str], int] = {}
    for key, state, count, _ in from_transactions.union(*stored, all=True):
        differences[(key, state)] = differences.get((key, state), 0) + int(count)
    return [(key, state, count) for (key, state), count in sorted(differences.items()) if count]


def states_with_counts() -> list[StateCount]:
    """Every state with transactions (its one name, ``state_names``), its transactions and pincodes.

    Read from the per-pincode figures (a few hundred rows), and kept until new data: every
    report page's state picker shows them.
    """

    def compute() -> list[StateCount]:
        by_state: dict[str, list] = {}
        for figure in pincode_figures():
            if figure.transactions > 0:
                state = by_state.setdefault(figure.state_key, [figure.state, 0, 0])
                state[0] = min(state[0], figure.state)
                state[1] += figure.transactions
                state[2] += 1
        names = state_names()
        return [
            StateCount(state=names.get(key, state), transactions=count, pincodes=pincodes, state_key=key)
            for key, (state, count, pincodes) in sorted(by_state.items())
        ]

    return _cached_until_new_data("states-with-counts", compute)


def customer_with_totals(*, customer_id: int) -> Customer | None:
    """The customer (name, mobile number and running totals), or None if there is none."""
    return Customer.objects.filter(pk=customer_id).first()


def pincode_breakdown_of(*, customer_id: int) -> list[dict]:
    """The customer's all-time totals per pincode and state (its one name), biggest first."""
    rows = (
        CustomerPincodeTotal.objects.filter(customer_id=customer_id, transaction_count__gt=0)
        .order_by("-total_amount", "pincode")
        .values("pincode", "state_key", "state", "total_amount", "transaction_count")
    )
    names = state_names()
    return [{**row, "state": names.get(row["state_key"], row["state"])} for row in rows]


def customer_amount_per_month(*, customer_id: int) -> list[MonthTotal]:
    """The customer's spend per calendar month (UTC), from the first month with a transaction
    to the last, with the months between that have none as zeros: bars one month apart.

    Summed from the customer's transactions (12 ms for the busiest of a million rows, the
    customer page's largest part) and kept until new data, as a window's sums are."""
    return _cached_until_new_data(
        f"customer-months:{int(customer_id)}",
        lambda: _with_empty_months(_month_totals(Transaction.objects.filter(customer_id=customer_id))),
    )


def _with_empty_months(months: list[MonthTotal]) -> list[MonthTotal]:
    """Every month from the first to the last of `months` (oldest first), a gap a zero month."""
    if not months:
        return []
    by_month = {row.month: row for row in months}
    filled, month, last = [], months[0].month, months[-1].month
    while month <= last:
        filled.append(by_month.get(month) or MonthTotal(month=month, transactions=0, total_amount=Decimal("0.00")))
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return filled


def transactions_of(*, customer_id: int) -> QuerySet:
    """The customer's transactions, newest first (read along the customer/time index)."""
    return Transaction.objects.filter(customer_id=customer_id).order_by("-transaction_datetime")


def with_state_names(transactions) -> list[Transaction]:
    """The transactions (a page of them), each with ``state_name``, its state's one name."""
    names = state_names()
    transactions = list(transactions)
    for txn in transactions:
        txn.state_name = names.get(txn.state_key, txn.state)
    return transactions


@dataclass(frozen=True, slots=True)
class TotalsBucket:
    low: Decimal
    high: Decimal
    customers: int


@dataclass(frozen=True, slots=True)
class TotalsSummary:
    """How many customers a range report matched, and how their totals are spread."""

    customers: int
    lowest: Decimal | None
    highest: Decimal | None
    buckets: list[TotalsBucket]


@dataclass(frozen=True, slots=True)
class RangeReport:
    """A range query's matches as the dashboard shows them: their figures and their rows."""

    summary: TotalsSummary
    rows: CustomerTotalRows


@dataclass(frozen=True, slots=True)
class _MatchedTotals:
    """The matches of a range query, biggest total first, as two arrays of 64-bit integers.

    Totals are in cents. Arrays, not tuples of Decimals: they are kept in the cache, and 80,000
    Decimals take 60 ms to pickle where two arrays take under one.
    """

    customer_ids: array
    cents: array
    # The customers' names in the same order, when the query that found the matches read them
    # too (a whole answer asked for cold); never kept in the cache (``_kept_matches``).
    names: Sequence[str] | None = None


def _kept_matches(matches: _MatchedTotals) -> _MatchedTotals:
    """What the cache keeps of the matches: the two arrays (names are read again, a page's worth)."""
    return matches if matches.names is None else _MatchedTotals(customer_ids=matches.customer_ids, cents=matches.cents)


class CustomerTotalRows:
    """The matches as ``customers_in_total_range`` rows (dicts), biggest total first.

    A slice (a page) reads its customers' names in one query. Paginator takes it as a list.
    """

    def __init__(self, matches: _MatchedTotals):
        self._matches = matches

    def __len__(self) -> int:
        return len(self._matches.customer_ids)

    def __getitem__(self, index: int | slice):
        if not isinstance(index, slice):
            return self[index : index + 1 or None][0]
        start, stop, step = index.indices(len(self))
        if step != 1:
            raise ValueError("CustomerTotalRows takes slices without a step")
        return [
            {"customer_id": customer_id, "name": name, "total_transaction_amount": total}
            for batch in self.batches(start, stop)
            for customer_id, name, total in batch
        ]

    def between(self, first: int, stop: int, *, names_per_query: int = KEYS_PER_QUERY) -> Iterator[dict]:
        """Rows first..stop-1, their names read ``names_per_query`` customers at a time."""
        for start in range(first, stop, names_per_query):
            yield from self[start : min(start + names_per_query, stop)]

    def counted(
        self, first: int = 0, limit: int | None = None, *, as_json: bool = False, as_text: bool = False
    ) -> tuple[int, Iterator[Sequence[CustomerTotalRow]]]:
        """The count, and ``limit`` rows (all if None) from ``first`` on as ``batches``; with
        ``as_json``, as JSON written from the kept cents (``WrittenRows``; a database writing the
        JSON of the names it joins made the statement slower, 241-263 ms against 210-221, than
        Python made the rest)."""
        total = len(self)
        stop = total if limit is None else min(total, first + limit)
        if as_json:
            # Written from the cents as they are kept (json_codec.rows_in_cents_json).
            return total, (
                rows_in_cents_json(ids, names, cents) for ids, names, cents in self._columns(first, stop)
            )
        if as_text:  # the totals as their exact text, written from the cents
            return total, (
                list(zip(ids, names, cents_as_text(cents))) for ids, names, cents in self._columns(first, stop)
            )
        return total, self.batches(first, stop)

    def batches(self, first: int, stop: int) -> Iterator[list[CustomerTotalRow]]:
        """Rows first..stop-1 as (customer_id, name, total) tuples, a few thousand a batch (one
        query of names each): the whole-answer writers' input (``json_codec.customer_totals_json``)."""
        for ids, names, cents in self._columns(first, stop):
            yield list(zip(ids, names, map(_from_cents, cents)))

    def _columns(self, first: int, stop: int) -> Iterator[tuple[Sequence[int], Sequence[str], Sequence[int]]]:
        """Rows first..stop-1 as three columns (ids, names, totals in cents), a few thousand
        rows at a time: the names read in one query each, unless the matches came with them."""
        ids, cents, known_names = self._matches.customer_ids, self._matches.cents, self._matches.names
        stop = min(stop, len(ids))
        for start in range(first, stop, KEYS_PER_QUERY):
            end = min(start + KEYS_PER_QUERY, stop)
            some = ids[start:end]
            if known_names is not None:
                names = known_names[start:end]
            else:
                found = dict(_names_of(some))
                names = [found[customer_id] for customer_id in some]
            yield some, names, cents[start:end]


def _from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _exact_total(total) -> Decimal:
    """A sum of amounts back as the exact cents it is: SQLite sums DECIMAL columns as floats
    (rounded to cents, see ``_sum_of_amounts``) or integers; elsewhere it is a Decimal already."""
    return Decimal(str(total)).quantize(CENT)


# Above this many matches a report's totals are not kept between requests (each page then sums
# the window again); 200,000 matches take 3.2 MB.
MAX_CACHED_MATCHES = 200_000


# How a range report's rows may be ordered (the dashboard's sortable columns); the first is the
# API's order. A leading "-" is descending; ties are broken by customer_id ascending.
RANGE_REPORT_ORDERS = ("-total", "total", "name", "-name", "customer_id", "-customer_id")


def range_report(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    state: str | None = None,
    pincode: str | None = None,
    order: str = "-total",
    buckets: int = DISTRIBUTION_BUCKETS,
) -> RangeReport:
    """``customers_in_total_range`` with its count and the histogram of its totals.

    The totals are read once, in one query (for a window that is not all time, the one that
    sums every transaction in it: the report's whole cost); the count, the histogram and every
    page come from that one answer, so they always agree. The answer is kept until a
    transaction is added or corrected, so turning the pages costs a look-up of 50 names.
    `order` is one of ``RANGE_REPORT_ORDERS``; a reordering is kept the same way.
    """
    matches, rows = _range_matches(
        min_amount=min_amount, max_amount=max_amount, start=start, end=end, state=state, pincode=pincode, order=order
    )
    return RangeReport(summary=_distribution_of_totals(matches=matches, buckets=buckets), rows=CustomerTotalRows(rows))


def range_rows(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    state: str | None = None,
    pincode: str | None = None,
    whole: bool = False,
) -> CustomerTotalRows | RunningTotalRows:
    """``range_report``'s rows without its histogram: the API's answer and the dashboard's
    export, from one query (a window's sums kept until new data, as the report keeps them);
    ``len()`` is its count, a slice a page with its names (one query), ``batches()`` the whole
    answer streamed as (customer_id, name, total) tuples. ``whole``: every row will be read,
    so a window summed afresh reads the names in the same statement (a query of names per
    2,000 customers afterwards took a third of a cold whole answer's time)."""
    span = None if start is None and end is None else stored_time_span()  # read once a request
    if state is None and pincode is None and _window_covers_everything(start=start, end=end, span=span):
        # All time reads the running totals, names on the same rows, afresh each time (an
        # operator's repair changes them without a new data version).
        return RunningTotalRows(min_amount=min_amount, max_amount=max_amount)
    _, rows = _range_matches(
        min_amount=min_amount, max_amount=max_amount, start=start, end=end, state=state, pincode=pincode,
        with_names=whole, span=span,
    )
    return CustomerTotalRows(rows)


class RunningTotalRows:
    """``range_rows`` for all time: the running totals' query, counted and read as it is."""

    def __init__(self, *, min_amount: Decimal, max_amount: Decimal):
        self._queryset = customers_in_total_range(min_amount=min_amount, max_amount=max_amount)

    def __len__(self) -> int:
        return self._queryset.count()

    def between(self, first: int, stop: int) -> Iterator[dict]:
        """Rows first..stop-1 in one streamed query."""
        yield from self._queryset[first:stop].iterator(chunk_size=KEYS_PER_QUERY)

    def counted(
        self, first: int = 0, limit: int | None = None, *, as_json: bool = False, as_text: bool = False
    ) -> tuple[int, Iterator[Sequence[CustomerTotalRow] | WrittenRows]]:
        """The count, and ``limit`` rows (all if None) from ``first`` on as ``batches``; with
        ``as_json``, a whole answer as the database writes it where it can (``WrittenRows``:
        55 ms against 77 for the 55,087 rows of bench/range_vs_sql.py, the SQL floor 51); with
        ``as_text``, a whole answer's totals as their exact text, as the database writes a
        DECIMAL (the CSV export: no Decimal made of each and turned back into text).

        The whole answer is counted by the statement that reads it: the cursor holds every row
        once it has run (mysqlclient and psycopg fetch the result whole; SQLite's says -1, and
        its rows are fetched here), so a COUNT(*) before it (a tenth of the answer's time) is
        saved, and the count and the rows are of one snapshot."""
        if first or limit is not None:
            total = len(self)
            return total, self.batches(first, total if limit is None else min(total, first + limit))
        written = self._written_sql() if as_json else None
        cursor = connection.cursor()
        try:
            cursor.execute(*(written or self._rows_sql(0, None, as_text=as_text and operations().exact_decimal_sums)))
            total = cursor.rowcount
            fetched = None
            if total < 0:
                fetched = cursor.fetchall()
                total = len(fetched)
        except BaseException:
            cursor.close()
            raise
        if written:
            return total, self._read_written(cursor, fetched)
        return total, self._read(cursor, fetched)

    def _written_sql(self) -> tuple[str, tuple] | None:
        """The whole answer's statement with each row written as JSON by the database, or None."""
        quote = connection.ops.quote_name
        table = quote(Customer._meta.db_table)
        expression = operations().customer_total_json(
            customer_id=f"{table}.{quote(Customer._meta.pk.column)}",
            name=f"{table}.{quote(Customer._meta.get_field('name').column)}",
            total=f"{table}.{quote(Customer._meta.get_field('total_amount').column)}",
        )
        if expression is None:
            return None
        rows = self._queryset.annotate(written_row=RawSQL(expression, ())).values_list("written_row")
        return rows.query.sql_with_params()

    @staticmethod
    def _read_written(cursor, fetched: list | None) -> Iterator[WrittenRows]:
        with cursor:
            if fetched is None:
                batches = _fetched_in_batches(cursor)
            else:
                batches = (fetched[start : start + KEYS_PER_QUERY] for start in range(0, len(fetched), KEYS_PER_QUERY))
            for batch in batches:
                yield WrittenRows.of([text for (text,) in batch])

    def batches(self, first: int, stop: int) -> Iterator[list[CustomerTotalRow]]:
        """Rows first..stop-1 as (customer_id, name, total) tuples, a few thousand a batch, from
        one query read with a plain cursor: the ORM made a dict of each row and ran its
        converters, more time than the database took for the whole answer."""
        if stop <= first:
            return
        cursor = connection.cursor()
        try:
            cursor.execute(*self._rows_sql(first, stop))
        except BaseException:
            cursor.close()
            raise
        yield from self._read(cursor, None)

    def _rows_sql(self, first: int, stop: int | None, *, as_text: bool = False) -> tuple[str, tuple]:
        # A DECIMAL(x, 2) as text has both its places ("1500.00"), as its Decimal's str() has.
        total = Cast("total_amount", CharField()) if as_text else "total_transaction_amount"
        rows = self._queryset[first:stop].values_list("customer_id", "name", total)
        return rows.query.sql_with_params()

    @staticmethod
    def _read(cursor, fetched: list | None) -> Iterator[Sequence[CustomerTotalRow]]:
        # SQLite holds DECIMAL columns as binary floats (or integers); the others give exact Decimals.
        exact = operations().exact_decimal_sums
        with cursor:
            if fetched is None:
                batches = _fetched_in_batches(cursor)
            else:
                batches = (fetched[start : start + KEYS_PER_QUERY] for start in range(0, len(fetched), KEYS_PER_QUERY))
            for batch in batches:
                yield batch if exact else [
                    (customer_id, name, _exact_total(total)) for customer_id, name, total in batch
                ]


def _fetched_in_batches(cursor) -> Iterator[Sequence[tuple]]:
    while batch := cursor.fetchmany(KEYS_PER_QUERY):
        yield batch


def _range_matches(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    state: str | None = None,
    pincode: str | None = None,
    order: str = "-total",
    with_names: bool = False,
    span: StoredTimeSpan | None = None,
) -> tuple[_MatchedTotals, _MatchedTotals]:
    """The matches biggest total first, and in `order` (see ``range_report``); ``with_names``:
    read the names along if the matches are not kept (see ``_matched_totals``); ``span``: the
    stored time span, if the caller has read it already."""
    if order not in RANGE_REPORT_ORDERS:
        raise ValueError(f"order must be one of {', '.join(RANGE_REPORT_ORDERS)}")
    span = span or stored_time_span()
    window = _window_key(start, end, span)
    state_key = state_key_for(state) if state is not None else None
    query_key = hashlib.sha1(
        repr((str(min_amount), str(max_amount), window, state_key, pincode)).encode()
    ).hexdigest()

    def matched() -> _MatchedTotals:
        return _cached_until_new_data(
            f"range:{query_key}",
            lambda: _matched_totals(
                min_amount=min_amount, max_amount=max_amount, start=start, end=end, state=state, pincode=pincode,
                with_names=with_names and order == "-total", span=span,
            ),
            worth_keeping=lambda matches: len(matches.customer_ids) <= MAX_CACHED_MATCHES,
            kept=_kept_matches,
        )

    matches = matched()
    rows = matches
    if order != "-total":
        rows = _cached_until_new_data(
            f"range:{query_key}:{order}",
            lambda: _reordered(matches, order=order),
            worth_keeping=lambda rows: len(rows.customer_ids) <= MAX_CACHED_MATCHES,
        )
    return matches, rows


def _reordered(matches: _MatchedTotals, *, order: str) -> _MatchedTotals:
    """The matches in another of ``RANGE_REPORT_ORDERS``, sorted here rather than in SQL.

    The matches are already in memory; ordering by name needs the names of all of them, read
    in one pass over the customers (names compared case-insensitively, the same on every
    database, whatever its collation).
    """
    pairs = list(zip(matches.customer_ids, matches.cents))
    descending = order.startswith("-")
    column = order.lstrip("-")
    if column == "total":
        pairs.sort(key=lambda pair: (pair[1] if not descending else -pair[1], pair[0]))
    elif column == "customer_id":
        pairs.sort(key=lambda pair: pair[0], reverse=descending)
    else:
        names = dict(_names_of(matches.customer_ids))
        pairs.sort(key=lambda pair: pair[0])
        # Stable, reversed or not: equal names stay in ascending customer_id order.
        pairs.sort(key=lambda pair: names[pair[0]].casefold(), reverse=descending)
    customer_ids, cents = zip(*pairs) if pairs else ((), ())
    return _MatchedTotals(customer_ids=array("q", customer_ids), cents=array("q", cents))


def _names_of(customer_ids) -> Iterator[tuple[int, str]]:
    """(customer_id, name) of these customers, a few thousand ids a query.

    With a plain cursor and the ids as the seam spells a list (``one_of``: literals on MySQL, one
    array on PostgreSQL): for a few thousand ids the ORM's handling of the IN list and of the
    rows, or the driver's escaping of each parameter, took longer than the query.
    """
    quote = connection.ops.quote_name
    table = quote(Customer._meta.db_table)
    key, name = quote(Customer._meta.pk.column), quote(Customer._meta.get_field("name").column)
    ops = operations()
    ids = iter(customer_ids)
    with connection.cursor() as cursor:
        while chunk := list(islice(ids, KEYS_PER_QUERY)):
            condition, params = ops.one_of(key, chunk)
            cursor.execute(f"SELECT {key}, {name} FROM {table} WHERE {condition}", params or None)
            yield from cursor.fetchall()


def _matched_totals(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None,
    end: dt.datetime | None,
    state: str | None = None,
    pincode: str | None = None,
    with_names: bool = False,
    span: StoredTimeSpan | None = None,
) -> _MatchedTotals:
    """The (customer_id, total in cents) pairs of ``customers_in_total_range``, in its order;
    ``with_names``: and the customers' names, read by the same statement."""
    sums = _customer_sums(start=start, end=end, state=state, pincode=pincode, span=span)
    if sums is None:
        rows = _fetched(*_matched_totals_sql(None, min_amount=min_amount, max_amount=max_amount, with_names=with_names))
    else:
        rows = _summed_in_parts(
            lambda part: _fetched(*_matched_totals_sql(
                sums if part is None else sums.filter(customer_id__gte=part[0], customer_id__lt=part[1]),
                min_amount=min_amount, max_amount=max_amount, with_names=with_names,
            ))
        )
    # Column by column: zip(*rows) made an iterator per row, garbage for the collector to chase.
    return _MatchedTotals(
        customer_ids=array("q", [row[0] for row in rows]),
        cents=array("q", [row[1] for row in rows]),
        names=[row[2] for row in rows] if with_names else None,
    )


def _fetched(select: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(select, params)
        return list(cursor.fetchall())


def _summed_in_parts(summed) -> list[tuple]:
    """``summed(None)``: the (customer_id, cents, ...) rows of a window's sums in the report's
    order, biggest total first; or, where the parts of a read go faster at once
    (``parts.read_in_parts``), the same rows as ``summed((low, high))`` gives them for
    ``settings.CDP_REPORT_PARTS`` customer ranges, put back in order. A window of half a
    million rows: 182 ms in two parts on two cores against 282 ms in one statement
    (docs/PERFORMANCE.md). Each customer is in one part only."""
    count = parts.at_once()
    if count < 2:
        return summed(None)
    lowest, highest = Customer.objects.aggregate(lowest=Min("pk"), highest=Max("pk")).values()
    if lowest is None or highest - lowest < count:
        return summed(None)
    step = (highest + 1 - lowest) // count
    bounds = [lowest + step * index for index in range(count)] + [highest + 1]
    rows = [row for part in parts.read_in_parts(summed, list(zip(bounds, bounds[1:]))) for row in part]
    # Each part is in order; sorted, the runs merge (ties by customer_id, as the statement orders them).
    rows.sort(key=_by_total_then_id)
    return rows


def _by_total_then_id(row: tuple) -> tuple:
    return (-row[1], row[0])


def _matched_totals_sql(
    sums: QuerySet | None, *, min_amount: Decimal, max_amount: Decimal, with_names: bool
) -> tuple[str, Sequence]:
    """The statement of ``_matched_totals`` over ``sums`` (``_customer_sums``; None: all time)."""
    if sums is None:  # all time: the running totals, read along their index
        matches = _running_totals_in_range(min_amount=min_amount, max_amount=max_amount)
        in_cents = matches.values_list(
            "customer_id", Cast(Round(F("total_amount") * 100), BigIntegerField()), *(["name"] if with_names else [])
        )
        select, params = in_cents.query.get_compiler(using=matches.db).as_sql()
    elif with_names:
        # The floor statement of the whole answer: the window summed once, then joined to the
        # customers (operations().summed_once: MariaDB would sum the window again per customer).
        sql, params = sums.query.get_compiler(using=sums.db).as_sql()
        bound = "CAST(%s AS DECIMAL(30, 2))"
        quote = connection.ops.quote_name
        customers = quote(Customer._meta.db_table)
        key, name = quote(Customer._meta.pk.column), quote(Customer._meta.get_field("name").column)
        select = operations().summed_once(
            f"SELECT window_totals.customer_id, {_in_cents('window_totals.total_transaction_amount')}, "
            f"customers.{name} FROM ({sql}) window_totals JOIN {customers} customers "
            f"ON customers.{key} = window_totals.customer_id "
            f"WHERE window_totals.total_transaction_amount >= {bound} AND window_totals.total_transaction_amount <= {bound} "
            "ORDER BY window_totals.total_transaction_amount DESC, window_totals.customer_id"
        )
        params = (*params, str(min_amount), str(max_amount))
    else:
        # The window's sums are filtered in an outer query, not in HAVING as the ORM writes it:
        # MariaDB computes SUM() again for each mention in HAVING, a quarter of the query's
        # time (40 ms of 165 at a million rows). The ORM has no spelling for a subquery in FROM.
        sql, params = sums.query.get_compiler(using=sums.db).as_sql()
        # CAST: SQLite would compare its float sums with the bounds as text.
        bound = "CAST(%s AS DECIMAL(30, 2))"
        select = (
            f"SELECT customer_id, {_in_cents('total_transaction_amount')} FROM ({sql}) window_totals "
            f"WHERE total_transaction_amount >= {bound} AND total_transaction_amount <= {bound} "
            "ORDER BY total_transaction_amount DESC, customer_id"
        )
        params = (*params, str(min_amount), str(max_amount))
    return select, params


def _in_cents(column: str) -> str:
    """SQL for an amount column as a whole number of cents (rounded: SQLite sums in floats)."""
    return f"CAST(ROUND({column} * 100) AS {BigIntegerField().cast_db_type(connection)})"


def _distribution_of_totals(*, matches: _MatchedTotals, buckets: int) -> TotalsSummary:
    """Count, lowest and highest of the matches' totals, and a histogram of them.

    The range [lowest, highest] is cut into `buckets` equal bands (the last includes highest).
    The totals are sorted, so each band's count is the difference of two binary searches, not
    a pass over the matches.
    """
    totals = matches.cents
    if not totals:
        return TotalsSummary(customers=0, lowest=None, highest=None, buckets=[])
    lowest, highest = _from_cents(totals[-1]), _from_cents(totals[0])
    # No band narrower than a cent; widths rounded down keep every edge at or below highest.
    buckets = max(1, min(buckets, int((highest - lowest) / CENT)))
    width = ((highest - lowest) / buckets).quantize(CENT, rounding=ROUND_FLOOR)
    edges = [lowest + width * i for i in range(buckets)] + [highest]

    def at_least(amount: Decimal) -> int:
        # The totals descend, so their negatives ascend: those >= amount are the first so many.
        return bisect.bisect_right(totals, -int(amount / CENT), key=operator.neg)

    return TotalsSummary(
        customers=len(totals),
        lowest=lowest,
        highest=highest,
        buckets=[
            TotalsBucket(
                low=edges[i],
                high=edges[i + 1],
                customers=at_least(edges[i]) - (at_least(edges[i + 1]) if i < buckets - 1 else 0),
            )
            for i in range(buckets)
        ],
    )


# --- Rejected rows to fix and send again ----------------------------------------------------

REJECTED_RECORD_FIELDS = (
    "customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state",
)


@dataclass(frozen=True, slots=True)
class RejectedRowShown:
    """A rejected row as this user may read it (``rejected_rows_of``), for the import's page."""

    line_number: int
    raw: str
    reason: str


def first_rejected_rows_of(*, job: ImportJob, user, limit: int = 10) -> list[RejectedRowShown]:
    """The first `limit` rejected rows in file order, masked as ``rejected_rows_of`` masks them."""
    raw = "raw" if can_view_rows_as_sent(user, job) else "raw_masked"
    return [
        RejectedRowShown(*row)
        for row in job.rejected_rows.order_by("line_number").values_list("line_number", raw, "reason")[:limit]
    ]


def rejected_rows_as_records(*, job: ImportJob, user) -> Iterator[tuple[str, ...]]:
    """Every rejected row in the seven-field layout (``REJECTED_RECORD_FIELDS``) plus its reason.

    A file to fix and upload again: the import reads columns by the header's names and ignores
    any others, so the trailing reason column is no obstacle. Rows are as sent for the import's
    owner and users who may see mobile numbers, masked for anyone else (``rejected_rows_of``).
    A CSV row is split by the uploaded file's own header; a row that can't be split into fields
    (a malformed line, or a CSV whose uploaded file was pruned) comes with its fields empty and
    the row as sent in the reason, so nothing of it is lost. The reason starts with the row's
    line number in the uploaded file. Streamed: memory stays flat however many rows there are.
    """
    columns = _uploaded_csv_columns(job) if job.format == ImportJob.Format.CSV else None
    for line_number, raw, reason in rejected_rows_of(job=job, user=user):
        fields = _csv_fields(raw, columns) if job.format == ImportJob.Format.CSV else _ndjson_fields(raw)
        if fields is None:
            yield ("",) * len(REJECTED_RECORD_FIELDS) + (f"Line {line_number}: {reason} The row as sent: {raw}",)
        else:
            yield tuple(fields.get(name, "") for name in REJECTED_RECORD_FIELDS) + (f"Line {line_number}: {reason}",)


def _uploaded_csv_columns(job: ImportJob) -> list[str] | None:
    """The column names of an uploaded CSV's header, or None when the file is gone or unreadable."""
    try:
        with job.file.open("rb") as file:
            return import_files.read_csv_layout(file).columns
    except (OSError, ValueError, import_files.FileUnreadable):
        return None


def _csv_fields(raw: str, columns: list[str] | None) -> dict[str, str] | None:
    if columns is None:
        return None
    try:
        fields = next(csv.reader(io.StringIO(raw)), [])
    except csv.Error:
        return None
    if len(fields) != len(columns):
        return None
    return dict(zip(columns, fields))


def _ndjson_fields(raw: str) -> dict[str, str] | None:
    try:
        values = loads_exact(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(values, dict):
        return None
    return {
        name: "" if value is None else value if isinstance(value, str) else dumps_exact(value)
        for name, value in values.items()
    }


# --- Periods: windows relative to today ------------------------------------------------------
# The range report's date presets, and the relative windows a segment may be saved with: a
# period is re-evaluated each time it is asked ("last 90 days" moves with the calendar).

PERIODS = {
    "last-7-days": "Last 7 days",
    "last-30-days": "Last 30 days",
    "last-90-days": "Last 90 days",
    "this-month": "This month",
    "this-quarter": "This quarter",
    "year-to-date": "Year to date",
    "last-year": "Last year",
}


class PeriodWindow(NamedTuple):
    start: dt.datetime
    end: dt.datetime


def period_window(period: str, *, now: dt.datetime) -> PeriodWindow:
    """The window of one of ``PERIODS`` as of `now`, in whole UTC days.

    "Last N days" are the N days ending today (today included); "this month", "this quarter"
    and "year to date" run from their first day to the end of today; "last year" is the
    calendar year before this one.
    """
    today = now.astimezone(dt.timezone.utc).date()
    if period.startswith("last-") and period.endswith("-days"):
        first = today - dt.timedelta(days=int(period.removeprefix("last-").removesuffix("-days")) - 1)
    elif period == "this-month":
        first = today.replace(day=1)
    elif period == "this-quarter":
        first = today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1)
    elif period == "year-to-date":
        first = today.replace(month=1, day=1)
    elif period == "last-year":
        first, today = dt.date(today.year - 1, 1, 1), dt.date(today.year - 1, 12, 31)
    else:
        raise ValueError(f"Unknown period {period!r}; one of {', '.join(PERIODS)}.")
    return PeriodWindow(
        start=dt.datetime.combine(first, dt.time.min, tzinfo=dt.timezone.utc),
        end=dt.datetime.combine(today, dt.time.max, tzinfo=dt.timezone.utc),
    )


# --- Segments ---------------------------------------------------------------------------------
# A segment's reads live in transactions/segment_selectors.py; they run ``range_report`` and
# need no more from this module than the matched ids, without turning every page of names.


def customer_ids_of(rows: CustomerTotalRows) -> array:
    """The customer ids of a range report's rows, in their order (no names read)."""
    return rows._matches.customer_ids


# --- Dashboard: the customer page's tables, sortable by their columns -------------------------

# Order name -> ORDER BY; ties fall back to the newest first, so every order is total.
CUSTOMER_TRANSACTION_ORDERS = {
    "-when": ("-transaction_datetime",),
    "when": ("transaction_datetime",),
    "-amount": ("-transaction_amount", "-transaction_datetime"),
    "amount": ("transaction_amount", "-transaction_datetime"),
}


def transactions_of_in_order(*, customer_id: int, order: str = "-when") -> QuerySet:
    """``transactions_of`` in one of ``CUSTOMER_TRANSACTION_ORDERS`` (a customer's rows: the
    sort by amount reads them along the customer/time index and sorts that few)."""
    return transactions_of(customer_id=customer_id).order_by(*CUSTOMER_TRANSACTION_ORDERS[order])


# Order name -> sort key of a ``pincode_breakdown_of`` row; ties by pincode.
CUSTOMER_PINCODE_ORDERS = {
    "-total": lambda row: (-row["total_amount"], row["pincode"]),
    "total": lambda row: (row["total_amount"], row["pincode"]),
    "pincode": lambda row: (row["pincode"],),
    "-pincode": lambda row: (row["pincode"],),
    "-transactions": lambda row: (-row["transaction_count"], row["pincode"]),
    "transactions": lambda row: (row["transaction_count"], row["pincode"]),
}


def pincode_breakdown_in_order(*, customer_id: int, order: str = "-total") -> list[dict]:
    """``pincode_breakdown_of`` in one of ``CUSTOMER_PINCODE_ORDERS`` (a customer has a few
    pincodes: sorted here)."""
    return sorted(
        pincode_breakdown_of(customer_id=customer_id),
        key=CUSTOMER_PINCODE_ORDERS[order],
        reverse=order == "-pincode",
    )
