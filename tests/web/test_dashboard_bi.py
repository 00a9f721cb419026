"""The dashboard's BI round (issue 15) outside the range report: sortable customer tables, top
customers by pincode or total with a pincode search and jump links, a month bar's drill-down,
rupees with Indian digit grouping, titled chart axes, the admin and API-docs links, dark mode."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from django.conf import settings
from django.test import TestCase

from tests.support import DashboardTestMixin, logged_in_client, record, store
from tests.web.test_top_customers import punjab_and_delhi

TOP = "/reports/top-customers/"


class TopCustomersOrderAndSearchTests(DashboardTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        punjab_and_delhi()
        store(record(customer_id=5, name="Jas", transaction_amount="5000.00", pincode="160002", state="Punjab"))

    def pincodes(self, **query) -> list[str]:
        response = self.client.get(TOP, {"state": "Punjab", **query})
        self.assertEqual(response.status_code, 200)
        return [card["pincode"] for card in response.context["cards"]]

    def test_cards_by_pincode_or_by_the_total_of_their_top_customers(self):
        self.assertEqual(self.pincodes(), ["141001", "160001", "160002"])
        # 160002: 5,000; 141001: 900 + 700 + 400 = 2,000; 160001: 50.
        self.assertEqual(self.pincodes(order="total"), ["160002", "141001", "160001"])
        self.assertEqual(self.pincodes(order="total", limit="1"), ["160002", "141001", "160001"])
        self.assertEqual(self.pincodes(order="nonsense"), ["141001", "160001", "160002"])
        response = self.client.get(TOP, {"state": "Punjab", "order": "total"})
        self.assertContains(response, '<p class="card-total" data-card-total="2000.00">Top 3 together: ₹2,000.00</p>', html=True)

    def test_a_pincode_search_keeps_the_cards_starting_with_it_and_jump_links_lead_to_each(self):
        self.assertEqual(self.pincodes(pincode="16"), ["160001", "160002"])
        self.assertEqual(self.pincodes(pincode="160002"), ["160002"])
        response = self.client.get(TOP, {"state": "Punjab", "pincode": "999"})
        self.assertContains(response, "No transactions in Punjab in a pincode starting with 999.")
        response = self.client.get(TOP, {"state": "Punjab"})
        self.assertContains(
            response,
            '<ul class="pincode-jump" data-testid="pincode-jump"><li><a href="#pincode-141001">141001</a></li>'
            '<li><a href="#pincode-160001">160001</a></li><li><a href="#pincode-160002">160002</a></li></ul>',
            html=True,
        )
        self.assertContains(response, '<h3 id="pincode-160002">Pincode 160002</h3>', html=True)

    def test_a_pincode_search_that_is_not_digits_is_refused_beside_its_field(self):
        for typed in ("16a", "1600011", "-1"):
            with self.subTest(typed=typed):
                response = self.client.get(TOP, {"state": "Punjab", "pincode": typed})
                self.assertEqual(response.status_code, 400)
                self.assertEqual(response.context["form"].errors, {"pincode": ["Enter the first digits of a pincode: 1 to 6 digits."]})

    def test_the_export_follows_the_search_and_the_order_and_names_the_query(self):
        response = self.client.get(TOP + "export.csv", {"state": "Punjab", "pincode": "16", "order": "total", "start": "2024-01-01"})
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="top-customers-punjab-16-2024-01-01.csv"')
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual([row[0] for row in rows[1:]], ["160002", "160001"])

    def test_amounts_are_rupees_and_the_charts_axes_are_titled(self):
        response = self.client.get(TOP, {"state": "Punjab"})
        self.assertContains(response, '<td class="num" data-value="5000.00">₹5,000.00</td>', html=True)
        self.assertContains(response, 'data-x-title="Total (₹)" data-y-title="Customer"')


class CustomerTablesTests(DashboardTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        store(
            record(customer_id=42, name="Meera", transaction_amount="12345678.90", pincode="110001",
                   transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=42, name="Meera", transaction_amount="5.00", pincode="560001", state="Karnataka",
                   transaction_datetime="2024-03-01T00:00:00Z"),
            record(customer_id=42, name="Meera", transaction_amount="700.00", pincode="560001", state="Karnataka",
                   transaction_datetime="2024-02-01T00:00:00Z"),
        )

    def amounts(self, **query) -> list[str]:
        response = self.client.get("/customers/42/", query)
        return [str(txn.transaction_amount) for txn in response.context["transactions"].object_list]

    def test_transactions_sort_by_time_or_amount_both_ways(self):
        self.assertEqual(self.amounts(), ["5.00", "700.00", "12345678.90"])  # newest first
        self.assertEqual(self.amounts(sort="when"), ["12345678.90", "700.00", "5.00"])
        self.assertEqual(self.amounts(sort="-amount"), ["12345678.90", "700.00", "5.00"])
        self.assertEqual(self.amounts(sort="amount"), ["5.00", "700.00", "12345678.90"])
        self.assertEqual(self.amounts(sort="mob_no"), ["5.00", "700.00", "12345678.90"])
        partial = self.htmx_get("/customers/42/", {"sort": "amount"})
        self.assertTemplateUsed(partial, "web/_customer_transactions.html")
        self.assertContains(partial, 'aria-sort="ascending"')
        self.assertContains(partial, 'href="/customers/42/?sort=-amount"')

    def test_the_pincode_table_sorts_on_its_own_parameter(self):
        def pincodes(**query):
            return [row["pincode"] for row in self.client.get("/customers/42/", query).context["pincodes"]]

        self.assertEqual(pincodes(), ["110001", "560001"])
        self.assertEqual(pincodes(pincode_sort="total"), ["560001", "110001"])
        self.assertEqual(pincodes(pincode_sort="-pincode"), ["560001", "110001"])
        self.assertEqual(pincodes(pincode_sort="-transactions"), ["560001", "110001"])
        response = self.client.get("/customers/42/", {"sort": "amount", "pincode_sort": "pincode"})
        # Each table's links keep the other table's order.
        self.assertContains(response, 'href="/customers/42/?sort=amount&amp;pincode_sort=-pincode"')
        self.assertContains(response, 'href="/customers/42/?pincode_sort=pincode&amp;sort=-amount"')

    def test_amounts_are_rupees_with_indian_grouping(self):
        response = self.client.get("/customers/42/")
        self.assertContains(response, '<dd data-testid="customer-total">₹1,23,46,383.90</dd>', html=True)
        self.assertContains(response, "₹1,23,45,678.90")
        self.assertContains(response, 'data-x-title="Month (UTC)" data-y-title="Amount (₹)"')

    def test_staff_who_may_open_customers_in_the_admin_get_a_link_there(self):
        self.assertNotContains(self.client.get("/customers/42/"), "customer-admin-link")
        operator = logged_in_client(
            "operator", permissions=("view_transaction", "view_customer", "change_customer"), is_staff=True
        )
        self.assertContains(
            operator.get("/customers/42/"),
            '<a href="/admin/transactions/customer/42/change/" data-testid="customer-admin-link">Open in the admin</a>',
            html=True,
        )
        staff_without_customers = logged_in_client("staff-reader", permissions=("view_transaction",), is_staff=True)
        self.assertNotContains(staff_without_customers.get("/customers/42/"), "customer-admin-link")


class OverviewAndNavigationTests(DashboardTestMixin, TestCase):
    def test_a_month_bar_opens_the_range_report_for_that_month(self):
        store(
            record(customer_id=1, name="Jan", transaction_amount="10.00", transaction_datetime="2024-01-31T23:59:59Z"),
            record(customer_id=2, name="Feb", transaction_amount="20.00", transaction_datetime="2024-02-01T00:00:00Z"),
            record(customer_id=3, name="Feb too", transaction_amount="999999999999.99", transaction_datetime="2024-02-29T23:59:59Z"),
        )
        response = self.client.get("/")
        links = {row.month.isoformat(): row.report_query for row in response.context["months"]}
        self.assertEqual(
            links["2024-02-01"],
            "min_amount=0&max_amount=999999999999999999.99&start=2024-02-01&time_period=2024-02-29",
        )
        self.assertContains(response, f'<tr data-href="/reports/range/?{links["2024-02-01"].replace("&", "&amp;")}">')
        report = self.client.get(f"/reports/range/?{links['2024-02-01']}")
        self.assertEqual(report.status_code, 200)
        self.assertEqual([row["customer_id"] for row in report.context["page"].object_list], [3, 2])
        self.assertContains(response, 'data-x-title="Month (UTC)" data-y-title="Amount (₹)"')
        # 1,000,000,000,029.99 rupees, grouped in lakhs and crores.
        self.assertContains(response, '<dd data-testid="total-amount">₹10,00,00,00,00,029.99</dd>', html=True)
        self.assertContains(response, '<td class="num" data-value="1000000000019.99">₹10,00,00,00,00,019.99</td>', html=True)

    def test_the_navigation_links_the_segments_and_the_api_docs(self):
        response = self.client.get("/")
        self.assertContains(response, '<li><a href="/segments/">Segments</a></li>', html=True)
        self.assertContains(response, '<li><a href="/api/docs/">API docs</a></li>', html=True)
        self.assertContains(self.client.get("/segments/"), '<a href="/segments/" aria-current="page">Segments</a>', html=True)

    def test_the_stylesheet_has_a_dark_colour_scheme(self):
        css = (Path(settings.BASE_DIR) / "static" / "css" / "dashboard.css").read_text()
        dark = css[css.index("@media (prefers-color-scheme: dark)"):]
        for variable in ("--ink", "--bg", "--card", "--brand", "color-scheme: dark"):
            self.assertIn(variable, dark)
        # The charts take their colours from the same variables, so they follow the scheme.
        script = (Path(settings.BASE_DIR) / "static" / "js" / "dashboard.js").read_text()
        self.assertIn('cssColour("--brand"', script)
