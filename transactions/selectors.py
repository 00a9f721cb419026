"""Reads: the two reports and the look-ups ingest needs. All aggregation happens in SQL."""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import operator
from array import array
from collections.abc import Collection, Iterator
from typing import NamedTuple
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from itertools import islice

from django.core.cache import caches
from django.db import connection
from django.db.models import (
    BigIntegerField, Count, DateField, DecimalField, F, Max, Min, OuterRef, QuerySet, Subquery, Sum, Value, Window,
)
from django.db.models.functions import Cast, Collate, Round, RowNumber, TruncMonth

from .db_values import datetime_adapter, filter_by_ids, mysql_literal_writer
from .fields import EXACT_COLLATIONS
from .models import Customer, CustomerPincodeTotal, ImportJob, MonthlyTotal, PincodeTotal, Transaction
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
    return Round(total, 2, output_field=TOTAL_FIELD) if connection.vendor == "sqlite" else total


@dataclass(frozen=True, slots=True)
class CustomerTotal:
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


def stored_payments_with_keys(
    *, keys: Collection[tuple[int, dt.datetime]], mysql_key_literals: dict[tuple, str] | None = None
) -> dict[tuple, StoredPayment]:
    """Like ``transactions_with_keys``, as plain values: a batch compares, it needs no rows.

    On MySQL the keys may come written as SQL already (``services.prepare_batch``).
    """
    quote = connection.ops.quote_name
    table = quote(Transaction._meta.db_table)
    wanted = ("customer", "transaction_datetime", "transaction_amount", "pincode", "state_key")
    customer, moment, amount, pincode, state_key = (
        quote(Transaction._meta.get_field(name).column) for name in wanted
    )
    literal = mysql_literal_writer(connection.connection) if connection.vendor == "mysql" else None
    adapt_datetime = datetime_adapter()
    found: dict[tuple, StoredPayment] = {}
    key_iter = iter(keys)
    with connection.cursor() as cursor:
        while chunk := list(islice(key_iter, KEYS_PER_QUERY)):
            select = f"SELECT {customer}, {moment}, {amount}, {pincode}, {state_key} FROM {table} WHERE ({customer}, {moment}) IN"
            if mysql_key_literals is not None:
                cursor.execute(f"{select} ({','.join([mysql_key_literals[key] for key in chunk])})")
            elif literal is not None:
                # As the inserts do (db_values.mysql_literal_writer): the driver's parameters cost more here.
                cursor.execute(f"{select} ({','.join(f'({literal(c)},{literal(m)})' for c, m in chunk)})")
            else:
                params = [value for c, m in chunk for value in (c, adapt_datetime(m))]
                cursor.execute(f"{select} ({', '.join(['(%s, %s)'] * len(chunk))})", params)
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


def pincode_total_ids_of(*, customer_ids: Collection[int]) -> dict[tuple[int, str, str], int]:
    """The id of each (customer, state_key, pincode) total row of these customers."""
    found: dict[tuple[int, str, str], int] = {}
    id_iter = iter(customer_ids)
    while chunk := list(islice(id_iter, KEYS_PER_QUERY)):
        totals = filter_by_ids(CustomerPincodeTotal.objects.all(), column="customer_id", ids=chunk)
        sql, params = totals.values_list("id", "customer_id", "state_key", "pincode").query.sql_with_params()
        # A plain cursor: a file import reads thousands of these rows a chunk, and the
        # queryset's per-row machinery cost more than the query.
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            found.update(
                ((customer_id, state_key, pincode), row_id) for row_id, customer_id, state_key, pincode in cursor.fetchall()
            )
    return found


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
    totals = _customer_totals_in_range(min_amount=min_amount, max_amount=max_amount, start=start, end=end)
    if totals.model is Customer:  # the running totals answer: the name is on the same row
        return totals.values("customer_id", "name", "total_transaction_amount")
    customer_name = Customer.objects.filter(pk=OuterRef("customer_id")).values("name")
    return totals.annotate(name=Subquery(customer_name)).values("customer_id", "name", "total_transaction_amount")


