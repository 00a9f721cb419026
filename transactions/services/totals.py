"""The running totals the reports read, and the one rule that keeps them.

Per customer (``Customer``) and per customer and pincode (``CustomerPincodeTotal``), a write
adds what it stored in the same database transaction: those rows belong to one customer, so
two writes for different customers never touch the same one.

The whole-table figures (per month, ``MonthlyTotal``; per pincode, ``PincodeTotal``; per spelling
of a state, ``StateSpelling``, folded from the pincode deltas, one a spelling) would be
rows every writer shares: on one server all writers queued on the current month's row until
each committed, and on a multi-primary cluster every two concurrent writes on two nodes
conflicted at commit. So writers never update them. A write *appends* what it adds as rows of
``MonthlyTotalDelta`` and ``PincodeTotalDelta`` (inserts of new rows, which nobody waits for),
readers add the not-yet-folded deltas to the folded totals in one statement (so a report asked
for after a write's answer includes it), and ``fold_summary_deltas`` moves deltas into the
totals from time to time (the import worker runs it), skipping rows another folder holds.
Chosen over computing the figures at read time (a GROUP BY over every transaction, 0.7 s at a
million rows) and over sharded counters (two customers can still share a shard).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from django.db import OperationalError, transaction

from .. import selectors
from ..models import (
    Customer,
    CustomerPincodeTotal,
    MonthlyTotal,
    MonthlyTotalDelta,
    PincodeTotal,
    PincodeTotalDelta,
    StateSpelling,
    Transaction,
)
from ..sql import operations
from ..validation import TransactionRecord
from .rows import Upsert, adding, insert_rows, new, stored

FOLD_BATCH_ROWS = 10_000

Row = Transaction | TransactionRecord


# --- Per customer ----------------------------------------------------------------------------
# The rule: a customer's name and mobile number are those of its newest transaction; its total
# and count add up over its transactions. It is written twice, each naming the other: in Python,
# folding one batch's rows per customer (``customer_additions``), and in SQL, folding that into
# the stored row (``CUSTOMER_ADDITION``). The set-based writer of big batches restates the
# Python half in SQL over its staging table (``bulk._add_to_customers``) and folds it in with the
# same upsert; its per-pincode totals restate ``add_to_pincode_totals`` the same way
# (``bulk._add_to_pincode_totals``). Its month and pincode deltas are ``append_summary_deltas``'.


@dataclass(slots=True)
class CustomerAddition:
    """What some rows add to one customer: its newest details, and their amount and count."""

    name: str
    mob_no: str
    details_as_of: dt.datetime
    amount: Decimal
    count: int


def customer_additions(rows: Iterable[Row]) -> dict[int, CustomerAddition]:
    """The rule, in Python, over a batch's rows (the SQL half is ``_customer_addition_upsert``;
    restated in SQL by ``bulk._add_to_customers``)."""
    additions: dict[int, CustomerAddition] = {}
    for r in rows:
        addition = additions.get(r.customer_id)
        if addition is None:
            additions[r.customer_id] = CustomerAddition(r.name, r.mob_no, r.transaction_datetime, r.transaction_amount, 1)
            continue
        if r.transaction_datetime > addition.details_as_of:
            addition.name, addition.mob_no, addition.details_as_of = r.name, r.mob_no, r.transaction_datetime
        addition.amount += r.transaction_amount
        addition.count += 1
    return additions


def _customer_addition_upsert() -> Upsert:
    return _customer_addition_upsert_for(type(operations()))


@lru_cache(maxsize=None)
def _customer_addition_upsert_for(vendor_operations: type) -> Upsert:
    """The rule, in SQL, adding a batch's ``CustomerAddition`` to a stored customer (written
    once per vendor: ``vendor_operations`` is its ``sql.operations()`` class).

    The batch's details replace the stored ones if newer, or if the customer has no
    transactions (all deleted, or just created). Each condition reads only columns assigned
    after it, so MySQL's left-to-right assignment and PostgreSQL's and SQLite's (all reading the
    stored row) agree; the count, which says whether there were transactions, goes last.
    """
    c = Customer
    take_new = (
        f"{stored(c, 'transaction_count')} = 0 OR {new(c, 'details_as_of')} > {stored(c, 'details_as_of')}"
    )
    return Upsert(c, ["customer_id"], [
        ("name", f"CASE WHEN {take_new} THEN {new(c, 'name')} ELSE {stored(c, 'name')} END"),
        ("mob_no", f"CASE WHEN {take_new} THEN {new(c, 'mob_no')} ELSE {stored(c, 'mob_no')} END"),
        ("details_as_of", f"CASE WHEN {take_new} THEN {new(c, 'details_as_of')} ELSE {stored(c, 'details_as_of')} END"),
        *adding(c, ["total_amount", "transaction_count"]),
    ])


CUSTOMER_COLUMNS = ["customer_id", "name", "mob_no", "details_as_of", "total_amount", "transaction_count"]


def add_to_customers(additions: dict[int, CustomerAddition]) -> None:
    """Add to the customers' stored rows (creating the new ones), in id order.

    The order is the order their row locks are taken in, so two batches sharing customers
    never wait for each other in a circle.
    """
    insert_rows(
        Customer,
        CUSTOMER_COLUMNS,
        [
            (customer_id, a.name, a.mob_no, a.details_as_of, a.amount, a.count)
            for customer_id, a in sorted(additions.items())
        ],
        upsert=_customer_addition_upsert(),
    )


PINCODE_TOTAL_COLUMNS = ["customer", "state_key", "pincode", "state", "total_amount", "transaction_count"]


def add_to_pincode_totals(rows: Iterable[Row]) -> None:
    """Add rows to their customer's per-pincode totals, creating missing ones, in key order
    (restated in SQL by ``bulk._add_to_pincode_totals``)."""
    sums: dict[tuple[int, str, str], list] = {}
    for r in rows:
        key = (r.customer_id, r.state_key, r.pincode)
        total = sums.get(key)
        if total is None:
            sums[key] = [r.state, r.transaction_amount, 1]
        else:
            total[1] += r.transaction_amount
            total[2] += 1
    insert_rows(
        CustomerPincodeTotal,
        PINCODE_TOTAL_COLUMNS,
        [(*key, state, amount, count) for key, (state, amount, count) in sorted(sums.items())],
        upsert=_pincode_total_upsert_for(type(operations())),
    )


@lru_cache(maxsize=None)
def _pincode_total_upsert_for(vendor_operations: type) -> Upsert:
    return Upsert(
        CustomerPincodeTotal,
        ["customer", "state_key", "pincode"],
        adding(CustomerPincodeTotal, ["total_amount", "transaction_count"]),
    )


def add_stored_rows(rows: Sequence[Row]) -> None:
    """Everything newly stored rows add: to their customers, pincodes, months and states."""
    if not rows:
        return
    add_to_customers(customer_additions(rows))
    add_to_pincode_totals(rows)
    append_summary_deltas(rows)


def rebuild_customer_totals(*, customer_ids: Iterable[int]) -> None:
    """Rebuild some customers' totals from their stored transactions (in the caller's transaction).

    The name and mobile number become those of the newest remaining transaction, unless an
    operator has corrected them.
    """
    customer_ids = sorted(set(customer_ids))
    with transaction.atomic():
        customers = list(
            Customer.objects.select_for_update().filter(pk__in=customer_ids).order_by("pk")
            .values_list("pk", "name", "mob_no", "details_corrected_at")
        )
        Customer.objects.filter(pk__in=customer_ids).update(total_amount=0, transaction_count=0)
        CustomerPincodeTotal.objects.filter(customer_id__in=customer_ids).delete()
        rows = list(Transaction.objects.filter(customer_id__in=customer_ids).order_by("customer_id", "transaction_datetime"))
        add_to_customers(customer_additions(rows))
        add_to_pincode_totals(rows)
        for customer_id, name, mob_no, corrected_at in customers:
            if corrected_at is not None:
                Customer.objects.filter(pk=customer_id).update(name=name, mob_no=mob_no)


# --- Whole-table figures: appended deltas, folded later --------------------------------------


class SummaryDeltas:
    """What a write adds to (or takes from) the per-month and per-pincode figures."""

    def __init__(self) -> None:
        self.months: dict[dt.date, list] = {}  # month -> [count, amount]
        # (state_key, pincode, state as sent) -> [count, amount]: one delta row per spelling,
        # which StateSpelling counts; in the order first seen, so the first sent is stored first.
        self.pincodes: dict[tuple[str, str, str], list] = {}

    def add(self, row: Row, *, sign: int) -> None:
        # The month is that of the UTC moment.
        amount = row.transaction_amount if sign > 0 else -row.transaction_amount
        moment = row.transaction_datetime
        if moment.tzinfo is not dt.timezone.utc:
            moment = moment.astimezone(dt.timezone.utc)
        month_key = dt.date(moment.year, moment.month, 1)
        month = self.months.get(month_key)
        if month is None:
            self.months[month_key] = [sign, amount]
        else:
            month[0] += sign
            month[1] += amount
        pincode = self.pincodes.get((row.state_key, row.pincode, row.state))
        if pincode is None:
            self.pincodes[(row.state_key, row.pincode, row.state)] = [sign, amount]
        else:
            pincode[0] += sign
            pincode[1] += amount

    def write(self) -> None:
        """Append the deltas (new rows: no writer waits for another)."""
        insert_rows(
            MonthlyTotalDelta,
            ["month", "transaction_count", "total_amount"],
            [(month, count, amount) for month, (count, amount) in sorted(self.months.items()) if count or amount],
        )
        insert_rows(
            PincodeTotalDelta,
            ["state_key", "pincode", "state", "transaction_count", "total_amount"],
            [(*key, count, amount) for key, (count, amount) in self.pincodes.items() if count or amount],
        )


def append_summary_deltas(rows: Iterable[Row]) -> None:
    """Append what newly stored rows add to the per-month and per-pincode figures, the rows
    taken in the order they were sent (a pincode's spellings come in the order first sent)."""
    deltas = SummaryDeltas()
    add = deltas.add
    for row in rows:
        add(row, sign=1)
    deltas.write()


def fold_summary_deltas(*, max_rows: int = FOLD_BATCH_ROWS) -> int:
    """Move appended deltas into ``MonthlyTotal``, ``PincodeTotal`` and ``StateSpelling``; how
    many were folded.

    Each run locks the deltas it folds (skipping rows another run holds, so folders never wait
    for each other or fold a row twice), adds them to the totals and deletes them, all in one
    transaction: a reader's single statement sees them either as deltas or in the totals. Only
    folders update the totals. On a cluster two folders on two nodes may still conflict at
    commit; the loser's deltas stay for the next run.
    """
    folded = 0
    for model in (MonthlyTotalDelta, PincodeTotalDelta):
        while (done := _fold_some(model, max_rows)) == max_rows:  # a full batch: more may wait
            folded += done
        folded += done
    return folded


def _fold_some(model, max_rows: int) -> int:
    """Fold up to ``max_rows`` of one delta table (see ``fold_summary_deltas``)."""
    try:
        with transaction.atomic():
            locked = model.objects.order_by("id")
            if operations().has_row_locks:
                locked = locked.select_for_update(skip_locked=True)
            rows = list(locked[:max_rows])
            if not rows:
                return 0
            if model is MonthlyTotalDelta:
                _fold_months(rows)
            else:
                _fold_pincodes(rows)
            ids = [row.id for row in rows]
            for first in range(0, len(ids), 2000):
                model.objects.filter(id__in=ids[first : first + 2000]).delete()
            return len(rows)
    except OperationalError as exc:
        if not operations().is_transient(exc):
            raise
        return 0


def _fold_months(rows: list[MonthlyTotalDelta]) -> None:
    sums: dict[dt.date, list] = {}
    for row in rows:
        total = sums.setdefault(row.month, [0, Decimal("0")])
        total[0] += row.transaction_count
        total[1] += row.total_amount
    insert_rows(
        MonthlyTotal,
        ["month", "transaction_count", "total_amount"],
        [(month, count, amount) for month, (count, amount) in sorted(sums.items())],
        upsert=Upsert(MonthlyTotal, ["month"], adding(MonthlyTotal, ["transaction_count", "total_amount"])),
    )


def _fold_pincodes(rows: list[PincodeTotalDelta]) -> None:
    sums: dict[tuple[str, str], list] = {}
    for row in rows:
        total = sums.setdefault((row.state_key, row.pincode), [row.state, 0, Decimal("0")])
        total[1] += row.transaction_count
        total[2] += row.total_amount
    insert_rows(
        PincodeTotal,
        ["state_key", "pincode", "state", "transaction_count", "total_amount"],
        [(*key, state, count, amount) for key, (state, count, amount) in sorted(sums.items())],
        upsert=Upsert(PincodeTotal, ["state_key", "pincode"], adding(PincodeTotal, ["transaction_count", "total_amount"])),
    )
    spellings: dict[tuple[str, str], list] = {}  # rows in id order: the first id is the first seen
    for row in rows:
        spelling = spellings.setdefault((row.state_key, row.state), [0, row.id])
        spelling[0] += row.transaction_count
    add_to_state_spellings(spellings)


def add_to_state_spellings(counts) -> None:
    """Add (state_key, exact spelling) -> (count, first delta id) to ``StateSpelling``, in key
    order (the first delta id is kept by a row that exists already).

    By the fold, and by ``recompute_summary_totals`` directly: a count added commutes with the
    folds going on meanwhile, as a delta would (the spellings have no pincode to append one to).
    """
    insert_rows(
        StateSpelling,
        ["state_key", "state", "transaction_count", "first_delta_id"],
        [(*key, count, first) for key, (count, first) in sorted(counts.items()) if count],
        upsert=Upsert(StateSpelling, ["state_key", "state"], adding(StateSpelling, ["transaction_count"])),
    )


def recompute_summary_totals() -> None:
    """Bring the per-month, per-pincode and per-spelling figures back in line with the stored
    transactions.

    For transactions changed outside the services (a data fix). Each table's difference between
    its figures (totals plus deltas) and the transactions is read in one statement, which sees
    one snapshot of both; the difference is appended as one more delta, so writes going on
    meanwhile keep what they add. Every transaction is read: 0.7 s at a million rows on MariaDB.
    """
    deltas = SummaryDeltas()
    for month, count, amount in selectors.monthly_total_differences():
        deltas.months[month] = [count, amount]
    for state_key, pincode, state, count, amount in selectors.pincode_total_differences():
        deltas.pincodes[(state_key, pincode, state)] = [count, amount]
    deltas.write()
    # Those deltas spell each pincode's difference one way; what the spellings' counts still
    # lack is read after them, and added directly.
    add_to_state_spellings(
        {(state_key, state): (count, 0) for state_key, state, count in selectors.state_spelling_differences()}
    )


def recompute_customer_totals(*, customer_ids: Iterable[int]) -> None:
    """Rebuild some customers' totals, and the whole-table figures, from the stored transactions.

    For transactions changed outside the services (a data fix): which months and pincodes such a
    change touched is no longer known, so the figures are brought in line from every transaction.
    """
    with transaction.atomic():
        rebuild_customer_totals(customer_ids=customer_ids)
        recompute_summary_totals()
