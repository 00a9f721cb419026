"""The per-month and per-pincode totals (MonthlyTotal, PincodeTotal) stay exact on every write.

Each test writes through a service or endpoint and compares the stored totals with what it
expects and with a GROUP BY over the stored transactions. Operators' corrections in the admin
are in ``tests/admin/test_summary_totals.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import io
import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import TestCase, TransactionTestCase, override_settings, skipUnlessDBFeature

from tests.support import (
    ApiClientMixin,
    SummaryAssertionsMixin,
    monthly_totals,
    pincode_totals,
    record,
)
from transactions import selectors, services
from transactions.generation import generate_records
from transactions.models import CustomerPincodeTotal, MonthlyTotal, PincodeTotal, StateSpelling, Transaction
from transactions.validation import TRANSACTION_FIELDS, parse_transaction_record

IMMEDIATE_TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}


def store(*records: dict) -> list[str]:
    outcomes = services.ingest_transactions(records=[parse_transaction_record(raw) for raw in records])
    return [outcome.status for outcome in outcomes]


class IngestKeepsSummariesTests(SummaryAssertionsMixin, ApiClientMixin, TestCase):
    def test_single_ingest_adds_to_its_month_and_pincode(self):
        response = self.ingest(record(transaction_amount="1500.75", transaction_datetime="2024-09-24T15:30:00Z"))
        self.assertEqual(response.status_code, 201)
        self.ingest(record(customer_id=102, transaction_amount="0.25", transaction_datetime="2024-09-01T00:00:00Z"))

        self.assertEqual(monthly_totals(), [("2024-09", 2, Decimal("1501.00"))])
        self.assertEqual(pincode_totals(), [("delhi", "110001", 2, Decimal("1501.00"))])
        self.assertSummariesMatchTransactions()

    def test_repeats_add_nothing_duplicates_and_conflicts_alike(self):
        first = record(transaction_amount="10.00", transaction_datetime="2024-01-31T23:59:59Z")
        self.assertEqual(self.ingest(first).status_code, 201)
        self.assertEqual(self.ingest(first).status_code, 200)  # duplicate
        self.assertEqual(self.ingest(dict(first, transaction_amount="99.00")).status_code, 409)  # conflict

        self.assertEqual(monthly_totals(), [("2024-01", 1, Decimal("10.00"))])
        self.assertEqual(pincode_totals(), [("delhi", "110001", 1, Decimal("10.00"))])

    def test_batch_counts_the_created_rows_once_each(self):
        stored = record(customer_id=1, transaction_amount="5.00", transaction_datetime="2024-03-10T00:00:00Z")
        store(stored)
        batch = [
            record(customer_id=1, transaction_amount="1.10", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=2, transaction_amount="2.20", transaction_datetime="2024-01-31T23:59:59.999999Z",
                   pincode="141001", state="Punjab"),
            record(customer_id=3, transaction_amount="3.30", transaction_datetime="2024-02-01T00:00:00Z",
                   pincode="141001", state="PUNJAB"),
            stored,  # duplicate of a stored row
            dict(stored, transaction_amount="6.00"),  # conflict with a stored row
            record(customer_id=2, transaction_amount="2.20", transaction_datetime="2024-01-31T23:59:59.999999Z",
                   pincode="141001", state="Punjab"),  # repeat inside the batch
        ]

        self.assertEqual(store(*batch), ["created", "created", "created", "duplicate", "conflict", "duplicate"])

        self.assertEqual(
            monthly_totals(),
            [("2024-01", 2, Decimal("3.30")), ("2024-02", 1, Decimal("3.30")), ("2024-03", 1, Decimal("5.00"))],
        )
        self.assertEqual(
            pincode_totals(),
            [("delhi", "110001", 2, Decimal("6.10")), ("punjab", "141001", 2, Decimal("5.50"))],
        )
        # One row per state and pincode, in the spelling the first transaction brought.
        services.fold_summary_deltas()
        self.assertEqual(PincodeTotal.objects.get(state_key="punjab").state, "Punjab")
        self.assertSummariesMatchTransactions()

    def test_states_differing_by_an_accent_or_an_emoji_keep_totals_of_their_own(self):
        # The same customer and pincode in each: a collation that folds accents or weighs all
        # emoji alike would merge their rows on the unique (customer, state_key, pincode).
        states = ["Punjab", "Pünjab", "PÜNJAB", "🍎", "🍏", "😀"]
        store(*[
            record(customer_id=1, transaction_amount=f"{n}.00", transaction_datetime=f"2024-01-0{n}T00:00:00Z",
                   pincode="141001", state=state)
            for n, state in enumerate(states, start=1)
        ])
        self.ingest(record(customer_id=1, transaction_amount="0.50", transaction_datetime="2024-01-09T00:00:00Z",
                           pincode="141001", state="🍏"))

        expected = [("punjab", "141001", 1, Decimal("1.00")), ("pünjab", "141001", 2, Decimal("5.00")),
                    ("🍎", "141001", 1, Decimal("4.00")), ("🍏", "141001", 2, Decimal("5.50")),
                    ("😀", "141001", 1, Decimal("6.00"))]
        self.assertEqual(sorted(pincode_totals()), sorted(expected))
        self.assertEqual(
            sorted(CustomerPincodeTotal.objects.values_list("state_key", "state", "total_amount", "transaction_count")),
            sorted([("punjab", "Punjab", Decimal("1.00"), 1), ("pünjab", "Pünjab", Decimal("5.00"), 2),
                    ("🍎", "🍎", Decimal("4.00"), 1), ("🍏", "🍏", Decimal("5.50"), 2), ("😀", "😀", Decimal("6.00"), 1)]),
        )
        self.assertEqual(sorted(row.state for row in selectors.states_with_counts()), sorted(["Punjab", "Pünjab", "🍎", "🍏", "😀"]))
        self.assertSummariesMatchTransactions()

    def test_the_month_is_the_utc_month_whatever_the_offset_sent(self):
        # 02:00 on 1 February in India is 20:30 on 31 January in UTC.
        store(record(transaction_amount="7.00", transaction_datetime="2024-02-01T02:00:00+05:30"))
        self.assertEqual(monthly_totals(), [("2024-01", 1, Decimal("7.00"))])
        services.fold_summary_deltas()
        self.assertEqual(MonthlyTotal.objects.get().month, dt.date(2024, 1, 1))

    def test_each_spelling_of_a_state_is_counted_even_within_one_batch(self):
        # A batch big enough for the set-based writer where the database has one, each pincode's
        # records in three spellings: one delta row a spelling, folded into StateSpelling.
        spellings = ["KARNATAKA", "Karnataka", "karnataka", "Karnataka"]
        records = [
            record(customer_id=1 + i % 40, transaction_datetime=f"2024-03-01T00:{i // 60:02d}:{i % 60:02d}Z",
                   pincode=str(560001 + i % 3), state=spellings[i % 4], transaction_amount="1.00")
            for i in range(240)
        ]
        store(*records)
        self.assertEqual(selectors.state_names(), {"karnataka": "Karnataka"})
        self.assertSummariesMatchTransactions()
        services.fold_summary_deltas()
        self.assertEqual(
            list(StateSpelling.objects.order_by("state").values_list("state", "transaction_count")),
            [("KARNATAKA", 60), ("Karnataka", 120), ("karnataka", 60)],
        )
        self.assertEqual(selectors.state_names(), {"karnataka": "Karnataka"})
        self.assertSummariesMatchTransactions()

    def test_many_generated_batches_match_a_group_by(self):
        records = list(generate_records(rows=3_000, customers=300, seed=5))
        for start in range(0, len(records), 700):
            store(*records[start : start + 700])
        self.assertGreater(len(monthly_totals()), 30)
        self.assertSummariesMatchTransactions()


@override_settings(TASKS=IMMEDIATE_TASKS)
class FileImportKeepsSummariesTests(SummaryAssertionsMixin, ApiClientMixin, TestCase):
    def test_an_imported_file_is_counted_once_per_created_row(self):
        self.enterContext(override_settings(CDP_IMPORT_DIR=Path(self.enterContext(tempfile.TemporaryDirectory()))))
        records = list(generate_records(rows=1_200, customers=150, seed=11))
        records.append(record(customer_id=42, transaction_amount="-5"))  # rejected
        content = io.StringIO()
        writer = csv.DictWriter(content, fieldnames=TRANSACTION_FIELDS)
        writer.writeheader()
        writer.writerows(records)
        with self.captureOnCommitCallbacks(execute=True), self.settings(CDP_IMPORT_CHUNK_ROWS=250):
            response = self.api.post(
                "/api/imports/",
                {"file": SimpleUploadedFile("records.csv", content.getvalue().encode())},
                format="multipart",
            )
        self.assertEqual(response.status_code, 202, response.content)
        job = self.api.get(f"/api/imports/{response.json()['id']}/").json()
        self.assertEqual((job["status"], job["rejected"]), ("done", 1))
        self.assertEqual(job["created"], Transaction.objects.count())

        self.assertEqual(sum(count for _, count, _ in monthly_totals()), job["created"])
        self.assertSummariesMatchTransactions()


class RecomputeSummariesTests(SummaryAssertionsMixin, TestCase):
    def setUp(self):
        store(
            record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-05T00:00:00Z"),
            record(customer_id=1, transaction_amount="20.00", transaction_datetime="2024-02-05T00:00:00Z",
                   pincode="141001", state="Punjab"),
            record(customer_id=2, transaction_amount="30.00", transaction_datetime="2024-02-06T00:00:00Z"),
        )
        # Into MonthlyTotal and PincodeTotal, which these tests damage as a data fix might.
        services.fold_summary_deltas()

    def test_recompute_repairs_wrong_missing_and_stray_rows(self):
        MonthlyTotal.objects.filter(month=dt.date(2024, 1, 1)).update(total_amount=Decimal("999.99"))
        MonthlyTotal.objects.filter(month=dt.date(2024, 2, 1)).delete()
        MonthlyTotal.objects.create(month=dt.date(2020, 5, 1), transaction_count=3, total_amount=Decimal("1.00"))
        PincodeTotal.objects.filter(state_key="punjab").delete()
        PincodeTotal.objects.filter(state_key="delhi").update(transaction_count=7)

        services.recompute_summary_totals()

        self.assertEqual(
            monthly_totals(), [("2024-01", 1, Decimal("10.00")), ("2024-02", 2, Decimal("50.00"))]
        )
        self.assertEqual(
            pincode_totals(), [("delhi", "110001", 2, Decimal("40.00")), ("punjab", "141001", 1, Decimal("20.00"))]
        )
        # The recreated pincode takes its state's spelling from its transactions.
        services.fold_summary_deltas()
        self.assertEqual(PincodeTotal.objects.get(state_key="punjab").state, "Punjab")
        self.assertEqual(
            MonthlyTotal.objects.values_list("transaction_count", "total_amount").get(month=dt.date(2020, 5, 1)),
            (0, Decimal("0.00")),
        )

    def test_recompute_repairs_the_spellings_counts(self):
        StateSpelling.objects.filter(state_key="punjab").delete()
        StateSpelling.objects.filter(state_key="delhi").update(transaction_count=9)
        StateSpelling.objects.create(state_key="delhi", state="DELHI", transaction_count=4)
        store(record(customer_id=3, state="DELHI", transaction_datetime="2024-03-01T00:00:00Z"))  # left unfolded

        services.recompute_summary_totals()

        self.assertSummariesMatchTransactions()
        self.assertEqual(selectors.state_names(), {"delhi": "Delhi", "punjab": "Punjab"})
        services.fold_summary_deltas()
        self.assertEqual(
            list(StateSpelling.objects.order_by("state_key", "state").values_list("state", "transaction_count")),
            [("DELHI", 1), ("Delhi", 2), ("Punjab", 1)],
        )

    def test_recomputing_exact_totals_writes_nothing(self):
        with self.assertNumQueries(3):
            services.recompute_summary_totals()  # three reads, and nothing to append or add
        self.assertSummariesMatchTransactions()

    def test_recompute_of_customers_after_a_change_outside_the_services_fixes_the_summaries(self):
        # A data fix straight in the database: an amount changed, a row moved, a row deleted.
        Transaction.objects.filter(customer_id=1, transaction_datetime="2024-01-05T00:00:00Z").update(
            transaction_amount=Decimal("11.00"), transaction_datetime=dt.datetime(2023, 12, 31, tzinfo=dt.timezone.utc)
        )
        Transaction.objects.filter(customer_id=2).delete()

        services.recompute_customer_totals(customer_ids=[1, 2])

        self.assertEqual(
            monthly_totals(), [("2023-12", 1, Decimal("11.00")), ("2024-02", 1, Decimal("20.00"))]
        )
        self.assertEqual(
            pincode_totals(), [("delhi", "110001", 1, Decimal("11.00")), ("punjab", "141001", 1, Decimal("20.00"))]
        )
        self.assertSummariesMatchTransactions()

    def test_the_migration_fills_the_tables_from_the_transactions(self):
        migration = importlib.import_module("transactions.migrations.0006_summary_totals")
        MonthlyTotal.objects.all().delete()
        PincodeTotal.objects.all().delete()

        migration.fill_summary_totals(apps, SimpleNamespace(connection=connection))

        self.assertEqual(
            monthly_totals(), [("2024-01", 1, Decimal("10.00")), ("2024-02", 2, Decimal("50.00"))]
        )
        self.assertEqual(
            list(PincodeTotal.objects.order_by("state_key").values_list("state_key", "state", "pincode")),
            [("delhi", "Delhi", "110001"), ("punjab", "Punjab", "141001")],
        )
        self.assertSummariesMatchTransactions()


    def test_the_spellings_migration_counts_the_transactions_less_the_unfolded_deltas(self):
        migration = importlib.import_module("transactions.migrations.0011_state_spellings")
        store(record(customer_id=3, state="DELHI", transaction_datetime="2024-03-01T00:00:00Z"))  # left unfolded
        StateSpelling.objects.all().delete()

        migration.count_state_spellings(apps, SimpleNamespace(connection=connection))

        self.assertEqual(
            list(StateSpelling.objects.order_by("state_key", "state").values_list("state", "transaction_count")),
            [("Delhi", 2), ("Punjab", 1)],
        )
        self.assertSummariesMatchTransactions()
        self.assertEqual(selectors.state_names(), {"delhi": "Delhi", "punjab": "Punjab"})


class StateKeysMigrationTests(SummaryAssertionsMixin, TestCase):
    """transactions/migrations/0007: whole keys, and the totals that one key held for two states split."""

    def test_cut_keys_get_their_whole_state_and_the_totals_they_merged_are_split(self):
        # Both fold to 61 characters whose first 50 are "s" * 50, the key of a 50-letter state.
        long_a, long_b, fifty = "ß" * 30 + "a", "ß" * 30 + "b", "s" * 50
        store(
            record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z",
                   pincode="141001", state=long_a),
            record(customer_id=1, transaction_amount="20.00", transaction_datetime="2024-01-02T00:00:00Z",
                   pincode="141001", state=long_b),
            record(customer_id=2, transaction_amount="5.00", transaction_datetime="2024-01-03T00:00:00Z",
                   pincode="141001", state=fifty),
            record(customer_id=3, transaction_amount="7.00", transaction_datetime="2024-01-04T00:00:00Z"),
        )
        Transaction.objects.get(state=long_b).save()  # a history row, as an operator's correction leaves
        # What the code before the migration stored: keys cut at 50, one merged total a pincode.
        Transaction.objects.filter(state__in=[long_a, long_b]).update(state_key=fifty)
        Transaction.history.update(state_key=fifty)
        self.merge_totals_of_pincode("141001", state_key=fifty, state=long_a)

        self.migrate()

        key_a, key_b = "ss" * 30 + "a", "ss" * 30 + "b"
        self.assertEqual(
            sorted(Transaction.objects.values_list("customer_id", "state_key")),
            [(1, key_a), (1, key_b), (2, fifty), (3, "delhi")],
        )
        self.assertEqual(Transaction.history.get().state_key, key_b)
        self.assertEqual(
            self.customer_pincode_totals(),
            [(1, key_a, long_a, "141001", Decimal("10.00"), 1), (1, key_b, long_b, "141001", Decimal("20.00"), 1),
             (2, fifty, fifty, "141001", Decimal("5.00"), 1), (3, "delhi", "Delhi", "110001", Decimal("7.00"), 1)],
        )
        self.assertEqual(
            sorted(pincode_totals()),
            [("delhi", "110001", 1, Decimal("7.00")), (fifty, "141001", 1, Decimal("5.00")),
             (key_a, "141001", 1, Decimal("10.00")), (key_b, "141001", 1, Decimal("20.00"))],
        )
        self.assertSummariesMatchTransactions()
        self.assertEqual(
            [(row.customer_id, row.total_transaction_amount)
             for row in selectors.top_customers_by_pincode(state="ẞ" * 30 + "B")["141001"]],
            [(1, Decimal("20.00"))],
        )

    def test_totals_a_collation_merged_across_accents_or_emoji_are_split(self):
        store(*[
            record(customer_id=1, transaction_amount=f"{n}.00", transaction_datetime=f"2024-01-0{n}T00:00:00Z",
                   pincode="141001", state=state)
            for n, state in enumerate(["Punjab", "Pünjab", "🍎", "🍏"], start=1)
        ])
        # What MariaDB's utf8mb4_unicode_ci made of them: one row for all, under the first spelling.
        self.merge_totals_of_pincode("141001", state_key="punjab", state="Punjab")

        self.migrate()

        self.assertEqual(
            self.customer_pincode_totals(),
            sorted([(1, "punjab", "Punjab", "141001", Decimal("1.00"), 1), (1, "pünjab", "Pünjab", "141001", Decimal("2.00"), 1),
                    (1, "🍎", "🍎", "141001", Decimal("3.00"), 1), (1, "🍏", "🍏", "141001", Decimal("4.00"), 1)]),
        )
        self.assertSummariesMatchTransactions()

    def merge_totals_of_pincode(self, pincode: str, *, state_key: str, state: str) -> None:
        """Replace the pincode's totals with one row a customer and one for the pincode, all under one key."""
        rows = Transaction.objects.filter(pincode=pincode)
        services.fold_summary_deltas()
        CustomerPincodeTotal.objects.filter(pincode=pincode).delete()
        PincodeTotal.objects.filter(pincode=pincode).delete()
        for customer_id in sorted(set(rows.values_list("customer_id", flat=True))):
            own = [row.transaction_amount for row in rows.filter(customer_id=customer_id)]
            CustomerPincodeTotal.objects.create(customer_id=customer_id, state_key=state_key, state=state, pincode=pincode,
                                                total_amount=sum(own), transaction_count=len(own))
        amounts = [row.transaction_amount for row in rows]
        PincodeTotal.objects.create(state_key=state_key, state=state, pincode=pincode,
                                    total_amount=sum(amounts), transaction_count=len(amounts))

    def migrate(self) -> None:
        migration = importlib.import_module("transactions.migrations.0007_exact_state_keys")
        migration.repair_state_keys(apps, SimpleNamespace(connection=connection))

    def customer_pincode_totals(self) -> list[tuple]:
        return sorted(CustomerPincodeTotal.objects.values_list(
            "customer_id", "state_key", "state", "pincode", "total_amount", "transaction_count"))


