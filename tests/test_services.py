"""services.ingest_transactions and recompute_customer_totals, called directly, and under races."""

from __future__ import annotations

import datetime as dt
import random
import threading
from collections import Counter
from decimal import Decimal

from django.db import connection
from django.test import TestCase, TransactionTestCase

from tests.support import clear_caches, make_user, record, token_client
from transactions import services
from transactions.models import Customer, CustomerPincodeTotal, Transaction
from transactions.validation import TransactionRecord, parse_transaction_record

UTC = dt.timezone.utc


def parsed(**overrides) -> TransactionRecord:
    return parse_transaction_record(record(**overrides))


def pincode_totals() -> list[tuple]:
    return sorted(
        CustomerPincodeTotal.objects.values_list(
            "customer_id", "state_key", "pincode", "state", "total_amount", "transaction_count"
        )
    )


def customer_totals() -> list[tuple]:
    return list(
        Customer.objects.order_by("pk").values_list("pk", "name", "mob_no", "total_amount", "transaction_count")
    )


class IngestOutcomeTests(TestCase):
    def test_nothing_to_ingest_stores_nothing(self):
        self.assertEqual(services.ingest_transactions(records=[]), [])
        self.assertFalse(Customer.objects.exists())

    def test_single_new_record_carries_its_stored_row(self):
        [outcome] = services.ingest_transactions(records=[parsed()])
        stored = Transaction.objects.get()
        self.assertEqual((outcome.index, outcome.status), (0, "created"))
        self.assertEqual(outcome.transaction.pk, stored.pk)
        self.assertEqual(
            (stored.customer_id, stored.transaction_amount, stored.transaction_datetime, stored.state_key),
            (101, Decimal("1500.75"), dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC), "delhi"),
        )

    def test_outcomes_follow_the_records_index_by_index(self):
        [stored_outcome] = services.ingest_transactions(records=[parsed(transaction_datetime="2024-01-01T00:00:00")])
        stored = stored_outcome.transaction
        outcomes = services.ingest_transactions(
            records=[
                parsed(transaction_datetime="2024-01-02T00:00:00"),
                parsed(transaction_datetime="2024-01-01T00:00:00", state="DELHI"),
                parsed(transaction_datetime="2024-01-01T00:00:00", pincode="110002"),
                parsed(transaction_datetime="2024-01-02T00:00:00"),
                parsed(transaction_datetime="2024-01-02T00:00:00", transaction_amount="1.00"),
                parsed(transaction_datetime="2024-01-03T00:00:00"),
            ]
        )
        self.assertEqual(
            [(outcome.index, outcome.status) for outcome in outcomes],
            [(0, "created"), (1, "duplicate"), (2, "conflict"), (3, "duplicate"), (4, "conflict"), (5, "created")],
        )
        # A batch compares stored values and names no rows (only a single record's answer does).
        self.assertEqual([outcome.transaction for outcome in outcomes], [None] * 6)
        self.assertEqual(Transaction.objects.get(pk=stored.pk).transaction_amount, stored.transaction_amount)
        self.assertEqual(
            sorted(Transaction.objects.values_list("transaction_datetime", "transaction_amount", "pincode")),
            [
                (dt.datetime(2024, 1, 1, tzinfo=UTC), Decimal("1500.75"), "110001"),
                (dt.datetime(2024, 1, 2, tzinfo=UTC), Decimal("1500.75"), "110001"),
                (dt.datetime(2024, 1, 3, tzinfo=UTC), Decimal("1500.75"), "110001"),
            ],
        )

    def test_failure_before_commit_stores_nothing(self):
        def fail(outcomes):
            self.assertEqual([outcome.status for outcome in outcomes], ["created", "created"])
            raise RuntimeError("progress marker could not be saved")

        with self.assertRaisesMessage(RuntimeError, "progress marker could not be saved"):
            services.ingest_transactions(records=[parsed(customer_id=1), parsed(customer_id=2)], before_commit=fail)
        self.assertFalse(Transaction.objects.exists())
        self.assertFalse(Customer.objects.exists())
        self.assertFalse(CustomerPincodeTotal.objects.exists())


