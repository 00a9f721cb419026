"""What every writer of transactions promises, run against each writer the database at hand has.

``services.ingest`` inserts skipping stored keys and reads back which rows it stored (RETURNING,
on MariaDB, PostgreSQL and SQLite), or, where the database cannot say (MySQL 8), looks the keys
up first. Both writers run here on every database, so no path is tested in one pass only; on
MySQL, with its statements sent together in one round trip (services.rows) and one by one.
Where the database has a bulk loader (MariaDB/MySQL), the set-based writer of big batches
(services.bulk) runs the same contract, with every batch of two or more records sent to it.
Also here: writes for different customers never wait for each other, and folding the appended
deltas changes no figure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from decimal import Decimal
from unittest import mock, skipUnless

from django.db import connection, connections, transaction
from django.db.models import Count, Sum
from django.test import TestCase, TransactionTestCase
from django.test.utils import CaptureQueriesContext

from tests.support import SummaryAssertionsMixin, monthly_totals, pincode_totals, record
from transactions import selectors, services
from transactions.models import Customer, CustomerPincodeTotal, MonthlyTotalDelta, PincodeTotalDelta, Transaction
from transactions.sql import operations
from transactions.validation import parse_transaction_record


def parsed(**overrides):
    return parse_transaction_record(record(**overrides))


def ingest(*records: dict) -> list[str]:
    return [o.status for o in services.ingest_transactions(records=[parse_transaction_record(r) for r in records])]


class WriterContract(SummaryAssertionsMixin):
    """The contract; subclasses choose the writer (``returning``)."""

    returning: bool
    bulk_loader = False  # batches through services.bulk (single records never go there)

    def setUp(self):
        super().setUp()
        ops = operations()
        can_return = ops.can_return_rows_from_insert_skipping_conflicts
        if self.returning and not can_return:
            self.skipTest("this database cannot say which rows an INSERT skipping stored keys stored")
        ops.can_return_rows_from_insert_skipping_conflicts = self.returning
        self.addCleanup(setattr, ops, "can_return_rows_from_insert_skipping_conflicts", can_return)
        has_bulk_loader = ops.has_bulk_loader
        if self.bulk_loader and not has_bulk_loader:
            self.skipTest("this database has no bulk loader")
        ops.has_bulk_loader = self.bulk_loader
        self.addCleanup(setattr, ops, "has_bulk_loader", has_bulk_loader)
        if self.bulk_loader:
            self.enterContext(mock.patch.object(services.bulk, "MIN_RECORDS", 2))

    def assertTotalsAddUp(self) -> None:
        """Every running total equals the sum over the stored transactions."""
        by_customer = {
            row["customer_id"]: (row["total"], row["count"])
            for row in Transaction.objects.values("customer_id").annotate(total=Sum("transaction_amount"), count=Count("pk"))
        }
        self.assertEqual(
            {c.pk: (c.total_amount, c.transaction_count) for c in Customer.objects.filter(transaction_count__gt=0)},
            {key: (Decimal(total).quantize(Decimal("0.01")), count) for key, (total, count) in by_customer.items()},
        )
        by_pincode = {
            (row["customer_id"], row["state_key"], row["pincode"]): (Decimal(row["total"]).quantize(Decimal("0.01")), row["count"])
            for row in Transaction.objects.values("customer_id", "state_key", "pincode")
            .annotate(total=Sum("transaction_amount"), count=Count("pk"))
        }
        self.assertEqual(
            {(t.customer_id, t.state_key, t.pincode): (t.total_amount, t.transaction_count)
             for t in CustomerPincodeTotal.objects.filter(transaction_count__gt=0)},
            by_pincode,
        )
        self.assertSummariesMatchTransactions()

    def test_a_new_single_record_is_created_with_its_row(self):
        [outcome] = services.ingest_transactions(records=[parsed(customer_id=5, transaction_amount="12.34")])
        self.assertEqual(outcome.status, "created")
        stored = Transaction.objects.get()
        self.assertEqual(outcome.transaction.pk, stored.pk)
        self.assertEqual((stored.customer_id, stored.transaction_amount), (5, Decimal("12.34")))
        # The answer's row is built without reading it back: every field as stored.
        fields = [f.attname for f in Transaction._meta.concrete_fields if f.attname != "created_at"]
        self.assertEqual(
            {name: getattr(outcome.transaction, name) for name in fields},
            {name: getattr(stored, name) for name in fields},
        )
        self.assertTotalsAddUp()

    def test_a_repeat_is_a_duplicate_if_it_agrees_and_a_conflict_if_not_with_the_stored_row(self):
        ingest(record(customer_id=5, transaction_amount="12.34"))
        stored = Transaction.objects.get()
        [duplicate] = services.ingest_transactions(records=[parsed(customer_id=5, transaction_amount="12.34")])
        [conflict] = services.ingest_transactions(records=[parsed(customer_id=5, transaction_amount="99.00")])
        self.assertEqual((duplicate.status, duplicate.transaction.pk), ("duplicate", stored.pk))
        self.assertEqual((conflict.status, conflict.transaction.transaction_amount), ("conflict", Decimal("12.34")))
        self.assertEqual(Transaction.objects.count(), 1)
        self.assertTotalsAddUp()

    def test_a_batch_tells_every_record_apart_and_adds_only_what_it_stored(self):
        ingest(record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
               record(customer_id=2, transaction_amount="20.00", transaction_datetime="2024-01-01T00:00:00Z"))
        statuses = ingest(
            record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),  # stored, same
            record(customer_id=2, transaction_amount="21.00", transaction_datetime="2024-01-01T00:00:00Z"),  # stored, differs
            record(customer_id=1, transaction_amount="1.50", transaction_datetime="2024-02-01T00:00:00Z"),   # new
            record(customer_id=3, transaction_amount="3.00", transaction_datetime="2024-02-01T00:00:00Z", pincode="560001",
                   state="Karnataka"),                                                                      # new customer
            record(customer_id=3, transaction_amount="3.00", transaction_datetime="2024-02-01T00:00:00Z", pincode="560001",
                   state="KARNATAKA"),                                                                      # repeats the one before
            record(customer_id=1, transaction_amount="7.00", transaction_datetime="2024-02-01T00:00:00Z"),   # contradicts it
        )
        self.assertEqual(statuses, ["duplicate", "conflict", "created", "created", "duplicate", "conflict"])
        self.assertEqual(Transaction.objects.count(), 4)
        self.assertTotalsAddUp()
        self.assertEqual(Customer.objects.get(pk=1).total_amount, Decimal("11.50"))

    def test_a_batch_appends_its_pincode_deltas_per_spelling_in_the_order_first_stored(self):
        # Of equally common spellings the first sent names the state (StateSpelling): a batch's
        # deltas come in the order their first stored row was sent, a repeat not counting.
        ingest(record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z", state="Punjab"))
        before = PincodeTotalDelta.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        statuses = ingest(
            record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z", state="PUNJAB"),
            record(customer_id=2, transaction_amount="2.00", transaction_datetime="2024-03-09T00:00:00Z", state="punjab"),
            record(customer_id=3, transaction_amount="3.00", transaction_datetime="2024-02-01T00:00:00Z", state="PUNJAB"),
        )
        self.assertEqual(statuses, ["duplicate", "created", "created"])
        spellings: dict[str, list] = {}  # in the order first appended
        for state, count, amount in PincodeTotalDelta.objects.filter(pk__gt=before).order_by("pk").values_list(
            "state", "transaction_count", "total_amount"
        ):
            sums = spellings.setdefault(state, [0, Decimal("0")])
            sums[0] += count
            sums[1] += amount
        self.assertEqual(spellings, {"punjab": [1, Decimal("2.00")], "PUNJAB": [1, Decimal("3.00")]})
        self.assertEqual(list(spellings), ["punjab", "PUNJAB"])
        self.assertEqual(
            list(MonthlyTotalDelta.objects.values("month").annotate(count=Sum("transaction_count"), total=Sum("total_amount"))
                 .order_by("month").values_list("month", "count", "total")),
            [(dt.date(2024, 1, 1), 1, Decimal("10.00")), (dt.date(2024, 2, 1), 1, Decimal("3.00")),
             (dt.date(2024, 3, 1), 1, Decimal("2.00"))],
        )
        self.assertTotalsAddUp()

    def test_the_newest_details_win_whatever_the_arrival_order(self):
        ingest(record(customer_id=9, name="Newest", mob_no="9000000003", transaction_datetime="2024-03-01T00:00:00Z"))
        ingest(record(customer_id=9, name="Oldest", mob_no="9000000001", transaction_datetime="2024-01-01T00:00:00Z"),
               record(customer_id=9, name="Middle", mob_no="9000000002", transaction_datetime="2024-02-01T00:00:00Z"))
        customer = Customer.objects.get(pk=9)
        self.assertEqual((customer.name, customer.mob_no, customer.transaction_count), ("Newest", "9000000003", 3))
        ingest(record(customer_id=9, name="Later", mob_no="9000000004", transaction_datetime="2024-04-01T00:00:00Z"))
        self.assertEqual(Customer.objects.get(pk=9).name, "Later")

    def test_texts_reach_the_database_exactly_as_sent(self):
        names = ["100% O'Brien", 'back\\slash "quoted"', "नमस्ते 😀", "%s %(x)s"]
        ingest(*[record(customer_id=20 + n, name=name, transaction_datetime="2024-01-01T00:00:00Z") for n, name in enumerate(names)])
        self.assertEqual(list(Customer.objects.order_by("pk").values_list("name", flat=True)), names)
        self.assertEqual(list(Transaction.objects.order_by("customer_id").values_list("name", flat=True)), names)

    def test_a_batch_longer_than_one_statement_stores_every_row(self):
        count = operations().rows_per_statement(len(services.ingest.TRANSACTION_COLUMNS)) + 150
        start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
        rows = [record(customer_id=1 + n % 97, transaction_amount=f"{1 + n % 13}.05",
                       transaction_datetime=(start + dt.timedelta(minutes=n)).isoformat()) for n in range(count)]
        self.assertEqual(ingest(*rows), ["created"] * count)
        self.assertEqual(ingest(*rows[:5], rows[-1]), ["duplicate"] * 6)
        self.assertEqual(Transaction.objects.count(), count)
        self.assertTotalsAddUp()


class ReturningWriterTests(WriterContract, TestCase):
    returning = True


class LookUpFirstWriterTests(WriterContract, TestCase):
    returning = False


class StatementsSentOneByOneTests(WriterContract, TestCase):
    """The returning writer with each statement in its own round trip: what every database but
    MySQL does, and what MySQL does where CLIENT.MULTI_STATEMENTS is off (services.rows)."""

    returning = True

    def setUp(self):
        super().setUp()
        ops = operations()
        together = ops.sends_statements_together
        ops.sends_statements_together = False
        self.addCleanup(setattr, ops, "sends_statements_together", together)


class BulkLoaderWriterTests(WriterContract, TestCase):
    """The set-based writer: staged with the bulk loader, stored with INSERT ... SELECT."""

    returning = True
    bulk_loader = True

    def test_a_batch_is_staged_and_stored_set_based(self):
        with CaptureQueriesContext(connection) as queries:
            statuses = ingest(record(customer_id=1, transaction_datetime="2024-01-01T00:00:00Z"),
                              record(customer_id=2, transaction_datetime="2024-01-01T00:00:00Z"))
        self.assertEqual(statuses, ["created", "created"])
        sql = [query["sql"] for query in queries.captured_queries]
        self.assertEqual(len([s for s in sql if s.startswith("LOAD DATA LOCAL INFILE")]), 1, sql)
        # (On MariaDB behind SET STATEMENT ... FOR: the customers were upserted just before.)
        [insert] = [s for s in sql if f"INSERT INTO `{Transaction._meta.db_table}`" in s]
        self.assertIn(f"FROM `{services.bulk.STAGING_TABLE}`", insert)

    def test_a_staged_text_holding_the_files_separators_is_stored_as_sent(self):
        # Validation collapses whitespace, so tabs and line breaks cannot come from a client;
        # the writer escapes them all the same (and backslashes, which can).
        names = ["tab\there", "line\nbreak", "back\\slash\\", "cr\rhere", "\\N"]
        records = [parsed(customer_id=40 + n, transaction_datetime="2024-01-01T00:00:00Z") for n in range(len(names))]
        records = [dataclasses.replace(r, name=name) for r, name in zip(records, names)]
        self.assertEqual([o.status for o in services.ingest_transactions(records=records)], ["created"] * len(names))
        self.assertEqual(list(Transaction.objects.order_by("customer_id").values_list("name", flat=True)), names)
        self.assertEqual(list(Customer.objects.order_by("pk").values_list("name", flat=True)), names)


class FoldTests(SummaryAssertionsMixin, TestCase):
    def test_folding_moves_the_deltas_and_changes_no_figure(self):
        ingest(record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-05T00:00:00Z"),
               record(customer_id=2, transaction_amount="2.50", transaction_datetime="2024-02-05T00:00:00Z", pincode="141001",
                      state="Punjab"))
        ingest(record(customer_id=1, transaction_amount="1.00", transaction_datetime="2024-01-06T00:00:00Z"))
        before = (monthly_totals(), pincode_totals())
        self.assertGreater(MonthlyTotalDelta.objects.count(), 0)

        folded = services.fold_summary_deltas()

        self.assertEqual(folded, 6)  # 3 month and 3 pincode deltas: one per write and month, or write and pincode
        self.assertFalse(MonthlyTotalDelta.objects.exists() or PincodeTotalDelta.objects.exists())
        self.assertEqual((monthly_totals(), pincode_totals()), before)
        ingest(record(customer_id=3, transaction_amount="4.00", transaction_datetime="2024-01-07T00:00:00Z"))
        self.assertEqual(selectors.overview_totals().transactions, 4)
        self.assertSummariesMatchTransactions()


@skipUnless(connection.vendor in ("mysql", "postgresql"), "SQLite takes one writer at a time by design")
class DifferentCustomersNeverWaitTests(SummaryAssertionsMixin, TransactionTestCase):
    """No row every writer updates: an uncommitted write for A does not hold up one for B."""

    def test_an_open_ingest_for_one_customer_does_not_block_another_in_the_same_month_and_pincode(self):
        ingest(record(customer_id=1, transaction_datetime="2024-05-01T00:00:00Z"),
               record(customer_id=2, transaction_datetime="2024-05-01T00:00:00Z"))  # both customers exist
        holding, release, errors = threading.Event(), threading.Event(), []

        def hold_a_write_for_customer_a() -> None:
            try:
                with transaction.atomic():
                    ingest(record(customer_id=1, transaction_datetime="2024-05-02T00:00:00Z"),
                           record(customer_id=3, transaction_datetime="2024-05-02T00:00:00Z"))  # and a new customer
                    holding.set()
                    release.wait(30)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections["default"].close()

        holder = threading.Thread(target=hold_a_write_for_customer_a)
        holder.start()
        try:
            self.assertTrue(holding.wait(30))
            # Two seconds' patience: a lock wait would end in a lock timeout, and the test with it.
            with connection.cursor() as cursor:
                if connection.vendor == "mysql":
                    cursor.execute("SET SESSION innodb_lock_wait_timeout = 2")
                else:
                    cursor.execute("SET lock_timeout = '2s'")
            services.ingest.MAX_INGEST_ATTEMPTS, attempts = 1, services.ingest.MAX_INGEST_ATTEMPTS
            try:
                # Same month and pincode, another stored customer, and a new one next to customer 3.
                self.assertEqual(
                    ingest(record(customer_id=2, transaction_datetime="2024-05-03T00:00:00Z"),
                           record(customer_id=4, transaction_datetime="2024-05-03T00:00:00Z")),
                    ["created", "created"],
                )
                [single] = services.ingest_transactions(records=[parsed(customer_id=5, transaction_datetime="2024-05-03T00:00:00Z")])
                self.assertEqual(single.status, "created")
                self.assertEqual(len(monthly_totals()), 1)  # and the figures can be read meanwhile
            finally:
                services.ingest.MAX_INGEST_ATTEMPTS = attempts
        finally:
            release.set()
            holder.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(Transaction.objects.count(), 7)
        self.assertSummariesMatchTransactions()


class BulkLoaderRaceTests(SummaryAssertionsMixin, TransactionTestCase):
    """The set-based writer looks the stored keys up without locks: a key another writer commits
    after the look-up fails the INSERT on the unique constraint, and the batch runs again."""

    def setUp(self):
        super().setUp()
        if not operations().has_bulk_loader:
            self.skipTest("this database has no bulk loader")
        self.enterContext(mock.patch.object(services.bulk, "MIN_RECORDS", 2))

    # Customers of its own: a row the flush after a TransactionTestCase leaves delete-marked (not
    # purged yet) makes an insert of the same key elsewhere check it for a duplicate, with
    # next-key locks that DifferentCustomersNeverWaitTests would wait for.
    def test_a_key_stored_by_another_writer_after_the_look_up_makes_the_batch_run_again(self):
        ingest(record(customer_id=7001, transaction_datetime="2024-01-01T00:00:00Z"),
               record(customer_id=7002, transaction_datetime="2024-01-01T00:00:00Z"))
        real_stored_repeats, found_per_run = services.bulk._stored_repeats, []

        def another_writer() -> None:
            try:
                ingest(record(customer_id=7002, transaction_amount="5.00", transaction_datetime="2024-02-01T00:00:00Z"))
            finally:
                connections["default"].close()

        def look_up_then_lose_the_race(cursor):
            found = real_stored_repeats(cursor)
            if not found_per_run:  # another writer commits one of the batch's new keys meanwhile
                writer = threading.Thread(target=another_writer)
                writer.start()
                writer.join(30)
            found_per_run.append(len(found))
            return found

        batch = [parsed(customer_id=7001, transaction_datetime="2024-01-01T00:00:00Z"),
                 parsed(customer_id=7002, transaction_amount="5.00", transaction_datetime="2024-02-01T00:00:00Z"),
                 parsed(customer_id=7003, transaction_datetime="2024-02-01T00:00:00Z")]
        with mock.patch.object(services.bulk, "_stored_repeats", look_up_then_lose_the_race):
            # One attempt allowed: a lost race is the other writer's progress, not a failure
            # (eight clients racing shuffled batches lose many in a row).
            statuses = [o.status for o in services.ingest_transactions(records=batch, max_attempts=1)]
        self.assertEqual(found_per_run, [1, 2])  # the second run found both stored keys
        self.assertEqual(statuses, ["duplicate", "duplicate", "created"])
        self.assertEqual(Transaction.objects.count(), 4)
        self.assertSummariesMatchTransactions()
        self.assertEqual(Customer.objects.get(pk=7002).total_amount, Transaction.objects.filter(customer_id=7002).aggregate(
            total=Sum("transaction_amount"))["total"])