@skipUnlessDBFeature("has_select_for_update")  # not SQLite: it runs one writer at a time
class RecomputeDuringIngestTests(SummaryAssertionsMixin, TransactionTestCase):
    """Rebuilding the totals while batches are ingested loses none of the batches' rows."""

    def test_recompute_running_beside_ingest_keeps_every_row(self):
        writers, batches, batch_size = 3, 12, 150
        failures: list[BaseException] = []
        writing = threading.Event()
        writing.set()
        recomputes = 0

        def write(writer: int) -> None:
            try:
                for batch in range(batches):
                    # Each batch reaches new months and pincodes, so rows are created meanwhile too.
                    first = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=31 * (writer * batches + batch))
                    store(*[
                        record(
                            customer_id=1 + writer * 100_000 + batch * batch_size + n,
                            transaction_amount=f"{n + 1}.{writer}{batch % 10}",
                            transaction_datetime=(first + dt.timedelta(hours=n * 5)).isoformat(),
                            pincode=str(110001 + (writer * batches + batch) % 40),
                            state=("Delhi", "Punjab", "Kerala")[n % 3],
                        )
                        for n in range(batch_size)
                    ])
            except BaseException as exc:
                failures.append(exc)
            finally:
                connection.close()

        def recompute() -> None:
            nonlocal recomputes
            try:
                while writing.is_set():
                    services.recompute_summary_totals()
                    recomputes += 1
            except BaseException as exc:
                failures.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
        rebuilder = threading.Thread(target=recompute)
        rebuilder.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writing.clear()
        rebuilder.join()

        self.assertEqual(failures, [])
        self.assertGreater(recomputes, 3)
        self.assertEqual(Transaction.objects.count(), writers * batches * batch_size)
        self.assertSummariesMatchTransactions()


