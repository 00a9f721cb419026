"""Segments: services.create_segment / record_segment_export and transactions.segment_selectors.

A segment's count and members are the range report's for the same query; these tests compare
them for each kind of query (all time, a window, a state, a pincode, a relative period).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.test import TestCase

from tests.support import clear_caches, make_user, record, store
from transactions import segment_selectors, selectors, services
from transactions.models import Segment, SegmentExport

UTC = dt.timezone.utc
NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def customers_over_half_a_year() -> None:
    """Twelve customers in two states and three pincodes, spending from January to June 2024."""
    records = []
    for customer_id in range(1, 13):
        state, pincode = (("Punjab", "141001"), ("punjab", "160001"), ("Delhi", "110001"))[customer_id % 3]
        for month in range(1, customer_id % 6 + 2):
            records.append(record(
                customer_id=customer_id, name=f"Customer {customer_id:02d}",
                transaction_amount=f"{customer_id * 100 + month}.{customer_id:02d}",
                transaction_datetime=f"2024-{month:02d}-{customer_id + 10:02d}T08:00:00Z",
                state=state, pincode=pincode,
            ))
    store(*records)


def report_rows(report: selectors.RangeReport) -> list[tuple[int, str, Decimal]]:
    return [(row["customer_id"], row["name"], row["total_transaction_amount"]) for row in report.rows[:]]


class SegmentEqualsTheRangeReportTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.owner = make_user("owner")
        customers_over_half_a_year()

    def setUp(self):
        clear_caches()

    QUERIES = {
        "all time": {"min_amount": Decimal("0"), "max_amount": Decimal("100000")},
        "a band": {"min_amount": Decimal("500"), "max_amount": Decimal("2000.50")},
        "a window": {"min_amount": Decimal("0"), "max_amount": Decimal("100000"),
                     "start": dt.datetime(2024, 2, 1, tzinfo=UTC), "time_period": dt.datetime(2024, 4, 30, 23, 59, tzinfo=UTC)},
        "from a date on": {"min_amount": Decimal("300"), "max_amount": Decimal("100000"),
                           "start": dt.datetime(2024, 3, 1, tzinfo=UTC)},
        "a state, any spelling": {"min_amount": Decimal("0"), "max_amount": Decimal("100000"), "state": "PUNJAB"},
        "a pincode in a window": {"min_amount": Decimal("0"), "max_amount": Decimal("100000"), "pincode": "110001",
                                  "time_period": dt.datetime(2024, 3, 31, tzinfo=UTC)},
        "a relative period": {"min_amount": Decimal("0"), "max_amount": Decimal("100000"), "period": "last-90-days"},
        "nobody": {"min_amount": Decimal("999999"), "max_amount": Decimal("9999999")},
    }

    def test_count_members_and_order_equal_the_range_report_for_the_same_query(self):
        for label, query in self.QUERIES.items():
            with self.subTest(label):
                segment = services.create_segment(owner=self.owner, name=label, **query)
                for order in selectors.RANGE_REPORT_ORDERS:
                    expected = selectors.range_report(
                        **segment_selectors.range_report_arguments(**query, now=NOW), order=order
                    )
                    found = segment_selectors.segment_report(segment, order=order, now=NOW)
                    self.assertEqual(found.summary, expected.summary)
                    self.assertEqual(report_rows(found), report_rows(expected))
                # And the range report is the API's answer: customers_in_total_range, in its order.
                arguments = segment_selectors.range_report_arguments(**query, now=NOW)
                self.assertEqual(
                    report_rows(segment_selectors.segment_report(segment, now=NOW)),
                    [(row["customer_id"], row["name"], row["total_transaction_amount"])
                     for row in selectors.customers_in_total_range(**arguments)],
                )
        # Not vacuous: the queries tell customers apart.
        counts = {segment.name: segment_selectors.segment_report(segment, now=NOW).summary.customers
                  for segment in Segment.objects.all()}
        self.assertEqual(
            counts,
            {
                "all time": 12, "a band": 5, "a window": 10, "from a date on": 7, "a state, any spelling": 8,
                "a pincode in a window": 4, "a relative period": 7, "nobody": 0,
            },
        )

    def test_a_relative_period_moves_with_the_calendar(self):
        segment = services.create_segment(
            owner=self.owner, name="last 30 days", min_amount=Decimal("0"), max_amount=Decimal("100000"), period="last-30-days"
        )
        # The last 30 days to 15 June are 17 May to 15 June; to 15 March, 15 February to 15 March.
        in_june = segment_selectors.segment_report(segment, now=NOW)
        in_march = segment_selectors.segment_report(segment, now=dt.datetime(2024, 3, 15, tzinfo=UTC))
        june_members = {row["customer_id"] for row in in_june.rows[:]}
        march_members = {row["customer_id"] for row in in_march.rows[:]}
        # Customers 5 and 11 spent in June; 10 on 20 May; 4 on 14 May, too early.
        self.assertEqual(june_members, {5, 10, 11})
        self.assertNotEqual(june_members, march_members)
        self.assertTrue(march_members)

    def test_new_transactions_change_the_members_at_once(self):
        segment = services.create_segment(owner=self.owner, name="big", min_amount=Decimal("5000"), max_amount=Decimal("100000"))
        before = segment_selectors.segment_report(segment, now=NOW).summary.customers
        store(record(customer_id=99, name="New", transaction_amount="6000.00", transaction_datetime="2024-06-01T00:00:00Z"))
        after = segment_selectors.segment_report(segment, now=NOW)
        self.assertEqual(after.summary.customers, before + 1)
        self.assertIn(99, [row["customer_id"] for row in after.rows[:]])

    def test_segments_with_counts_lists_every_segment_by_name(self):
        services.create_segment(owner=self.owner, name="b: Delhi", min_amount=Decimal("0"), max_amount=Decimal("100000"), state="delhi")
        services.create_segment(owner=None, name="a: everyone", min_amount=Decimal("0"), max_amount=Decimal("100000"))
        self.assertEqual(
            [(row.segment.name, row.customers) for row in segment_selectors.segments_with_counts(now=NOW)],
            [("a: everyone", 12), ("b: Delhi", 4)],
        )


class SegmentStorageTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.owner = make_user("owner")

    def test_the_saved_query_is_given_back_in_the_range_reports_words(self):
        segment = services.create_segment(
            owner=self.owner, name="Punjab, spring", min_amount=Decimal("10.50"), max_amount=Decimal("99"),
            start=dt.datetime(2024, 3, 1, tzinfo=UTC), time_period=dt.datetime(2024, 5, 31, 23, 59, 59, 999999, tzinfo=UTC),
            state="Punjab", pincode="141001",
        )
        segment.refresh_from_db()
        self.assertEqual(
            segment_selectors.segment_query(segment),
            {
                "min_amount": Decimal("10.50"), "max_amount": Decimal("99.00"),
                "start": dt.datetime(2024, 3, 1, tzinfo=UTC),
                "time_period": dt.datetime(2024, 5, 31, 23, 59, 59, 999999, tzinfo=UTC),
                "state": "Punjab", "pincode": "141001",
            },
        )

    def test_the_database_refuses_bounds_out_of_order_and_a_period_with_dates(self):
        with self.assertRaises(IntegrityError), transaction.atomic():
            services.create_segment(owner=self.owner, name="x", min_amount=Decimal("5"), max_amount=Decimal("1"))
        with self.assertRaises(IntegrityError), transaction.atomic():
            services.create_segment(
                owner=self.owner, name="x", min_amount=Decimal("0"), max_amount=Decimal("1"), period="last-7-days",
                start=dt.datetime(2024, 1, 1, tzinfo=UTC),
            )
        self.assertEqual(Segment.objects.count(), 0)

    def test_member_ids_pack_compactly_and_unpack_to_the_same_ids(self):
        ids = list(range(1, 100_001)) + [2**63 - 1, 10**12]
        packed = segment_selectors.pack_member_ids(reversed(ids))
        self.assertEqual(segment_selectors.unpack_member_ids(packed), sorted(ids))
        self.assertLess(len(packed), 20_000)  # 100,002 ids in under 0.2 bytes each
        self.assertEqual(segment_selectors.unpack_member_ids(segment_selectors.pack_member_ids([])), [])

    def test_an_export_keeps_its_members_and_who_exported(self):
        segment = services.create_segment(owner=self.owner, name="s", min_amount=Decimal("0"), max_amount=Decimal("1"))
        export = services.record_segment_export(segment=segment, exported_by=self.owner, member_ids=[7, 3, 5])
        stored = SegmentExport.objects.get(pk=export.pk)
        self.assertEqual(
            (stored.member_count, segment_selectors.unpack_member_ids(stored.member_ids), stored.exported_by),
            (3, [3, 5, 7], self.owner),
        )


class MembershipChangesTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.owner = make_user("owner")

    def setUp(self):
        clear_caches()

    def test_entered_and_left_are_counted_from_the_last_export(self):
        store(
            record(customer_id=1, name="One", transaction_amount="150.00", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=2, name="Two", transaction_amount="120.00", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=3, name="Three", transaction_amount="50.00", transaction_datetime="2024-01-01T00:00:00Z"),
        )
        segment = services.create_segment(owner=self.owner, name="100 to 200", min_amount=Decimal("100"), max_amount=Decimal("200"))
        report = segment_selectors.segment_report(segment)
        never = segment_selectors.membership_changes(segment, report)
        self.assertEqual((never.since, never.entered, never.left), (None, [], []))

        services.record_segment_export(segment=segment, exported_by=self.owner, member_ids=segment_selectors.member_ids_of(report))
        # Customer 1 spends past 200 (leaves), 3 reaches 100 (enters), 4 arrives inside (enters).
        store(
            record(customer_id=1, name="One", transaction_amount="100.00", transaction_datetime="2024-02-01T00:00:00Z"),
            record(customer_id=3, name="Three", transaction_amount="60.00", transaction_datetime="2024-02-01T00:00:00Z"),
            record(customer_id=4, name="Four", transaction_amount="190.00", transaction_datetime="2024-02-01T00:00:00Z"),
        )
        changes = segment_selectors.membership_changes(segment, segment_selectors.segment_report(segment))
        self.assertEqual((changes.entered, changes.left), ([4, 3], [1]))  # entered: biggest total first
        self.assertEqual(
            segment_selectors.customers_named(changes.entered, limit=1), [{"customer_id": 4, "name": "Four"}]
        )
        # A second export moves the baseline.
        services.record_segment_export(
            segment=segment, exported_by=self.owner, member_ids=segment_selectors.member_ids_of(segment_selectors.segment_report(segment))
        )
        again = segment_selectors.membership_changes(segment, segment_selectors.segment_report(segment))
        self.assertEqual((again.entered, again.left, again.since.member_count), ([], [], 3))