def _customer_totals_in_range(
    *, min_amount: Decimal, max_amount: Decimal, start: dt.datetime | None, end: dt.datetime | None
) -> QuerySet:
    """``customers_in_total_range`` without the names: the running totals or the window's sums."""
    if _window_covers_everything(start=start, end=end):
        return (
            Customer.objects.filter(
                transaction_count__gt=0, total_amount__gte=min_amount, total_amount__lte=max_amount
            )
            .order_by("-total_amount", "customer_id")
            .values("customer_id", total_transaction_amount=F("total_amount"))
        )
    return (
        _windowed(Transaction.objects.all(), start=start, end=end)
        .values("customer_id")
        .annotate(total_transaction_amount=_sum_of_amounts())
        .filter(total_transaction_amount__gte=min_amount, total_transaction_amount__lte=max_amount)
        .order_by("-total_transaction_amount", "customer_id")
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
    ranked = None
    rank_window = dict(
        expression=RowNumber(),
        partition_by=[F("pincode")],
        order_by=[F("total_transaction_amount").desc(), F("customer_id").asc()],
    )
    if _window_covers_everything(start=start, end=end) and connection.features.supports_slicing_ordering_in_compound:
        rows = _top_of_each_pincode(state_key=state_key, limit=limit)
    elif _window_covers_everything(start=start, end=end):
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
    if ranked is not None:
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


# Pincodes ranked in one statement; a state has a few dozen, India's largest some 1,600.
PINCODES_PER_QUERY = 100


def _top_of_each_pincode(*, state_key: str, limit: int) -> list[tuple[str, int, Decimal]]:
    """(pincode, customer_id, total) of each pincode's `limit` biggest all-time customers.

    One "ORDER BY total LIMIT n" per pincode, joined by UNION ALL: each reads its first rows
    along the ranking index and stops, where ranking the whole state with ROW_NUMBER() sorts
    all of its rows (5 ms against 120 ms for the largest state at a million transactions).
    The pincodes come from the per-pincode totals, which every write keeps in step.
    """
    pincodes = list(PincodeTotal.objects.filter(state_key=state_key).order_by("pincode").values_list("pincode", flat=True))
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
    """Counts and sums over everything stored, read from the per-pincode running totals."""
    totals = PincodeTotal.objects.filter(transaction_count__gt=0).aggregate(
        transactions=Sum("transaction_count"),
        total_amount=Sum("total_amount"),
        states=Count("state_key", distinct=True),
        pincodes=Count("pincode", distinct=True),
    )
    return OverviewTotals(
        transactions=totals["transactions"] or 0,
        customers=Customer.objects.filter(transaction_count__gt=0).count(),
        total_amount=Decimal(totals["total_amount"] or 0).quantize(CENT),  # SQLite sums in floats
        states=totals["states"],
        pincodes=totals["pincodes"],
        newest_transaction=stored_time_span().newest,
    )


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


def _data_version() -> str:
    """Changes whenever a transaction is added, corrected or deleted (three indexed look-ups).

    Every correction in the admin writes a history row, so the newest history id moves too.
    """
    marks = Transaction.objects.aggregate(last_id=Max("pk"), newest=Max("transaction_datetime"))
    last_correction = Transaction.history.aggregate(last=Max("history_id"))["last"]
    newest = marks["newest"].timestamp() if marks["newest"] else ""
    return f"{marks['last_id']}-{newest}-{last_correction}"


def _cached_until_new_data(name: str, compute, *, worth_keeping=lambda value: True):
    """`compute()`, kept until a transaction is added or corrected, or DASHBOARD_CACHE_SECONDS pass.

    For figures no running total holds, such as a windowed range report's totals.
    """
    cache = caches["dashboard"]
    key = f"cdp:dashboard:{name}:{connection.alias}:{_data_version()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        if worth_keeping(value):
            cache.set(key, value, DASHBOARD_CACHE_SECONDS)
    return value


def amount_per_month() -> list[MonthTotal]:
    """The amount and number of all stored transactions per calendar month (UTC), oldest first.

    Read from the per-month running totals: a few dozen rows, however many transactions.
    """
    rows = MonthlyTotal.objects.filter(transaction_count__gt=0).order_by("month")
    return [MonthTotal(month=row.month, transactions=row.transaction_count, total_amount=row.total_amount) for row in rows]


def _utc_month():
    # Truncated in UTC, the zone the rows are stored in (see _month_totals), then made a date
    # so that it compares with MonthlyTotal.month on every database.
    return Cast(TruncMonth("transaction_datetime", tzinfo=dt.timezone.utc), DateField())


def monthly_total_differences() -> list[tuple[dt.date, int, Decimal]]:
    """(month, count, amount) by which each stored MonthlyTotal row falls short of the transactions.

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
    stored = MonthlyTotal.objects.order_by().annotate(
        summary_month=F("month"),
        summary_count=F("transaction_count") * Value(-1),
        summary_amount=F("total_amount") * Value(-1),
    ).values_list("summary_month", "summary_count", "summary_amount")
    rows = _differences(from_transactions.union(stored, all=True), keys=["summary_month"])
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
    stored = PincodeTotal.objects.order_by().annotate(
        summary_state_key=F("state_key"),
        summary_pincode=F("pincode"),
        summary_state=F("state"),
        summary_count=F("transaction_count") * Value(-1),
        summary_amount=F("total_amount") * Value(-1),
    ).values_list("summary_state_key", "summary_pincode", "summary_state", "summary_count", "summary_amount")
    differences = _differences(
        from_transactions.union(stored, all=True), keys=["summary_state_key", "summary_pincode"], label="summary_state"
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


def _differences(union: QuerySet, *, keys: list[str], label: str | None = None) -> list[tuple]:
    """Sum the counts and amounts of a UNION ALL of (keys, [label,] count, amount) rows per key.

    The ORM cannot group a union, so its SQL is wrapped by hand; rows whose sums are zero are
    left out.
    """
    sql, params = union.query.get_compiler(using=union.db).as_sql()
    quote = connection.ops.quote_name
    key_columns = ", ".join(quote(key) for key in keys)
    label_column = f"MIN({quote(label)}), " if label else ""
    count, amount = quote("summary_count"), quote("summary_amount")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {key_columns}, {label_column}SUM({count}), SUM({amount}) FROM ({sql}) summary_rows "
            f"GROUP BY {key_columns} HAVING SUM({count}) <> 0 OR SUM({amount}) <> 0",
            params,
        )
        rows = cursor.fetchall()
    differences = []
    for *key, count_value, amount_value in rows:
        # SQLite sums DECIMAL columns as floats: back to the cents they are.
        amount_value = Decimal(str(amount_value)).quantize(CENT)
        if count_value or amount_value:
            differences.append((*key, int(count_value), amount_value))
    return differences


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
    the spelling most of its transactions are filed under; of equally common ones, the one its
    per-pincode totals were first stored under, then the first in code-point order. Read from
    the running totals (each per-customer, per-pincode row keeps the spelling its customer first
    sent there, weighted by its transactions): never a scan of the transactions themselves (the
    admin's list pages promise none). Kept until new data.
    """

    def compute() -> dict[str, str]:
        # Grouped exactly: MySQL's usual collations would call the two spellings one value.
        collation = EXACT_COLLATIONS.get(connection.vendor)
        spelling = Collate("state", collation) if collation else F("state")
        rows = (
            CustomerPincodeTotal.objects.filter(transaction_count__gt=0)
            .order_by()
            .annotate(spelling=spelling)
            .values("state_key", "spelling")
            .annotate(transactions=Sum("transaction_count"))
            .values_list("state_key", "spelling", "transactions")
        )
        first_stored = dict(
            PincodeTotal.objects.filter(transaction_count__gt=0)
            .order_by()
            .values("state_key")
            .annotate(first=Min(spelling))
            .values_list("state_key", "first")
        )
        best: dict[str, tuple] = {}
        for key, state, transactions in rows:
            rank = (-transactions, state != first_stored.get(key), state)
            if key not in best or rank < best[key]:
                best[key] = rank
        return {key: rank[2] for key, rank in best.items()}

    return _cached_until_new_data("state-names", compute)


def states_with_counts() -> list[StateCount]:
    """Every state with transactions (its one name, ``state_names``), its transactions and pincodes.

    Read from the per-pincode running totals: a few hundred rows.
    """
    rows = (
        PincodeTotal.objects.filter(transaction_count__gt=0)
        .values("state_key")
        .annotate(state=Min("state"), transactions=Sum("transaction_count"), pincodes=Count("pincode"))
        .order_by("state_key")
        .values_list("state_key", "state", "transactions", "pincodes")
    )
    names = state_names()
    return [
        StateCount(state=names.get(key, state), transactions=count, pincodes=pincodes, state_key=key)
        for key, state, count, pincodes in rows
    ]


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
    to the last, with the months between that have none as zeros: bars one month apart."""
    return _with_empty_months(_month_totals(Transaction.objects.filter(customer_id=customer_id)))


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
        customer_ids = self._matches.customer_ids[index]
        cents = self._matches.cents[index]
        names = dict(Customer.objects.filter(pk__in=list(customer_ids)).values_list("pk", "name"))
        return [
            {"customer_id": customer_id, "name": names[customer_id], "total_transaction_amount": _from_cents(total)}
            for customer_id, total in zip(customer_ids, cents)
        ]


def _from_cents(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


# Above this many matches a report's totals are not kept between requests (each page then sums
# the window again); 200,000 matches take 3.2 MB.
MAX_CACHED_MATCHES = 200_000


def range_report(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    buckets: int = DISTRIBUTION_BUCKETS,
) -> RangeReport:
    """``customers_in_total_range`` with its count and the histogram of its totals.

    The totals are read once, in one query (for a window that is not all time, the one that
    sums every transaction in it: the report's whole cost); the count, the histogram and every
    page come from that one answer, so they always agree. The answer is kept until a
    transaction is added or corrected, so turning the pages costs a look-up of 50 names.
    """
    span = stored_time_span()
    # A window reaching past the stored transactions is the same window as one ending at them:
    # "until now" asked a minute later is the same query (the data version says if it isn't).
    window = (
        None if start is None or span.oldest is None or start <= span.oldest else start.isoformat(),
        None if end is None or span.newest is None or end >= span.newest else end.isoformat(),
    )
    query_key = hashlib.sha1(repr((str(min_amount), str(max_amount), window)).encode()).hexdigest()
    matches = _cached_until_new_data(
        f"range:{query_key}",
        lambda: _matched_totals(min_amount=min_amount, max_amount=max_amount, start=start, end=end),
        worth_keeping=lambda matches: len(matches.customer_ids) <= MAX_CACHED_MATCHES,
    )
    return RangeReport(summary=_distribution_of_totals(matches=matches, buckets=buckets), rows=CustomerTotalRows(matches))


def _matched_totals(
    *, min_amount: Decimal, max_amount: Decimal, start: dt.datetime | None, end: dt.datetime | None
) -> _MatchedTotals:
    """The (customer_id, total in cents) pairs of ``customers_in_total_range``, in its order."""
    matches = _customer_totals_in_range(min_amount=min_amount, max_amount=max_amount, start=start, end=end)
    if matches.model is Customer:  # all time: the running totals, read along their index
        in_cents = matches.values_list("customer_id", Cast(Round(F("total_amount") * 100), BigIntegerField()))
        select, params = in_cents.query.get_compiler(using=matches.db).as_sql()
    else:
        # The window's sums are filtered in an outer query, not in HAVING as the ORM writes it:
        # MariaDB computes SUM() again for each mention in HAVING, a quarter of the query's
        # time (40 ms of 165 at a million rows). The ORM has no spelling for a subquery in FROM.
        sums = (
            _windowed(Transaction.objects.all(), start=start, end=end)
            .values("customer_id")
            .annotate(total_transaction_amount=_sum_of_amounts())
            .order_by()
        )
        sql, params = sums.query.get_compiler(using=sums.db).as_sql()
        # CAST: SQLite would compare its float sums with the bounds as text.
        bound = "CAST(%s AS DECIMAL(30, 2))"
        select = (
            f"SELECT customer_id, {_in_cents('total_transaction_amount')} FROM ({sql}) window_totals "
            f"WHERE total_transaction_amount >= {bound} AND total_transaction_amount <= {bound} "
            "ORDER BY total_transaction_amount DESC, customer_id"
        )
        params = (*params, str(min_amount), str(max_amount))
    with connection.cursor() as cursor:
        cursor.execute(select, params)
        rows = cursor.fetchall()
    customer_ids, cents = zip(*rows) if rows else ((), ())
    return _MatchedTotals(customer_ids=array("q", customer_ids), cents=array("q", cents))


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