class KeyedPincodeTotalsMigrationTests(TransactionTestCase):
    """transactions/migrations/0013: the per-customer-and-pincode totals move to a table keyed by
    (customer, state, pincode), and back again when the migration is reversed."""

    BEFORE = ("transactions", "0012_import_chunk_in_progress")

    def totals_of(self, model) -> list[tuple]:
        return sorted(model.objects.values_list(
            "customer_id", "state_key", "pincode", "state", "total_amount", "transaction_count"))

    def test_every_total_moves_to_the_keyed_table_and_back(self):
        store(
            record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=1, transaction_amount="2.50", transaction_datetime="2024-01-02T00:00:00Z"),
            record(customer_id=1, transaction_amount="4.00", transaction_datetime="2024-01-03T00:00:00Z",
                   pincode="141001", state="Punjab"),
            record(customer_id=2, transaction_amount="7.00", transaction_datetime="2024-01-04T00:00:00Z"),
        )
        totals = self.totals_of(CustomerPincodeTotal)
        self.assertEqual(len(totals), 3)

        executor = MigrationExecutor(connection)
        latest = executor.loader.graph.leaf_nodes("transactions")
        executor.migrate([self.BEFORE])
        by_id = executor.loader.project_state(self.BEFORE).apps.get_model("transactions", "CustomerPincodeTotal")
        self.assertEqual(self.totals_of(by_id), totals)
        self.assertEqual(len(set(by_id.objects.values_list("id", flat=True))), 3)

        executor = MigrationExecutor(connection)
        executor.migrate(latest)
        self.assertEqual(self.totals_of(CustomerPincodeTotal), totals)
        with self.assertRaises(IntegrityError), transaction.atomic():  # the key is the primary key
            CustomerPincodeTotal.objects.create(customer_id=2, state_key="delhi", pincode="110001", state="Delhi")
        self.assertEqual(self.totals_of(CustomerPincodeTotal), totals)
