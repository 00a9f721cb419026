"""Storing transactions: each key once, with duplicates and conflicts told apart.

One path for every database and every size, from a single API record to a file import's chunk:

1. the batch's customers are added to (created if new) in id order, as if every record were
   new: that takes each customer's row lock, so concurrent writes for one customer queue
   there, and writes for different customers never meet;
2. the records are inserted skipping stored keys, and the database says which rows it stored
   (``INSERT IGNORE ... RETURNING`` on MariaDB, ``ON CONFLICT DO NOTHING RETURNING`` elsewhere);
3. if every record was stored (the usual case: one round trip per table) the rest of the totals
   follow; if some repeated a stored key, the transaction is rolled back and run again knowing
   those keys, so the totals only ever add what was stored.

The unique constraint on (customer, transaction_datetime) is what guarantees one row per key,
under any race; the customer lock only makes the race's loser wait instead of retrying.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from .. import selectors
from ..models import Transaction
from ..sql import operations
from ..validation import TransactionRecord
from . import bulk, totals
from .rows import insert_rows, run_last, send_waiting, sent_together, transaction_sent_together

logger = logging.getLogger(__name__)

IngestStatus = Literal["created", "duplicate", "conflict"]

# Lock waits, deadlocks and (on Galera) certification failures are resolved by running the
# losing transaction again; the unique constraint guarantees a retry never stores twice.
MAX_INGEST_ATTEMPTS = 12
# Backoff before attempt n: uniform in [0, min(cap, base * 2**n)] ("full jitter"), so writers
# that collided spread out instead of colliding again. A Galera certification round is a few
# milliseconds; the whole budget is about a second and a half.
RETRY_BASE_SECONDS = 0.002
RETRY_CAP_SECONDS = 0.25
# Each race a set-based batch loses is another writer storing one of its keys, so the losses of
# one batch are bounded by the batches that overlap it; this cap only guards against a bug.
MAX_LOST_RACES = 100

TRANSACTION_COLUMNS = [
    "customer", "name", "mob_no", "transaction_amount", "transaction_datetime",
    "pincode", "state", "state_key", "created_at",
]


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What became of one record: stored, a repeat of a stored row, or contradicting one.

    ``transaction`` is set for a single record only: the stored row it collided with, or the
    row it became. Batches compare plain values and carry no rows.
    """

    index: int
    status: IngestStatus
    transaction: Transaction | None = None


class CommitConditionFailed(Exception):
    """The ``commit_condition`` did not hold: nothing was stored (see ``ingest_transactions``)."""


class _RepeatsFound(Exception):
    """Some records repeat stored keys: roll back and run again knowing them."""

    def __init__(self, keys: set[tuple]):
        self.keys = keys