class RunningTotalsTests(TestCase):
    def test_pincode_totals_are_kept_per_customer_state_and_pincode(self):
        services.ingest_transactions(
            records=[
                parsed(
                    customer_id=1,
                    state="Punjab",
                    pincode="140001",
                    transaction_amount="10.10",
                    transaction_datetime="2024-01-01T00:00:00",
                ),
                parsed(
                    customer_id=1,
                    state="punjab",
                    pincode="140001",
                    transaction_amount="0.20",
                    transaction_datetime="2024-01-02T00:00:00",
                ),
                parsed(
                    customer_id=1,
                    state="Punjab",
                    pincode="140002",
                    transaction_amount="5.00",
                    transaction_datetime="2024-01-03T00:00:00",
                ),
                parsed(
                    customer_id=1,
                    state="Haryana",
                    pincode="140001",
                    transaction_amount="7.00",
                    transaction_datetime="2024-01-04T00:00:00",
                ),
                parsed(
                    customer_id=2,
                    state="Punjab",
                    pincode="140001",
                    transaction_amount="3.00",
                    transaction_datetime="2024-01-01T00:00:00",
                ),
            ]
        )
        # A later request adds to the same rows rather than creating new ones.
        services.ingest_transactions(
            records=[
                parsed(
                    customer_id=1,
                    state="PUNJAB",
                    pincode="140001",
                    transaction_amount="0.05",
                    transaction_datetime="2024-02-01T00:00:00",
                )
            ]
        )
        self.assertEqual(
            pincode_totals(),
            [
                (1, "haryana", "140001", "Haryana", Decimal("7.00"), 1),
                (1, "punjab", "140001", "Punjab", Decimal("10.35"), 3),
                (1, "punjab", "140002", "Punjab", Decimal("5.00"), 1),
                (2, "punjab", "140001", "Punjab", Decimal("3.00"), 1),
            ],
        )
        self.assertEqual(
            [row[3:] for row in customer_totals()],
            [(Decimal("22.35"), 5), (Decimal("3.00"), 1)],
        )

    def test_duplicates_and_conflicts_leave_totals_alone(self):
        services.ingest_transactions(records=[parsed(transaction_amount="10.00")])
        services.ingest_transactions(records=[parsed(transaction_amount="10.00"), parsed(transaction_amount="99.00")])
        self.assertEqual(customer_totals(), [(101, "amit", "9876543210", Decimal("10.00"), 1)])
        self.assertEqual(pincode_totals(), [(101, "delhi", "110001", "Delhi", Decimal("10.00"), 1)])

    def test_customer_details_come_from_the_latest_transaction_not_the_latest_arrival(self):
        services.ingest_transactions(
            records=[parsed(name="newer", mob_no="2222222", transaction_datetime="2024-05-01T00:00:00")]
        )
        services.ingest_transactions(
            records=[parsed(name="older", mob_no="1111111", transaction_datetime="2024-04-01T00:00:00")]
        )
        self.assertEqual(customer_totals(), [(101, "newer", "2222222", Decimal("3001.50"), 2)])


class RecomputeCustomerTotalsTests(TestCase):
    def setUp(self):
        services.ingest_transactions(
            records=[
                parsed(
                    customer_id=1,
                    name="first",
                    transaction_amount="10.00",
                    transaction_datetime="2024-01-01T00:00:00",
                    pincode="110001",
                ),
                parsed(
                    customer_id=1,
                    name="second",
                    transaction_amount="20.00",
                    transaction_datetime="2024-01-02T00:00:00",
                    pincode="110002",
                ),
                parsed(
                    customer_id=1,
                    name="third",
                    transaction_amount="30.00",
                    transaction_datetime="2024-01-03T00:00:00",
                    pincode="110002",
                ),
                parsed(
                    customer_id=2, name="other", transaction_amount="5.00", transaction_datetime="2024-01-01T00:00:00"
                ),
            ]
        )

    def test_totals_are_rebuilt_after_a_manual_correction(self):
        Transaction.objects.filter(customer_id=1, pincode="110001").update(transaction_amount=Decimal("11.11"))
        Transaction.objects.filter(customer_id=1, transaction_datetime=dt.datetime(2024, 1, 2, tzinfo=UTC)).delete()
        services.recompute_customer_totals(customer_ids=[1])
        self.assertEqual(
            customer_totals(),
            [(1, "third", "9876543210", Decimal("41.11"), 2), (2, "other", "9876543210", Decimal("5.00"), 1)],
        )
        self.assertEqual(
            pincode_totals(),
            [
                (1, "delhi", "110001", "Delhi", Decimal("11.11"), 1),
                (1, "delhi", "110002", "Delhi", Decimal("30.00"), 1),
                (2, "delhi", "110001", "Delhi", Decimal("5.00"), 1),
            ],
        )

    def test_totals_of_a_customer_left_without_transactions_are_zero(self):
        Transaction.objects.filter(customer_id=2).delete()
        services.recompute_customer_totals(customer_ids=[2, 2])
        self.assertEqual(
            Customer.objects.values_list("total_amount", "transaction_count").get(pk=2), (Decimal("0.00"), 0)
        )
        self.assertFalse(CustomerPincodeTotal.objects.filter(customer_id=2).exists())
        self.assertEqual(
            Customer.objects.values_list("total_amount", "transaction_count").get(pk=1), (Decimal("60.00"), 3)
        )

    def test_recomputing_untouched_customers_changes_nothing(self):
        before = (customer_totals(), pincode_totals())
        services.recompute_customer_totals(customer_ids=[1, 2])
        self.assertEqual((customer_totals(), pincode_totals()), before)


THREADS = 8


