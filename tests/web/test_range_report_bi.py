"""The range report's BI additions: sorting by column, state and pincode filters, periods,
drill-down links from the histogram, and export names carrying the query."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.test import TestCase

from tests.support import DashboardTestMixin, record, store
from transactions import selectors

URL = "/reports/range/"


def three_customers() -> None:
    store(
        record(customer_id=1, name="Zoya", transaction_amount="300.00", pincode="110001", state="Delhi",
               transaction_datetime="2024-01-05T00:00:00Z"),
        record(customer_id=2, name="amit", transaction_amount="100.00", pincode="141001", state="Punjab",
               transaction_datetime="2024-02-05T00:00:00Z"),
        record(customer_id=2, name="amit", transaction_amount="50.00", pincode="110001", state="Delhi",
               transaction_datetime="2024-03-05T00:00:00Z"),
        record(customer_id=3, name="Bela", transaction_amount="150.00", pincode="141002", state="punjab",
               transaction_datetime="2024-03-06T00:00:00Z"),
    )


class RangeReportSortingAndFilterTests(DashboardTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        three_customers()

    def ids(self, **query) -> list[int]:
        response = self.client.get(URL, {"min_amount": "0", "max_amount": "100000", **query})
        self.assertEqual(response.status_code, 200)
        return [row["customer_id"] for row in response.context["page"].object_list]

    def test_each_column_sorts_both_ways_ties_by_customer_id(self):
        self.assertEqual(self.ids(), [1, 2, 3])  # total descending, then customer_id
        self.assertEqual(self.ids(sort="total"), [2, 3, 1])
        self.assertEqual(self.ids(sort="name"), [2, 3, 1])  # amit, Bela, Zoya: case-insensitive
        self.assertEqual(self.ids(sort="-name"), [1, 3, 2])
        self.assertEqual(self.ids(sort="-customer_id"), [3, 2, 1])
        self.assertEqual(self.ids(sort="nonsense"), [1, 2, 3])

    def test_headings_link_to_the_other_order_and_say_which_is_current(self):
        response = self.client.get(URL, {"min_amount": "0", "max_amount": "100000", "sort": "name", "page": "1"})
        columns = {column["label"]: column for column in response.context["columns"]}
        self.assertEqual(columns["Customer"]["aria_sort"], "ascending")
        self.assertEqual(columns["Customer"]["query"], "min_amount=0&max_amount=100000&sort=-name")
        self.assertEqual(columns["Total"]["query"], "min_amount=0&max_amount=100000&sort=-total")
        self.assertContains(response, 'aria-sort="ascending"')

    def test_state_and_pincode_narrow_the_transactions_that_count(self):
        self.assertEqual(self.ids(state="PUNJAB"), [3, 2])  # both spellings, 150 and 100
        self.assertEqual(self.ids(state="Delhi"), [1, 2])
        self.assertEqual(self.ids(pincode="110001"), [1, 2])
        response = self.client.get(URL, {"min_amount": "60", "max_amount": "100000", "state": "Delhi"})
        self.assertEqual([row["total_transaction_amount"] for row in response.context["page"].object_list], [Decimal("300.00")])
        # A window too: the windowed sums are narrowed the same way.
        self.assertEqual(self.ids(state="Delhi", start="2024-02-01"), [2])

    def test_the_filtered_report_equals_the_selector_for_the_same_query(self):
        expected = list(selectors.customers_in_total_range(
            min_amount=Decimal("0"), max_amount=Decimal("100000"), state="punjab", end=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
        ))
        self.assertEqual([row["customer_id"] for row in expected], self.ids(state="Punjab"))

    def test_a_bad_pincode_is_refused_beside_its_field(self):
        response = self.client.get(URL, {"min_amount": "0", "max_amount": "1", "pincode": "0123"})
        self.assertEqual(response.status_code, 400)
        self.assertIn("pincode", response.context["form"].errors)

    def test_histogram_bands_link_to_the_report_narrowed_to_them(self):
        response = self.client.get(URL, {"min_amount": "0", "max_amount": "100000", "page": "1"})
        bands = response.context["bands"]
        self.assertEqual(bands[0]["query"], f"min_amount={bands[0]['bucket'].low}&max_amount={bands[0]['bucket'].high - Decimal('0.01')}")
        last = bands[-1]["bucket"]
        self.assertEqual((last.high, bands[-1]["query"]), (Decimal("300.00"), f"min_amount={last.low}&max_amount=300.00"))
        self.assertContains(response, f'<a href="{URL}?{bands[-1]["query"].replace("&", "&amp;")}" data-band>')

    def test_band_links_keep_the_rest_of_the_query_but_the_page(self):
        response = self.client.get(
            URL, {"min_amount": "0", "max_amount": "100000", "state": "Punjab", "sort": "name", "page": "1"}
        )
        bands = response.context["bands"]
        self.assertTrue(bands)
        for index, band in enumerate(bands):
            bucket = band["bucket"]
            high = bucket.high if index == len(bands) - 1 else max(bucket.low, bucket.high - Decimal("0.01"))
            self.assertEqual(band["query"], f"state=Punjab&sort=name&min_amount={bucket.low}&max_amount={high}")

    def test_export_names_carry_the_query(self):
        response = self.client.get(URL + "export.csv", {"min_amount": "10000", "max_amount": "100000", "start": "2024-01-01"})
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="range-10000-100000-2024-01-01.csv"')
        response = self.client.get(
            URL + "export.csv",
            {"min_amount": "0", "max_amount": "500.5", "time_period": "2024-03-31", "state": "Tamil Nadu", "pincode": "600001"},
        )
        self.assertEqual(
            response["Content-Disposition"], 'attachment; filename="range-0-500.5-to-2024-03-31-tamil-nadu-600001.csv"'
        )

    def test_amounts_are_rupees_with_indian_grouping(self):
        store(record(customer_id=9, name="big", transaction_amount="12345678.90", transaction_datetime="2024-01-01T00:00:00Z"))
        response = self.client.get(URL, {"min_amount": "0", "max_amount": "99999999"})
        self.assertContains(response, "₹1,23,45,678.90")


class PeriodTests(TestCase):
    NOW = dt.datetime(2026, 5, 15, 12, 0, tzinfo=dt.timezone.utc)

    def test_each_period_is_whole_utc_days_ending_today(self):
        def window(period):
            found = selectors.period_window(period, now=self.NOW)
            return found.start.date().isoformat(), found.end.date().isoformat(), found.end.time()

        self.assertEqual(window("last-7-days"), ("2026-05-09", "2026-05-15", dt.time.max))
        self.assertEqual(window("last-30-days")[0], "2026-04-16")
        self.assertEqual(window("last-90-days")[0], "2026-02-15")
        self.assertEqual(window("this-month")[0], "2026-05-01")
        self.assertEqual(window("this-quarter")[0], "2026-04-01")
        self.assertEqual(window("year-to-date")[0], "2026-01-01")
        self.assertEqual(window("last-year"), ("2025-01-01", "2025-12-31", dt.time.max))
        with self.assertRaises(ValueError):
            selectors.period_window("next-week", now=self.NOW)


class PeriodOnThePageTests(DashboardTestMixin, TestCase):
    def test_a_period_wins_over_typed_dates_and_shows_its_dates(self):
        today = dt.datetime.now(dt.timezone.utc).date()
        store(
            record(customer_id=1, transaction_amount="10.00", transaction_datetime=f"{today.isoformat()}T00:00:00Z"),
            record(customer_id=2, transaction_amount="20.00", transaction_datetime="2001-01-01T00:00:00Z"),
        )
        response = self.client.get(
            URL, {"min_amount": "0", "max_amount": "100", "period": "last-7-days", "start": "2000-01-01"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual([row["customer_id"] for row in response.context["page"].object_list], [1])
        self.assertContains(response, f'value="{(today - dt.timedelta(days=6)).isoformat()}"')
        self.assertContains(response, '<option value="last-7-days" selected>Last 7 days</option>', html=True)