def ingest_transactions(
    *,
    records: Sequence[TransactionRecord],
    before_commit: Callable[[list[IngestOutcome]], None] | None = None,
    max_attempts: int = MAX_INGEST_ATTEMPTS,
    in_bulk: bool | None = None,
    commit_condition: str | None = None,
) -> list[IngestOutcome]:
    """Store validated records, each key at most once, and return one outcome per record.

    ``before_commit`` runs inside the same database transaction once the records are stored
    (a file import saves its progress marker there, so the two commit or roll back together).
    It may run more than once if the transaction is retried. A caller that can make the work
    smaller when it keeps losing (a file import's chunk) asks for fewer ``max_attempts``.
    ``in_bulk``: store a batch set-based (``services.bulk``) where the database has a bulk
    loader; by default batches of ``bulk.MIN_RECORDS`` or more are.
    ``commit_condition``: a statement (``sql.operations().commit_condition``) run last before
    the commit, in the same round trip; if it fails, nothing is stored and
    ``CommitConditionFailed`` is raised. The API sends one that holds while the credentials a
    request was let in with are unchanged (``api.authentication``), instead of reading them
    before the write.
    """
    if not records:
        return []
    # Big batches go set-based where the database has a bulk loader (services.bulk); it looks
    # the stored keys up on every attempt, so it needs no known repeats.
    if in_bulk is not False:
        in_bulk = bulk.writes_in_bulk(records, minimum=1 if in_bulk else bulk.MIN_RECORDS)
    known_repeats: set[tuple] = set()
    failures = 0  # a rerun knowing the repeats is no failure: only errors count against max_attempts
    lost_races = 0
    for attempt in itertools.count(1):
        try:
            # A single record's first attempt sends its transaction's START and COMMIT along
            # with its writes (two round trips in all): it reads nothing back but what its
            # INSERT returns, and a repeat ends it at once (_RepeatsFound). The rest: atomic().
            lean = attempt == 1 and len(records) == 1 and before_commit is None
            with transaction_sent_together() if lean else transaction.atomic():
                if in_bulk:
                    outcomes, stored_ids = bulk.store_in_bulk(records), {}
                else:
                    looked_up = None
                    if attempt == 1 and len(records) > 1:
                        # A batch (a file's chunk) often repeats a few stored keys: finding them
                        # first costs one look-up, where finding them by inserting costs a rerun.
                        # A single record inserts first: it is rarely a repeat.
                        looked_up = selectors.stored_payments_with_keys(keys={r.key for r in records})
                        known_repeats = set(looked_up)
                    outcomes, stored_ids = _store(records, known_repeats, looked_up)
                if before_commit is not None:
                    before_commit(outcomes)
                if commit_condition is not None:
                    run_last(commit_condition)
            break
        except _RepeatsFound as found:
            known_repeats |= found.keys  # not an error: the next run knows them (no backoff)
        except (OperationalError, IntegrityError) as exc:
            if commit_condition is not None and operations().is_failed_commit_condition(exc):
                raise CommitConditionFailed() from exc
            known_repeats = set()  # a repeat's row may be gone by the next run
            if in_bulk and isinstance(exc, IntegrityError) and lost_races < MAX_LOST_RACES:
                # The set-based path looks its keys up without locks: another writer stored one
                # of them meanwhile (services.bulk). That is the other writer's progress, not an
                # error: the next run finds the key stored, so it does not count as a failure.
                lost_races += 1
                logger.info("bulk ingest attempt %s lost a race (%r); running again", attempt, exc)
                time.sleep(random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** min(lost_races, 6))))
                continue
            retryable = isinstance(exc, IntegrityError) or operations().is_transient(exc)
            failures += 1
            if failures == max_attempts or not retryable:
                raise
            logger.info("ingest attempt %s hit %r; retrying", attempt, exc)
            time.sleep(random.uniform(0, min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**failures)))
    if len(records) == 1 and outcomes[0].status == "created":
        # The row as stored, for the API's answer.
        r = records[0]
        # Positional, in the fields' order, as Django builds rows it reads (Model.from_db):
        # keyword arguments cost a look-up per field (4% of a single ingest's Python, profiled).
        # The order is checked by tests.test_write_contract (the answer equals the stored row).
        row = Transaction(
            stored_ids.get(r.key), r.customer_id, r.name, r.mob_no, r.transaction_amount,
            r.transaction_datetime, r.pincode, r.state, r.state_key, None,
        )
        outcomes[0] = IngestOutcome(index=0, status="created", transaction=row)
    return outcomes


def is_transient_lock_error(exc: OperationalError) -> bool:
    return operations().is_transient(exc)


def _same_payment(stored: Transaction | selectors.StoredPayment | TransactionRecord, record: TransactionRecord) -> bool:
    """A record repeating a stored key is a duplicate if it agrees on these, else a conflict."""
    return (
        stored.transaction_amount == record.transaction_amount
        and stored.pincode == record.pincode
        and stored.state_key == record.state_key
    )