def run_together(work) -> list:
    """Run `work(thread_number)` in THREADS threads released at once; return their results.

    Each thread closes its own database connection at the end, or the test database could not
    be dropped afterwards.
    """
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS
    errors: list[BaseException] = []

    def thread_main(number: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[number] = work(number)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=thread_main, args=(number,)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    if any(thread.is_alive() for thread in threads):
        raise AssertionError("a racing thread did not finish")
    if errors:
        raise errors[0]
    return results


class ConcurrentIngestTests(TransactionTestCase):
    """Requests racing on the same keys, on real database transactions (no wrapping atomic)."""

    def test_same_record_posted_concurrently_is_stored_once(self):
        clear_caches()
        user = make_user("racer")
        body = record(customer_id=424242, transaction_amount="123.45")
        # The customer exists already, so the requests do not queue on creating it and only the
        # customer lock and the unique key stand between them and a second row.
        earlier = parsed(customer_id=424242, transaction_amount="1.00", transaction_datetime="2024-01-01T00:00:00")
        services.ingest_transactions(records=[earlier])

        def post(number: int) -> int:
            response = token_client(user).post("/api/ingest-data", body, format="json")
            return response.status_code

        statuses = run_together(post)
        self.assertEqual(Counter(statuses), Counter({201: 1, 200: THREADS - 1}))
        self.assertEqual(
            sorted(Transaction.objects.values_list("customer_id", "transaction_amount")),
            [(424242, Decimal("1.00")), (424242, Decimal("123.45"))],
        )
        self.assertEqual(
            Customer.objects.values_list("total_amount", "transaction_count").get(pk=424242), (Decimal("124.45"), 2)
        )
        self.assertEqual(pincode_totals(), [(424242, "delhi", "110001", "Delhi", Decimal("124.45"), 2)])

    def test_same_record_of_a_new_customer_ingested_concurrently_has_one_created_outcome(self):
        one = parsed(customer_id=77, transaction_amount="9.99")

        outcomes = run_together(lambda number: services.ingest_transactions(records=[one]))
        self.assertEqual(
            Counter(outcome.status for [outcome] in outcomes), Counter({"created": 1, "duplicate": THREADS - 1})
        )
        self.assertEqual(Transaction.objects.count(), 1)
        self.assertEqual(
            Customer.objects.values_list("total_amount", "transaction_count").get(pk=77), (Decimal("9.99"), 1)
        )

    def test_overlapping_batches_store_each_key_once(self):
        start = dt.datetime(2024, 1, 1, tzinfo=UTC)
        records = [
            parsed(
                customer_id=1 + i % 20,  # 20 customers, so batches contend for many locks
                transaction_amount=f"{1 + i}.{i % 100:02d}",
                transaction_datetime=(start + dt.timedelta(hours=i)).isoformat(),
                pincode=f"{110001 + i % 3}",
            )
            for i in range(200)
        ]
        expected_keys = {rec.key for rec in records}
        # The customers exist before the race: racing to create a customer row would queue the
        # batches on its primary key and hide whether the customer locks do their job.
        existing_customers = [
            parsed(customer_id=customer_id, transaction_amount="0.01", transaction_datetime="2023-01-01T00:00:00")
            for customer_id in range(1, 21)
        ]
        services.ingest_transactions(records=existing_customers)

        def ingest_shuffled(number: int):
            batch = list(records)
            random.Random(number).shuffle(batch)
            return services.ingest_transactions(records=batch)

        outcomes_per_thread = run_together(ingest_shuffled)
        for outcomes in outcomes_per_thread:
            self.assertEqual(len(outcomes), 200)
            self.assertEqual(Counter(o.status for o in outcomes).get("conflict", 0), 0)
        created = sum(o.status == "created" for outcomes in outcomes_per_thread for o in outcomes)
        self.assertEqual(created, len(expected_keys))
        self.assertEqual(Transaction.objects.count(), len(expected_keys) + len(existing_customers))
        self.assertEqual(
            set(Transaction.objects.values_list("customer_id", "transaction_datetime")),
            expected_keys | {rec.key for rec in existing_customers},
        )

        expected_totals: dict[int, list] = {}
        for rec in [*existing_customers, *records]:
            totals = expected_totals.setdefault(rec.customer_id, [Decimal("0"), 0])
            totals[0] += rec.transaction_amount
            totals[1] += 1
        self.assertEqual(
            {
                pk: [total, count]
                for pk, total, count in Customer.objects.values_list("pk", "total_amount", "transaction_count")
            },
            expected_totals,
        )
        expected_pincode_totals: dict[tuple[int, str], Decimal] = {}
        for rec in [*existing_customers, *records]:
            key = (rec.customer_id, rec.pincode)
            expected_pincode_totals[key] = expected_pincode_totals.get(key, Decimal("0")) + rec.transaction_amount
        self.assertEqual(
            {(customer_id, pincode): total for customer_id, _, pincode, _, total, _ in pincode_totals()},
            expected_pincode_totals,
        )
