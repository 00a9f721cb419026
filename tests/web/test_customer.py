"""The customer page `/customers/<id>/`: details, totals, pincodes, months, transactions."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from tests.support import DashboardTestMixin, logged_in_client, record, store


def customer_with_history(transactions: int = 3) -> None:
    store(*[
        record(customer_id=42, name="Meera", mob_no="9876543210", transaction_amount="100.00",
               transaction_datetime=f"2024-{1 + i % 12:02d}-{1 + i // 12:02d}T08:00:00Z",
               pincode="560001" if i % 2 else "110001", state="Karnataka" if i % 2 else "Delhi")
        for i in range(transactions)
    ])


class CustomerPageTests(DashboardTestMixin, TestCase):
    def test_details_totals_pincodes_and_months(self):
        customer_with_history(3)
        response = self.client.get("/customers/42/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "<h1>Meera</h1>", html=True)
        self.assertContains(response, '<dd data-testid="customer-total">₹300.00</dd>', html=True)
        self.assertEqual(
            [(row["pincode"], row["state"], row["transaction_count"]) for row in response.context["pincodes"]],
            [("110001", "Delhi", 2), ("560001", "Karnataka", 1)],
        )
        self.assertEqual([m.month.isoformat() for m in response.context["months"]], ["2024-01-01", "2024-02-01", "2024-03-01"])
        self.assertContains(response, '<th scope="row">2024-02</th>', html=False)
        self.assertContains(response, "Transactions <span class=\"count\">(3)</span>", html=False)

    def test_months_without_spend_are_shown_as_zero_between_the_first_and_the_last(self):
        store(
            record(customer_id=42, transaction_amount="100.00", transaction_datetime="2023-11-10T08:00:00Z"),
            record(customer_id=42, transaction_amount="50.00", transaction_datetime="2024-02-01T00:00:00Z"),
            record(customer_id=42, transaction_amount="25.00", transaction_datetime="2024-02-29T23:59:59Z"),
        )
        response = self.client.get("/customers/42/")
        self.assertEqual(
            [(m.month.isoformat(), m.transactions, m.total_amount) for m in response.context["months"]],
            [
                ("2023-11-01", 1, Decimal("100.00")),
                ("2023-12-01", 0, Decimal("0.00")),
                ("2024-01-01", 0, Decimal("0.00")),
                ("2024-02-01", 2, Decimal("75.00")),
            ],
        )
        self.assertContains(
            response,
            '<tr><th scope="row">2023-12</th><td class="num" data-value="0.00">₹0.00</td><td class="num">0</td></tr>',
            html=True,
        )
        self.assertContains(response, '<th scope="row">2024-01</th>', html=True)

    def test_mobile_number_is_masked_without_the_pii_permission(self):
        customer_with_history(1)
        response = self.client.get("/customers/42/")
        self.assertContains(response, '<dd data-testid="mob-no">98******10</dd>', html=True)
        self.assertNotContains(response, "9876543210")

    def test_mobile_number_is_whole_with_the_pii_permission(self):
        customer_with_history(1)
        client = logged_in_client("operator", permissions=("view_transaction", "view_pii"))
        self.assertContains(client.get("/customers/42/"), '<dd data-testid="mob-no">9876543210</dd>', html=True)

    def test_transactions_are_paginated_newest_first_and_htmx_gets_the_list_only(self):
        customer_with_history(60)
        response = self.client.get("/customers/42/")
        page = response.context["transactions"]
        self.assertEqual((len(page.object_list), page.paginator.count), (50, 60))
        self.assertEqual(page.object_list[0].transaction_datetime.isoformat(), "2024-12-05T08:00:00+00:00")
        second = self.htmx_get("/customers/42/", {"page": "2"})
        self.assertTemplateUsed(second, "web/_customer_transactions.html")
        self.assertNotContains(second, "<html")
        self.assertNotIn("pincodes", second.context)
        self.assertEqual(len(second.context["transactions"].object_list), 10)
        self.assertContains(second, "Page 2 of 2")

    def test_unknown_customer_is_404(self):
        self.assertEqual(self.client.get("/customers/999/").status_code, 404)

    def test_permission_is_required(self):
        customer_with_history(1)
        self.assertEqual(logged_in_client("none", permissions=()).get("/customers/42/").status_code, 403)

    def test_name_is_escaped(self):
        store(record(customer_id=5, name="<script>alert(1)</script>"))
        response = self.client.get("/customers/5/")
        self.assertNotContains(response, "<script>alert(1)")
        self.assertContains(response, "&lt;script&gt;alert(1)&lt;/script&gt;")


class CustomerMonthsKeptTests(DashboardTestMixin, TestCase):
    def months_summed(self, queries) -> list[str]:
        return [query["sql"] for query in queries
                if "GROUP BY" in query["sql"] and "transactions_transaction" in query["sql"]]

    def test_months_are_summed_once_until_a_transaction_is_added(self):
        customer_with_history(2)
        with CaptureQueriesContext(connection) as first:
            self.client.get("/customers/42/")
        with CaptureQueriesContext(connection) as again:
            response = self.client.get("/customers/42/")
        self.assertEqual(
            (len(self.months_summed(first.captured_queries)), self.months_summed(again.captured_queries)), (1, [])
        )
        self.assertEqual([(m.month.isoformat(), m.transactions) for m in response.context["months"]],
                         [("2024-01-01", 1), ("2024-02-01", 1)])
        store(record(customer_id=42, name="Meera", transaction_amount="5.00",
                     transaction_datetime="2024-04-02T08:00:00Z"))
        response = self.client.get("/customers/42/")
        self.assertEqual([(m.month.isoformat(), m.transactions, m.total_amount) for m in response.context["months"]],
                         [("2024-01-01", 1, Decimal("100.00")), ("2024-02-01", 1, Decimal("100.00")),
                          ("2024-03-01", 0, Decimal("0.00")), ("2024-04-01", 1, Decimal("5.00"))])
