"""One name per state: the spelling most of its transactions are filed under, wherever it is shown.

States match case-insensitively, so "KARNATAKA" and "Karnataka" are one state; the customer
page, the top-customers state picker and the admin's state filter all call it by one name.
"""

from __future__ import annotations

from django.test import TestCase

from tests.support import VIEWER, DashboardTestMixin, logged_in_client, record, store
from transactions import selectors, services


def karnataka_in_two_spellings() -> None:
    store(
        # Sent first, and the spelling that sorts first: but the rarer one.
        record(customer_id=1, name="Ravi", state="KARNATAKA", pincode="560001",
               transaction_datetime="2024-01-01T10:00:00Z"),
        record(customer_id=2, name="Sita", state="Karnataka", pincode="560001",
               transaction_datetime="2024-01-02T10:00:00Z"),
        record(customer_id=3, name="Uma", state="Karnataka", pincode="560002",
               transaction_datetime="2024-01-03T10:00:00Z"),
        record(customer_id=4, name="Deepa", state="Delhi", pincode="110001"),
    )


class StateNameTests(DashboardTestMixin, TestCase):
    def test_the_most_common_spelling_names_the_state(self):
        karnataka_in_two_spellings()
        self.assertEqual(selectors.state_names(), {"karnataka": "Karnataka", "delhi": "Delhi"})

    def test_of_equally_common_spellings_the_first_stored(self):
        store(
            record(customer_id=1, state="goa", pincode="403001", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=2, state="Goa", pincode="403001", transaction_datetime="2024-01-02T00:00:00Z"),
        )
        self.assertEqual(selectors.state_names(), {"goa": "goa"})

    def test_customer_page_shows_the_states_one_name(self):
        karnataka_in_two_spellings()
        response = self.client.get("/customers/1/")
        self.assertEqual([row["state"] for row in response.context["pincodes"]], ["Karnataka"])
        self.assertContains(response, "<td data-label=\"State\">Karnataka</td>", count=2, html=True)  # by pincode, transactions
        self.assertNotContains(response, "KARNATAKA")
        # The transaction list alone (HTMX paging) too.
        partial = self.htmx_get("/customers/1/")
        self.assertContains(partial, "<td data-label=\"State\">Karnataka</td>", count=1, html=True)
        self.assertNotContains(partial, "KARNATAKA")

    def test_state_picker_offers_each_state_once_by_its_name(self):
        karnataka_in_two_spellings()
        response = self.client.get("/reports/top-customers/")
        self.assertContains(
            response, '<option value="Karnataka">Karnataka (3 transactions, 2 pincodes)</option>', html=True
        )
        self.assertNotContains(response, "KARNATAKA")
        # A state sent in another spelling is shown, and answered, under its name.
        report = self.client.get("/reports/top-customers/", {"state": "karnataka"})
        self.assertContains(report, '<h2 id="top-results-heading">Karnataka</h2>', html=True)
        self.assertContains(report, '<option value="Karnataka" selected>', html=False)
        self.assertNotContains(report, "KARNATAKA")

    def test_admin_state_filter_lists_each_state_once_by_its_name(self):
        karnataka_in_two_spellings()
        staff = logged_in_client("operator", permissions=VIEWER, is_staff=True)
        response = staff.get("/admin/transactions/transaction/")
        self.assertEqual(response.status_code, 200)
        filters = {spec.parameter_name: spec.lookup_choices for spec in response.context["cl"].filter_specs}
        self.assertEqual(filters["state"], [("delhi", "Delhi"), ("karnataka", "Karnataka")])
        self.assertContains(response, '<a href="?state=karnataka">Karnataka</a>', html=True)
        # (The rows themselves are listed as stored: the admin is where they are corrected.)

    def test_a_new_most_common_spelling_renames_the_state(self):
        karnataka_in_two_spellings()
        self.assertEqual(selectors.state_names()["karnataka"], "Karnataka")
        store(*[record(customer_id=10 + i, state="KARNATAKA", pincode="560003") for i in range(2)])
        self.assertEqual(selectors.state_names()["karnataka"], "KARNATAKA")

    def test_names_hold_once_the_deltas_are_folded(self):
        karnataka_in_two_spellings()
        store(
            record(customer_id=5, state="goa", pincode="403001", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=6, state="Goa", pincode="403001", transaction_datetime="2024-01-02T00:00:00Z"),
        )
        before = selectors.state_names()
        self.assertEqual(before, {"karnataka": "Karnataka", "delhi": "Delhi", "goa": "goa"})
        services.fold_summary_deltas()
        self.assertEqual(selectors.state_names(), before)
        # Folded counts and new deltas add up: two more "Goa" outnumber the one "goa".
        store(record(customer_id=7, state="Goa", pincode="403002"))
        self.assertEqual(selectors.state_names()["goa"], "Goa")

    def test_names_are_read_from_the_spellings_counts_in_one_statement(self):
        karnataka_in_two_spellings()
        with self.assertNumQueries(2) as queries:  # the data version, then the counts
            selectors.state_names()
        self.assertIn("statespelling", queries.captured_queries[1]["sql"])
        self.assertNotIn("customerpincodetotal", queries.captured_queries[1]["sql"])
