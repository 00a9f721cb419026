"""Operators' corrections and deletions, with their audit trail."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from ..models import Customer, Transaction
from ..validation import state_key_for
from .totals import SummaryDeltas, rebuild_customer_totals


class TransactionKeyTaken(Exception):
    """A correction would give a transaction the key of another one of the same customer."""


def save_corrected_transaction(*, row: Transaction, previous_customer_id: int | None, changed_by=None) -> None:
    """Store an operator's correction of a transaction (or its restoration from history).

    The totals of the customers before and after are rebuilt, and the stored row's month and
    pincode totals moved from its old values to its new ones, in the same database
    transaction, so every report reflects the correction as soon as it is committed.
    """
    row.state_key = state_key_for(row.state)
    if changed_by is not None:
        row._history_user = changed_by
    with transaction.atomic():
        collides = Transaction.objects.filter(
            customer_id=row.customer_id, transaction_datetime=row.transaction_datetime
        ).exclude(pk=row.pk)
        if collides.exists():
            raise TransactionKeyTaken()
        deltas = SummaryDeltas()
        if row.pk is not None:
            # Locked, so that two corrections of one row each take away what the other stored.
            # None when a deleted row is being restored from its history.
            stored = Transaction.objects.select_for_update().filter(pk=row.pk).first()
            if stored is not None:
                deltas.add(stored, sign=-1)
            _record_values_before_correction(Transaction, pk=row.pk)
        row.save()
        deltas.add(row, sign=1)
        rebuild_customer_totals(customer_ids={row.customer_id, previous_customer_id or row.customer_id})
        deltas.write()


def delete_transactions(*, rows: Iterable[Transaction], changed_by=None) -> None:
    """Delete transactions (each recorded in the history) and rebuild their customers' totals.

    The month and pincode totals lose the deleted rows as stored (read under a lock, not from
    the possibly stale instances given).
    """
    with transaction.atomic():
        rows = list(rows)
        deltas = SummaryDeltas()
        for stored in Transaction.objects.select_for_update().filter(pk__in=[row.pk for row in rows]).order_by("pk"):
            deltas.add(stored, sign=-1)
        customer_ids = set()
        for row in rows:
            if changed_by is not None:
                row._history_user = changed_by
            customer_ids.add(row.customer_id)
            row.delete()
        rebuild_customer_totals(customer_ids=customer_ids)
        deltas.write()


def save_corrected_customer(*, customer: Customer, changed_by=None) -> None:
    """Store an operator's correction of a customer's name or mobile number."""
    if changed_by is not None:
        customer._history_user = changed_by
    with transaction.atomic():
        _record_values_before_correction(Customer, pk=customer.pk)
        customer.details_corrected_at = timezone.now()
        customer.save(update_fields=["name", "mob_no", "details_corrected_at"])


def _record_values_before_correction(model, *, pk) -> None:
    """Put a row's stored values in its history, unless its latest history entry holds them.

    Ingest stores rows in bulk without history, and moves a customer's name and mobile number
    on to those of a newer transaction; without this, a correction's history entry would hold
    the new values only and the old ones would be lost from the audit trail.
    """
    history_model = model.history.model
    stored = model.objects.filter(pk=pk).first()
    if stored is None:
        return  # a deleted row being restored: its history ends with the values it had
    tracked = [field.attname for field in history_model.tracked_fields]
    latest = (
        history_model.objects.filter(**{model._meta.pk.attname: pk}).order_by("-history_date", "-history_id").first()
    )
    if latest is not None and all(getattr(latest, name) == getattr(stored, name) for name in tracked):
        return
    # Built by hand: the history manager's helpers would credit the operator (the request's
    # user) with values that ingest stored.
    history_model.objects.create(
        history_date=(None if latest else getattr(stored, "created_at", None)) or timezone.now(),
        history_user=None,
        history_type="~" if latest else "+",
        history_change_reason="As stored before an operator's correction",
        **{name: getattr(stored, name) for name in tracked},
    )
