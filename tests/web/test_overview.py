"""The overview page `/`: totals, amount per month, latest imports; login and permission."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from tests.support import (
    VIEWER,
    DashboardTestMixin,
    logged_in_client,
    make_user,
    monthly_totals_grouped_from_transactions,
    pincode_totals_grouped_from_transactions,
    record,
    store,
)
from transactions import services
from transactions.generation import generate_records


class OverviewPageTests(DashboardTestMixin, TestCase):
    def test_anonymous_user_is_sent_to_login(self):
        self.client.logout()
        response = self.client.get("/")
        self.assertRedirects(response, "/accounts/login/?next=/", fetch_redirect_response=False)

    def test_user_without_view_permission_gets_403(self):
        client = logged_in_client("nobody", permissions=())
        response = client.get("/")
        self.assertEqual(response.status_code, 403)
        self.assertContains(response, "Not allowed", status_code=403)

    def test_empty_database_says_so(self):
        response = self.client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "No transactions stored yet.")
        self.assertContains(response, "No imports yet.")
        self.assertEqual(response.context["totals"].transactions, 0)

    def test_totals_and_months_come_from_the_stored_transactions(self):
        store(
            record(customer_id=1, transaction_amount="100.50", transaction_datetime="2024-01-05T10:00:00Z"),
            record(customer_id=1, transaction_amount="200.00", transaction_datetime="2024-01-31T23:59:59Z",
                   pincode="141001", state="Punjab"),
            record(customer_id=2, transaction_amount="50.25", transaction_datetime="2024-03-01T00:00:00Z"),
        )
        response = self.client.get("/")
        totals = response.context["totals"]
        self.assertEqual(
            (totals.transactions, totals.customers, str(totals.total_amount), totals.states, totals.pincodes),
            (3, 2, "350.75", 2, 2),
        )
        self.assertEqual(totals.newest_transaction.isoformat(), "2024-03-01T00:00:00+00:00")
        months = [(m.month.isoformat(), m.transactions, str(m.total_amount)) for m in response.context["months"]]
        self.assertEqual(months, [("2024-01-01", 2, "300.50"), ("2024-03-01", 1, "50.25")])
        # The chart's numbers are also in a table, each month a link to its range report.
        self.assertContains(
            response,
            '<th scope="row"><a href="/reports/range/?min_amount=0&amp;max_amount=999999999999999999.99&amp;start=2024-01-01'
            '&amp;time_period=2024-01-31" data-month>2024-01</a></th><td class="num" data-value="300.50">₹300.50</td>',
            html=False,
        )
        self.assertContains(response, '<dd data-testid="total-amount">₹350.75</dd>', html=True)
        self.assertContains(response, "2024-03-01 00:00 UTC")

    def test_new_transactions_show_at_once_despite_the_month_cache(self):
        store(record(customer_id=1, transaction_datetime="2024-01-05T10:00:00Z"))
        self.client.get("/")
        store(record(customer_id=1, transaction_datetime="2024-02-05T10:00:00Z"))
        months = [m.month.isoformat() for m in self.client.get("/").context["months"]]
        self.assertEqual(months, ["2024-01-01", "2024-02-01"])

    def test_totals_are_counted_once_until_new_data(self):
        store(record(customer_id=1), record(customer_id=2, transaction_datetime="2024-10-01T00:00:00Z"))
        self.client.get("/")
        with CaptureQueriesContext(connection) as queries:
            again = self.client.get("/")
        self.assertEqual((again.context["totals"].customers, again.context["totals"].transactions), (2, 2))
        self.assertFalse([q for q in queries.captured_queries if "COUNT(" in q["sql"]])
        store(record(customer_id=3, transaction_datetime="2024-11-01T00:00:00Z"))
        totals = self.client.get("/").context["totals"]
        self.assertEqual((totals.customers, totals.transactions), (3, 3))

    def test_latest_imports_are_the_users_own_with_their_state(self):
        owner = make_user("uploader")
        other = make_user("someone-else")
        with self.captureOnCommitCallbacks(execute=False):
            services.start_import(owner=owner, uploaded_file=SimpleUploadedFile("mine.csv", b"customer_id\n"))
            services.start_import(owner=other, uploaded_file=SimpleUploadedFile("theirs.csv", b"customer_id\n"))
        client = self.client
        client.force_login(owner)
        response = client.get("/")
        self.assertContains(response, "mine.csv")
        self.assertContains(response, '<span class="status status--queued">Queued</span>', html=True)
        self.assertNotContains(response, "theirs.csv")

    def test_viewer_without_upload_permission_has_no_upload_link(self):
        client = logged_in_client("viewer", permissions=VIEWER)
        response = client.get("/")
        self.assertEqual(response.status_code, 200)
        self.assertNotContains(response, 'href="/upload/"')

    def test_user_text_is_escaped(self):
        with self.captureOnCommitCallbacks(execute=False):
            services.start_import(
                owner=make_user("x", permissions=VIEWER), uploaded_file=SimpleUploadedFile("<script>x.csv", b"")
            )
        client = logged_in_client("staff", permissions=VIEWER, is_staff=True)
        response = client.get("/")
        self.assertNotContains(response, "<script>x")
        self.assertContains(response, "&lt;script&gt;x.csv")


class OverviewFiguresTests(DashboardTestMixin, TestCase):
    def test_chart_and_totals_equal_a_group_by_over_the_transactions(self):
        records = list(generate_records(rows=2_000, customers=250, seed=21))
        for start in range(0, len(records), 500):
            store(*records[start : start + 500])
        # An offset moves this one into the previous UTC month (2023-12).
        store(record(customer_id=9, transaction_amount="12.34", transaction_datetime="2024-01-01T03:00:00+05:30"))

        response = self.client.get("/")

        months = [(m.month.strftime("%Y-%m"), m.transactions, m.total_amount) for m in response.context["months"]]
        self.assertEqual(months, monthly_totals_grouped_from_transactions())
        by_pincode = pincode_totals_grouped_from_transactions()
        totals = response.context["totals"]
        self.assertEqual(
            (totals.transactions, totals.total_amount, totals.states, totals.pincodes),
            (
                sum(count for _, _, count, _ in by_pincode),
                sum(amount for _, _, _, amount in by_pincode),
                len({state_key for state_key, _, _, _ in by_pincode}),
                len({pincode for _, pincode, _, _ in by_pincode}),
            ),
        )

    def test_the_overview_groups_no_transactions(self):
        store(record(customer_id=1), record(customer_id=2, transaction_datetime="2024-10-01T00:00:00Z"))
        with CaptureQueriesContext(connection) as queries:
            self.client.get("/")
        grouped = [
            q["sql"] for q in queries.captured_queries
            if "transactions_transaction" in q["sql"] and ("GROUP BY" in q["sql"] or "SUM(" in q["sql"])
        ]
        self.assertEqual(grouped, [])
