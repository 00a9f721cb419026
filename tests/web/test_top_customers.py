"""Top customers `/reports/top-customers/`: state picker from the data, one card per pincode."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from tests.support import DashboardTestMixin, logged_in_client, record, store

URL = "/reports/top-customers/"


def punjab_and_delhi() -> None:
    store(
        record(customer_id=1, name="Gurpreet", transaction_amount="900.00", pincode="141001", state="Punjab"),
        record(customer_id=2, name="Harjit", transaction_amount="400.00", pincode="141001", state="Punjab"),
        record(customer_id=3, name="Inder <b>", transaction_amount="700.00", pincode="141001", state="Punjab"),
        record(customer_id=2, name="Harjit", transaction_amount="50.00", pincode="160001", state="Punjab",
               transaction_datetime="2024-10-01T00:00:00Z"),
        record(customer_id=4, name="Deepa", transaction_amount="10.00", pincode="110001", state="Delhi"),
    )


class TopCustomersPageTests(DashboardTestMixin, TestCase):
    def test_state_picker_lists_the_states_with_their_counts(self):
        punjab_and_delhi()
        response = self.client.get(URL)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<label for="id_state">State:</label>', html=True)
        self.assertContains(response, '<option value="Delhi">Delhi (1 transactions, 1 pincodes)</option>', html=True)
        self.assertContains(response, '<option value="Punjab">Punjab (4 transactions, 2 pincodes)</option>', html=True)
        self.assertNotContains(response, "top-customers-results")

    def test_one_card_per_pincode_with_ranked_customers(self):
        punjab_and_delhi()
        response = self.client.get(URL, {"state": "punjab", "limit": "2"})
        by_pincode = response.context["by_pincode"]
        self.assertEqual(
            {pincode: [(e.customer_id, e.total_transaction_amount) for e in ranked] for pincode, ranked in by_pincode.items()},
            {"141001": [(1, Decimal("900.00")), (3, Decimal("700.00"))], "160001": [(2, Decimal("50.00"))]},
        )
        self.assertContains(response, '<h3 id="pincode-141001">Pincode 141001</h3>', html=True)
        self.assertContains(response, '<a href="/customers/3/">Inder &lt;b&gt;</a>', html=True)
        self.assertContains(response, "2 pincodes")
        # The state typed in another case is shown selected in its stored spelling.
        self.assertContains(response, '<option value="Punjab" selected>', html=False)

    def test_htmx_request_gets_the_partial(self):
        punjab_and_delhi()
        response = self.htmx_get(URL, {"state": "Delhi"})
        self.assertTemplateUsed(response, "web/reports/_top_customers_report.html")
        self.assertNotContains(response, "<html")
        self.assertContains(response, '<div id="top-customers-report">')
        self.assertContains(response, "Pincode 110001")

    def test_a_state_without_transactions_says_so(self):
        punjab_and_delhi()
        response = self.client.get(URL, {"state": "Goa"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "No transactions in Goa.")
        self.assertContains(response, '<option value="Goa" selected>Goa</option>', html=True)

    def test_a_window_limits_the_totals(self):
        punjab_and_delhi()
        response = self.client.get(URL, {"state": "Punjab", "start": "2024-09-30T00:00:00"})
        self.assertEqual(list(response.context["by_pincode"]), ["160001"])
        response = self.client.get(URL, {"state": "Punjab", "time_period": "2020-01-01T00:00:00"})
        self.assertContains(response, "No transactions in Punjab in this window.")

    def test_validation_uses_the_apis_rules(self):
        response = self.client.get(URL, {"state": "  ", "limit": "101"})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            response.context["form"].errors,
            {"state": ["This field is required."], "limit": ["Ensure this value is less than or equal to 100."]},
        )
        self.assertContains(response, '<ul class="errorlist" id="id_limit_error">', status_code=400)

    def test_permission_is_required(self):
        self.assertEqual(logged_in_client("no-perms", permissions=()).get(URL).status_code, 403)

    def test_no_data_says_there_are_no_states(self):
        self.assertContains(self.client.get(URL), "No transactions are stored yet")

    def test_export_lists_every_pincode_and_rank(self):
        punjab_and_delhi()
        response = self.client.get(URL + "export.csv", {"state": "Punjab"})
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="top-customers-punjab.csv"')
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(
            rows,
            [
                ["pincode", "rank", "customer_id", "name", "total_transaction_amount"],
                ["141001", "1", "1", "Gurpreet", "900.00"],
                ["141001", "2", "3", "Inder <b>", "700.00"],
                ["141001", "3", "2", "Harjit", "400.00"],
                ["160001", "1", "2", "Harjit", "50.00"],
            ],
        )

    def test_invalid_export_goes_back_to_the_form(self):
        response = self.client.get(URL + "export.csv", {"state": ""})
        self.assertRedirects(response, URL + "?state=", fetch_redirect_response=False)


class TopCustomersCardPagesTests(DashboardTestMixin, TestCase):
    """Many customers a pincode: the cards are paged (about 500 rows a page), the jump links
    lead to the page holding each pincode, and the export keeps every card."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        # Seven pincodes of Punjab, two customers each.
        store(*[
            record(customer_id=pincode_index * 10 + n, name=f"c{pincode_index}-{n}", transaction_amount=f"{n}0.00",
                   pincode=f"14{pincode_index:04d}", state="Punjab")
            for pincode_index in range(1, 8) for n in (1, 2)
        ])

    def pincodes_of(self, response) -> list[str]:
        return [card["pincode"] for card in response.context["cards"]]

    def test_with_100_a_pincode_five_cards_make_a_page(self):
        first = self.client.get(URL, {"state": "Punjab", "limit": "100"})
        self.assertEqual(self.pincodes_of(first), ["140001", "140002", "140003", "140004", "140005"])
        self.assertContains(first, "7 pincodes")
        self.assertContains(first, "Pincodes 1–5 of 7")
        # A pincode on this page is jumped to in place; one on the next page opens that page.
        self.assertContains(first, '<a href="#pincode-140005">140005</a>', html=True)
        self.assertContains(
            first, '<a href="/reports/top-customers/?state=Punjab&amp;limit=100&amp;page=2#pincode-140006">140006</a>', html=True
        )
        self.assertContains(first, 'rel="next"')
        second = self.client.get(URL, {"state": "Punjab", "limit": "100", "page": "2"})
        self.assertEqual(self.pincodes_of(second), ["140006", "140007"])
        self.assertContains(second, "Pincodes 6–7 of 7")
        self.assertContains(second, '<a href="/reports/top-customers/?state=Punjab&amp;limit=100&amp;page=1#pincode-140001">140001</a>', html=True)

    def test_with_the_default_five_every_card_is_on_one_page_without_a_pager(self):
        response = self.client.get(URL, {"state": "Punjab"})
        self.assertEqual(len(self.pincodes_of(response)), 7)
        self.assertNotContains(response, 'aria-label="Pincode pages"')
        self.assertNotContains(response, "data-testid=\"card-range\"")

    def test_an_htmx_page_of_cards_is_the_partial(self):
        response = self.htmx_get(URL, {"state": "Punjab", "limit": "100", "page": "2"})
        self.assertTemplateUsed(response, "web/reports/_top_customers_report.html")
        self.assertNotContains(response, "<html")
        self.assertEqual(self.pincodes_of(response), ["140006", "140007"])

    def test_the_export_holds_every_pincode_whatever_the_page(self):
        response = self.client.get(URL + "export.csv", {"state": "Punjab", "limit": "100", "page": "2"})
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(len(rows), 1 + 14)
        self.assertEqual({row[0] for row in rows[1:]}, {f"14{i:04d}" for i in range(1, 8)})


class KeptCardsTests(DashboardTestMixin, TestCase):
    """The cards are written once per query and data (``views._kept_fragments``)."""

    def test_the_same_query_reads_nothing_again_until_new_data(self):
        punjab_and_delhi()
        first = self.client.get(URL, {"state": "punjab"})
        with CaptureQueriesContext(connection) as queries:
            again = self.client.get(URL, {"state": "punjab"})
        # The same page, but for its CSRF token (masked anew for every response).
        masked = re.compile(rb"[A-Za-z0-9]{64}")
        self.assertEqual(masked.sub(b"", again.content), masked.sub(b"", first.content))
        self.assertFalse([q for q in queries.captured_queries if "customerpincodetotal" in q["sql"]])
        # Another query is its own, and new data is shown.
        self.assertContains(self.client.get(URL, {"state": "punjab", "limit": "1"}), "Gurpreet")
        self.assertNotContains(self.client.get(URL, {"state": "punjab", "limit": "1"}), "Inder")
        store(record(customer_id=9, name="Newcomer", transaction_amount="5000.00", pincode="141001", state="Punjab"))
        self.assertContains(self.client.get(URL, {"state": "punjab"}), "Newcomer")