def _store(
    records: Sequence[TransactionRecord],
    known_repeats: set[tuple],
    looked_up: dict[tuple, selectors.StoredPayment] | None = None,
) -> tuple[list[IngestOutcome], dict[tuple, int]]:
    """The outcomes, and the ids of the stored rows by key (``looked_up``: the known repeats'
    stored payments, when this transaction has read them already)."""
    # The first record of each key is the one that may be stored; later ones repeat it.
    first_of_key: dict[tuple, int] = {}
    for index, record in enumerate(records):
        first_of_key.setdefault(record.key, index)
    candidates = [index for index in first_of_key.values() if records[index].key not in known_repeats]
    to_store = sorted((records[index] for index in candidates), key=_by_key)  # index pages fill in order

    # Steps 1 and 2 go to the database in one round trip, step 3 in another, where it can.
    with sent_together():
        # 1. Customers first (as if every candidate were new): it takes their locks in id order.
        #    A new customer is created with its totals; its transactions refer to it.
        totals.add_to_customers(totals.customer_additions(to_store))

        # 2. The transactions, skipping stored keys; the database says which it stored.
        stored_keys = _insert_skipping_stored(to_store)  # key -> id
        if len(stored_keys) != len(to_store):
            raise _RepeatsFound({r.key for r in to_store if r.key not in stored_keys})

        # 3. Everything was stored: the other totals follow.
        totals.add_to_pincode_totals(to_store)
        totals.append_summary_deltas(to_store)

    if not known_repeats and len(candidates) == len(records):
        return [IngestOutcome(index=index, status="created") for index in range(len(records))], stored_keys
    stored_by_key: dict[tuple, Transaction | selectors.StoredPayment | TransactionRecord]
    if len(records) == 1:
        # A single record's answer shows the stored row it collided with.
        stored_by_key = {row.key: row for row in selectors.transactions_with_keys(keys=known_repeats)}
    elif looked_up is not None and known_repeats <= looked_up.keys():
        stored_by_key = looked_up
    else:
        stored_by_key = selectors.stored_payments_with_keys(keys=known_repeats)
    if len(stored_by_key) != len(known_repeats):
        # A repeat's row is gone again (an operator deleted it meanwhile): start afresh.
        raise IntegrityError("a stored key disappeared between two attempts")
    created = set(candidates)
    outcomes = []
    for index, record in enumerate(records):
        if index in created:
            outcomes.append(IngestOutcome(index=index, status="created"))
            continue
        earlier = stored_by_key.get(record.key) or records[first_of_key[record.key]]
        status: IngestStatus = "duplicate" if _same_payment(earlier, record) else "conflict"
        outcomes.append(IngestOutcome(
            index=index, status=status, transaction=earlier if isinstance(earlier, Transaction) else None
        ))
    return outcomes, stored_keys


def _by_key(record: TransactionRecord) -> tuple:
    return (record.customer_id, record.transaction_datetime)


def _insert_skipping_stored(records: Sequence[TransactionRecord]) -> dict[tuple, int | None]:
    """Insert the records, skipping stored keys; the ids of the rows it stored, by key."""
    if not records:
        return {}
    created_at = timezone.now()
    rows = [
        (r.customer_id, r.name, r.mob_no, r.transaction_amount, r.transaction_datetime, r.pincode, r.state, r.state_key, created_at)
        for r in records
    ]
    if not operations().can_return_rows_from_insert_skipping_conflicts:
        # MySQL 8 (no RETURNING): look the keys up first, under the customers' locks.
        send_waiting()  # the customers' upsert takes those locks
        stored = selectors.stored_payments_with_keys(keys=[r.key for r in records])
        rows = [row for row, r in zip(rows, records) if r.key not in stored]
        insert_rows(Transaction, TRANSACTION_COLUMNS, rows)
        send_waiting()
        created = [r for r in records if r.key not in stored]
        if len(created) == 1:  # the API's answer names the new row's id
            [(key, row_id)] = [(r.key, r_id) for r in created for r_id in Transaction.objects.filter(
                customer_id=r.customer_id, transaction_datetime=r.transaction_datetime).values_list("id", flat=True)]
            return {key: row_id}
        return {r.key: None for r in created}
    returned = insert_rows(
        Transaction, TRANSACTION_COLUMNS, rows,
        skip_conflicts_on=["customer", "transaction_datetime"], returning=["id", "customer", "transaction_datetime"],
    )
    return {(customer_id, _as_aware_utc(moment)): row_id for row_id, customer_id, moment in returned}


def _as_aware_utc(value) -> dt.datetime:
    if isinstance(value, str):  # SQLite
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.timezone.utc)
