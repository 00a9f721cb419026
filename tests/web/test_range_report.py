"""The range report `/reports/range/`: same rules and answer as the API, paginated, exported."""

from __future__ import annotations

import csv
import io
import json
from decimal import ROUND_FLOOR, Decimal

import re

from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext

from tests.support import (
    DashboardTestMixin,
    clear_caches,
    logged_in_client,
    make_user,
    record,
    store,
    token_client,
)
from transactions import services
from transactions.generation import generate_records
from transactions.models import Customer, Transaction


URL = "/reports/range/"


def many_customers(count: int) -> None:
    """Customers 1..count with totals 10.00, 20.00, ... (customer i spent i * 10)."""
    store(*[
        record(customer_id=i, name=f"customer {i}", transaction_amount=f"{i * 10}.00",
               transaction_datetime="2024-05-01T12:00:00Z")
        for i in range(1, count + 1)
    ])


class RangeReportPageTests(DashboardTestMixin, TestCase):
    def test_without_a_query_only_the_form_is_shown(self):
        response = self.client.get(URL)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<label for="id_min_amount">Minimum total:</label>', html=True)
        self.assertContains(response, 'name="time_period"')
        self.assertNotContains(response, "Results")

    def test_permission_is_required(self):
        response = logged_in_client("uploader-only", permissions=("add_transaction",)).get(URL)
        self.assertEqual(response.status_code, 403)
        self.client.logout()
        self.assertRedirects(self.client.get(URL), f"/accounts/login/?next={URL}", fetch_redirect_response=False)

    def test_matches_are_listed_biggest_first_with_links_and_the_total_count(self):
        store(
            record(customer_id=7, name="Asha <Iyer>", transaction_amount="500.00"),
            record(customer_id=8, name="Bela", transaction_amount="300.00"),
            record(customer_id=9, name="Chand", transaction_amount="100.00"),
        )
        response = self.client.get(URL, {"min_amount": "200", "max_amount": "1000"})
        self.assertEqual(response.status_code, 200)
        rows = [(row["customer_id"], row["name"], row["total_transaction_amount"]) for row in response.context["page"]]
        self.assertEqual(rows, [(7, "Asha <Iyer>", Decimal("500.00")), (8, "Bela", Decimal("300.00"))])
        self.assertContains(response, "2 customers match.")
        self.assertContains(response, '<a href="/customers/7/">Asha &lt;Iyer&gt;</a>', html=True)
        self.assertContains(response, "<html", count=1)  # the whole page, not the partial

    def test_htmx_request_gets_the_partial(self):
        store(record(customer_id=7, transaction_amount="500.00"))
        response = self.htmx_get(URL, {"min_amount": "0", "max_amount": "1000"})
        self.assertEqual(response.status_code, 200)
        self.assertTemplateUsed(response, "web/reports/_range_report.html")
        self.assertNotContains(response, "<html")
        self.assertContains(response, '<div id="range-report">')
        self.assertContains(response, "1 customer matches.")

    def test_fifty_rows_a_page_and_the_query_kept_in_page_links(self):
        many_customers(120)
        response = self.client.get(URL, {"min_amount": "0", "max_amount": "100000"})
        page = response.context["page"]
        self.assertEqual((len(page.object_list), page.paginator.count, page.paginator.num_pages), (50, 120, 3))
        self.assertContains(response, "120 customers match.")
        self.assertContains(response, 'href="/reports/range/?min_amount=0&amp;max_amount=100000&amp;page=2"')
        last = self.client.get(URL, {"min_amount": "0", "max_amount": "100000", "page": "3"})
        self.assertEqual([row["customer_id"] for row in last.context["page"]], list(range(20, 0, -1)))
        self.assertContains(last, '<td class="num">101</td>', html=True)  # numbered across pages

    def test_the_distribution_counts_every_match_once(self):
        many_customers(120)
        summary = self.client.get(URL, {"min_amount": "0", "max_amount": "100000"}).context["summary"]
        self.assertEqual((summary.lowest, summary.highest), (Decimal("10.00"), Decimal("1200.00")))
        self.assertEqual(len(summary.buckets), 10)
        self.assertEqual(sum(bucket.customers for bucket in summary.buckets), 120)
        self.assertEqual([bucket.customers for bucket in summary.buckets], [12] * 10)

    def test_a_window_sums_only_the_transactions_inside_it(self):
        store(
            record(customer_id=1, name="early", transaction_amount="100.00", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=1, name="early", transaction_amount="900.00", transaction_datetime="2024-06-01T00:00:00Z"),
            record(customer_id=2, name="late", transaction_amount="150.00", transaction_datetime="2024-07-01T00:00:00Z"),
        )
        response = self.client.get(
            URL, {"min_amount": "50", "max_amount": "500", "start": "2023-12-31T00:00:00", "time_period": "2024-03-01T00:00:00"}
        )
        rows = [(row["customer_id"], row["total_transaction_amount"]) for row in response.context["page"]]
        self.assertEqual(rows, [(1, Decimal("100.00"))])
        # The window's values go back into the inputs as typed.
        self.assertContains(response, 'value="2024-03-01T00:00:00"')

    def test_a_page_reads_the_data_version_once_and_sees_new_data_on_the_next(self):
        many_customers(3)
        query = {"min_amount": "0", "max_amount": "500", "time_period": "2024-12-31T00:00:00"}
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(URL, query)
        self.assertEqual(response.context["summary"].customers, 3)
        version_reads = [q["sql"] for q in queries.captured_queries if "history_id" in q["sql"] and "MAX(" in q["sql"]]
        self.assertEqual(len(version_reads), 1, version_reads)  # the state picker and the report share it
        store(record(customer_id=4, transaction_amount="5.00", transaction_datetime="2024-05-01T12:00:00Z"))
        self.assertEqual(self.client.get(URL, query).context["summary"].customers, 4)

    def test_empty_result_says_so_plainly(self):
        store(record(customer_id=1, transaction_amount="10.00"))
        response = self.client.get(URL, {"min_amount": "5000", "max_amount": "9000", "start": "2024-01-01"})
        self.assertContains(response, "0 customers match.")
        self.assertContains(response, "No customer's total lies between ₹5,000.00 and ₹9,000.00 in this window.")
        self.assertNotContains(response, "Export CSV")

    def test_validation_messages_use_the_pages_words_and_sit_next_to_their_field(self):
        response = self.client.get(URL, {"min_amount": "500", "max_amount": "100"})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            response.context["form"].errors,
            {"max_amount": ["The maximum total must not be less than the minimum total."]},
        )
        self.assertContains(
            response,
            '<ul class="errorlist" id="id_max_amount_error">'
            "<li>The maximum total must not be less than the minimum total.</li></ul>",
            status_code=400,
            html=True,
        )
        self.assertNotContains(response, "max_amount must", status_code=400)
        self.assertNotContains(response, "min_amount.", status_code=400)
        self.assertContains(response, 'aria-invalid="true"', status_code=400)
        # The API keeps its own words: they name its fields.
        api = token_client(self.make_api_user()).post(
            "/api/query-transaction-range", {"min_amount": 500, "max_amount": 100}, format="json"
        )
        self.assertEqual(json.loads(api.content), {"max_amount": ["max_amount must not be less than min_amount."]})

    def test_each_bad_field_gets_its_message(self):
        response = self.client.get(URL, {"min_amount": "ten", "max_amount": "1.005", "start": "yesterday"})
        self.assertEqual(
            response.context["form"].errors,
            {
                "min_amount": ["Enter an amount as a number, e.g. 1500.75."],
                "max_amount": ["Enter an amount with at most 2 decimal places."],
                "start": ["Enter a date (2024-05-31) or a date and time (2024-05-31 14:30), in UTC."],
            },
        )
        self.assertContains(
            response,
            '<ul class="errorlist" id="id_start_error">'
            "<li>Enter a date (2024-05-31) or a date and time (2024-05-31 14:30), in UTC.</li></ul>",
            status_code=400,
            html=True,
        )

    def test_missing_bounds_are_required(self):
        response = self.htmx_get(URL, {"min_amount": "", "max_amount": "", "start": ""})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            response.context["form"].errors,
            {"min_amount": ["This field is required."], "max_amount": ["This field is required."]},
        )
        self.assertContains(response, '<div id="range-report">', status_code=400)

    def test_start_after_the_end_is_refused(self):
        response = self.client.get(
            URL, {"min_amount": "0", "max_amount": "1", "start": "2024-02-01T00:00", "time_period": "2024-01-01T00:00"}
        )
        self.assertEqual(response.context["form"].errors, {"start": ["“From” must not be after “Up to”."]})
        self.assertContains(response, "<li>“From” must not be after “Up to”.</li>", status_code=400, html=True)
        self.assertNotContains(response, "time_period.", status_code=400)

    def test_a_date_alone_is_the_start_or_the_end_of_that_day(self):
        store(
            record(customer_id=1, name="before", transaction_amount="100.00", transaction_datetime="2024-04-30T23:59:59Z"),
            record(customer_id=2, name="first", transaction_amount="100.00", transaction_datetime="2024-05-01T00:00:00Z"),
            record(customer_id=3, name="last", transaction_amount="100.00", transaction_datetime="2024-05-31T23:59:59.5Z"),
            record(customer_id=4, name="after", transaction_amount="100.00", transaction_datetime="2024-06-01T00:00:00Z"),
        )
        response = self.client.get(
            URL, {"min_amount": "0", "max_amount": "1000", "start": "2024-05-01", "time_period": "2024-05-31"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(sorted(row["customer_id"] for row in response.context["page"]), [2, 3])
        self.assertContains(response, "2 customers match.")
        # The dates go back into the inputs as typed, in text inputs a browser sends as typed
        # (a datetime-local input half filled is sent empty).
        self.assertContains(response, 'type="text" name="start" value="2024-05-01"')
        self.assertContains(response, 'type="text" name="time_period" value="2024-05-31"')
        self.assertNotContains(response, 'type="datetime-local"')

    def test_a_date_and_time_with_a_space_is_read_too(self):
        store(record(customer_id=1, transaction_amount="100.00", transaction_datetime="2024-05-01T10:00:00Z"))
        response = self.client.get(
            URL, {"min_amount": "0", "max_amount": "1000", "start": "2024-05-01 10:00", "time_period": "2024-05-01 10:00"}
        )
        self.assertContains(response, "1 customer matches.")

    def test_a_window_that_cant_be_read_is_refused_next_to_its_field(self):
        for start, end in (("2024-05", ""), ("", "2024-02-30"), ("", "31/05/2024")):
            with self.subTest(start=start, end=end):
                response = self.client.get(URL, {"min_amount": "0", "max_amount": "1", "start": start, "time_period": end})
                self.assertEqual(response.status_code, 400)
                field = "start" if start else "time_period"
                self.assertContains(
                    response,
                    f'<ul class="errorlist" id="id_{field}_error">'
                    "<li>Enter a date (2024-05-31) or a date and time (2024-05-31 14:30), in UTC.</li></ul>",
                    status_code=400,
                    html=True,
                )
                self.assertNotIn("summary", response.context)

    def test_without_a_window_the_empty_answer_does_not_mention_one(self):
        store(record(customer_id=1, transaction_amount="10.00"))
        response = self.client.get(URL, {"min_amount": "5000", "max_amount": "9000", "start": "", "time_period": ""})
        self.assertContains(response, "No customer's total lies between ₹5,000.00 and ₹9,000.00.")
        self.assertNotContains(response, "in this window")

    def make_api_user(self):
        from tests.support import make_user

        return make_user("api")


class RangeReportExportTests(DashboardTestMixin, TestCase):
    def test_export_streams_every_match_not_just_a_page(self):
        many_customers(120)
        response = self.client.get(URL + "export.csv", {"min_amount": "15", "max_amount": "100000", "page": "2"})
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.streaming)
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="range-15-100000.csv"')
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(rows[0], ["customer_id", "name", "total_transaction_amount"])
        self.assertEqual(len(rows), 1 + 119)
        self.assertEqual(rows[1], ["120", "customer 120", "1200.00"])
        self.assertEqual(rows[-1], ["2", "customer 2", "20.00"])

    def test_export_is_the_apis_whole_answer_as_csv_for_all_time_and_a_window(self):
        from transactions.models import Customer

        many_customers(30)
        store(record(customer_id=31, name="later", transaction_amount="0.01", transaction_datetime="2025-01-01T00:00:00Z"))
        # Names a CSV must quote (a stored name may hold anything: ingest folds whitespace, a data fix may not).
        for customer_id, name in ((3, 'Iyer, "Ash"'), (4, "two\nlines"), (5, " spaced ")):
            Customer.objects.filter(pk=customer_id).update(name=name)
        api = token_client(self.make_api_user())
        for window in ({}, {"time_period": "2024-12-31T00:00:00Z"}):
            with self.subTest(window=window):
                query = {"min_amount": "20", "max_amount": "250.5", **window}
                answer = api.post("/api/query-transaction-range", query, format="json")
                expected = [
                    [str(row["customer_id"]), row["name"], str(row["total_transaction_amount"])]
                    for row in json.loads(b"".join(answer.streaming_content), parse_float=Decimal)
                ]
                response = self.client.get(URL + "export.csv", query)
                rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode(), newline="")))
                self.assertEqual(rows[0], ["customer_id", "name", "total_transaction_amount"])
                self.assertEqual(rows[1:], expected)
                self.assertEqual(len(expected), 24)  # customers 2..25: 20.00 .. 250.00
                self.assertIn(["4", "two\nlines", "40.00"], rows)
                self.assertIn(["3", 'Iyer, "Ash"', "30.00"], rows)

    def test_export_of_a_state_totals_only_the_transactions_there(self):
        store(
            record(customer_id=1, name="a", transaction_amount="100.00", state="Delhi", pincode="110001"),
            record(customer_id=1, name="a", transaction_amount="50.00", state="Punjab", pincode="141001",
                   transaction_datetime="2024-02-01T00:00:00Z"),
            record(customer_id=2, name="b", transaction_amount="70.00", state="Punjab", pincode="141001"),
        )
        for window in ({}, {"start": "2024-01-01"}):
            with self.subTest(window=window):
                response = self.client.get(URL + "export.csv", {"min_amount": "0", "max_amount": "1000", "state": "punjab", **window})
                rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
                self.assertEqual(rows, [["customer_id", "name", "total_transaction_amount"], ["2", "b", "70.00"], ["1", "a", "50.00"]])

    def test_an_export_without_matches_is_the_header_alone(self):
        store(record(customer_id=1, transaction_amount="10.00"))
        response = self.client.get(URL + "export.csv", {"min_amount": "11", "max_amount": "20"})
        self.assertEqual(b"".join(response.streaming_content), b"customer_id,name,total_transaction_amount\n")

    def make_api_user(self):
        return make_user("api")

    def test_invalid_export_goes_back_to_the_form(self):
        response = self.client.get(URL + "export.csv", {"min_amount": "9", "max_amount": "1"})
        self.assertRedirects(response, URL + "?min_amount=9&max_amount=1", fetch_redirect_response=False)

    def test_export_needs_the_view_permission(self):
        client = logged_in_client("nope", permissions=())
        self.assertEqual(client.get(URL + "export.csv", {"min_amount": "0", "max_amount": "1"}).status_code, 403)


def histogram_of(totals: list[Decimal], buckets: int = 10) -> tuple[Decimal, Decimal, list[int]]:
    """The page's histogram rule, applied to the API's totals by a plain pass over them.

    [lowest, highest] in `buckets` bands of equal width rounded down to the cent (no band
    narrower than a cent), each including its low edge, the last also the highest total.
    """
    lowest, highest = min(totals), max(totals)
    buckets = max(1, min(buckets, int((highest - lowest) / Decimal("0.01"))))
    width = ((highest - lowest) / buckets).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    edges = [lowest + width * i for i in range(buckets)] + [highest]
    counts = [0] * buckets
    for amount in totals:
        for i in range(buckets):
            if edges[i] <= amount and (amount < edges[i + 1] or (i == buckets - 1 and amount <= highest)):
                counts[i] += 1
                break
    return lowest, highest, counts


class RangeReportAgreesWithTheApiTests(DashboardTestMixin, TestCase):
    """Count, every page and the histogram equal the API's answer to the same query."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        records = list(generate_records(rows=1_500, customers=180, seed=31))
        for start in range(0, len(records), 500):
            store(*records[start : start + 500])
        cls.api_user = make_user("api")

    def setUp(self):
        super().setUp()
        self.api = token_client(self.api_user)

    def api_answer(self, query: dict) -> tuple[int, list[tuple[int, str, Decimal]]]:
        response = self.api.post("/api/query-transaction-range", query, format="json")
        self.assertEqual(response.status_code, 200)
        rows = json.loads(b"".join(response.streaming_content), parse_float=Decimal)
        return int(response["X-Total-Count"]), [
            (row["customer_id"], row["name"], Decimal(row["total_transaction_amount"]).quantize(Decimal("0.01")))
            for row in rows
        ]

    def page_answer(self, query: dict):
        first = self.client.get(URL, query)
        self.assertEqual(first.status_code, 200)
        rows = []
        for number in first.context["page"].paginator.page_range:
            page = self.client.get(URL, {**query, "page": number}).context["page"]
            rows += [(row["customer_id"], row["name"], row["total_transaction_amount"]) for row in page]
        return first.context["summary"], first.context["page"].paginator.count, rows

    def assertPageAgreesWithApi(self, query: dict, *, at_least: int):
        """The page answers as the API does; returns the page's summary."""
        count, api_rows = self.api_answer(query)
        self.assertGreaterEqual(count, at_least)
        summary, page_count, page_rows = self.page_answer(query)
        self.assertEqual(page_rows, api_rows)
        self.assertEqual((summary.customers, page_count), (count, count))
        if count:
            lowest, highest, counts = histogram_of([total for _, _, total in api_rows])
            self.assertEqual((summary.lowest, summary.highest), (lowest, highest))
            self.assertEqual([bucket.customers for bucket in summary.buckets], counts)
        else:
            self.assertEqual((summary.lowest, summary.highest, summary.buckets), (None, None, []))
        return summary

    def bounds_of(self, query: dict) -> dict:
        """min/max that cut the query's answer about in thirds, to test a band, not everything."""
        _, rows = self.api_answer({**query, "min_amount": 0, "max_amount": 10**11})
        return {"min_amount": str(rows[len(rows) * 2 // 3][2]), "max_amount": str(rows[len(rows) // 3][2])}

    def test_all_time(self):
        self.assertPageAgreesWithApi({"min_amount": "0", "max_amount": "100000000000"}, at_least=150)
        self.assertPageAgreesWithApi(self.bounds_of({}), at_least=40)

    def test_a_window_ending_mid_way(self):
        window = {"time_period": "2024-06-30T23:59:59"}
        self.assertPageAgreesWithApi({**window, "min_amount": "0", "max_amount": "100000000000"}, at_least=100)
        self.assertPageAgreesWithApi({**window, **self.bounds_of(window)}, at_least=40)

    def test_a_window_with_a_start_and_no_end(self):
        window = {"start": "2025-01-01T00:00:00"}
        self.assertPageAgreesWithApi({**window, **self.bounds_of(window)}, at_least=20)

    def test_bounds_are_inclusive_and_one_total_is_one_band(self):
        window = {"start": "2024-01-01T00:00:00", "time_period": "2024-12-31T23:59:59"}
        _, rows = self.api_answer({**window, "min_amount": 0, "max_amount": 10**11})
        total = str(rows[10][2])
        summary = self.assertPageAgreesWithApi({**window, "min_amount": total, "max_amount": total}, at_least=1)
        self.assertEqual([(b.low, b.high) for b in summary.buckets], [(Decimal(total), Decimal(total))])

    def test_no_match_in_a_window(self):
        self.assertPageAgreesWithApi(
            {"time_period": "2024-06-30T23:59:59", "min_amount": "100000000000", "max_amount": "100000000000"},
            at_least=0,
        )


class RangeReportCacheTests(DashboardTestMixin, TestCase):
    """A windowed report's totals are summed once; pages after the first read them back."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        many_customers(120)  # all on 2024-05-01
        store(
            record(customer_id=500, name="earlier", transaction_amount="700.00", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=500, name="later", transaction_amount="800.00", transaction_datetime="2024-09-01T00:00:00Z"),
        )

    def sums_run_by(self, query: dict) -> int:
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(URL, query)
        self.assertEqual(response.status_code, 200)
        # Sums over the transactions themselves; the state picker's per-pincode figures are a
        # few hundred summary rows, read on every page as the top customers' picker reads them.
        transactions = Transaction._meta.db_table.upper()
        return sum(
            "SUM(" in q["sql"].upper() and f"FROM {transactions}" in q["sql"].upper().replace('"', "").replace("`", "")
            for q in queries.captured_queries
        )

    def test_turning_the_pages_of_a_window_sums_it_once(self):
        # No end: the window runs "until now", a different instant on every request.
        query = {"min_amount": "0", "max_amount": "100000", "start": "2024-05-01T00:00:00"}
        self.assertEqual(self.client.get(URL, query).context["summary"].customers, 121)
        clear_caches()
        self.assertEqual(self.sums_run_by(query), 1)
        self.assertEqual(self.sums_run_by({**query, "page": "2"}), 0)
        self.assertEqual(self.sums_run_by({**query, "page": "3"}), 0)

    def test_a_new_transaction_shows_at_once(self):
        query = {"min_amount": "0", "max_amount": "100000", "time_period": "2024-06-30T00:00:00"}
        self.assertEqual(self.client.get(URL, query).context["summary"].customers, 121)

        store(record(customer_id=501, name="new", transaction_amount="3.00", transaction_datetime="2024-01-02T00:00:00Z"))

        response = self.client.get(URL, {**query, "page": "3"})
        self.assertEqual(response.context["summary"].customers, 122)
        self.assertEqual([row["customer_id"] for row in response.context["page"]], [*range(21, 0, -1), 501])


class KeptResultsTests(DashboardTestMixin, TestCase):
    """A report page's results are written once per query and data (``views._kept_fragments``);
    the form around them, and the save-as-segment form with its CSRF token, every time."""

    WINDOW = {"min_amount": "0", "max_amount": "500", "time_period": "2024-12-31T00:00:00"}

    def results_of(self, response) -> str:
        """The results section, its CSRF token left out (masked anew for every response)."""
        html = response.content.decode()
        section = html[html.index('<section id="range-results"'):html.index("</section>", html.index('id="range-results"'))]
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", section)

    def test_the_same_query_reads_no_report_again_until_new_data_or_a_corrected_name(self):
        many_customers(3)
        first = self.client.get(URL, self.WINDOW)
        with CaptureQueriesContext(connection) as queries:
            again = self.client.get(URL, self.WINDOW)
        self.assertEqual(self.results_of(again), self.results_of(first))
        self.assertFalse([q for q in queries.captured_queries if "transactions_customer" in q["sql"]])
        self.assertNotIn("summary", again.context)  # written from what was kept

        store(record(customer_id=4, name="newcomer", transaction_amount="5.00", transaction_datetime="2024-05-01T12:00:00Z"))
        self.assertContains(self.client.get(URL, self.WINDOW), "newcomer")

        customer = Customer.objects.get(pk=2)
        customer.name = "corrected name"
        services.save_corrected_customer(customer=customer)
        page = self.client.get(URL, self.WINDOW)
        self.assertContains(page, "corrected name")
        self.assertEqual(page.context["summary"].customers, 4)

    def test_a_kept_page_is_the_page_written_afresh_and_writes_neither_form_again(self):
        many_customers(3)
        for query in (self.WINDOW, {**self.WINDOW, "state": "Punjab", "sort": "name"}, {"min_amount": "0", "max_amount": "9", "period": "last-30-days"}):
            with self.subTest(query=query):
                first = self.client.get(URL, query)
                again = self.client.get(URL, query)
                names = [template.name for template in again.templates]
                self.assertIn("web/reports/_range_form.html", [template.name for template in first.templates])
                self.assertNotIn("web/reports/_range_form.html", names)
                self.assertNotIn("web/segments/_segment_fields.html", names)
                self.assertEqual(self.without_tokens(again), self.without_tokens(first))
                self.assertContains(again, 'name="csrfmiddlewaretoken"', count=2)  # log out, save as segment
                self.assertContains(again, f'name="min_amount" value="{query["min_amount"]}"', count=2)

    def test_an_invalid_query_keeps_nothing_and_shows_its_errors_each_time(self):
        for _ in range(2):
            response = self.client.get(URL, {"min_amount": "x", "max_amount": "5"})
            self.assertEqual(response.status_code, 400)
            self.assertIn("web/reports/_range_form.html", [template.name for template in response.templates])
            self.assertContains(response, 'value="x"', status_code=400)

    @staticmethod
    def without_tokens(response) -> str:
        html = response.content.decode()
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
        return re.sub(r'"X-CSRFToken": "[^"]+"', "", html)

    def test_another_query_string_or_page_is_written_for_itself(self):
        many_customers(60)
        query = {"min_amount": "0", "max_amount": "1000"}
        first, second = self.client.get(URL, query), self.client.get(URL, {**query, "page": "2"})
        self.assertContains(first, 'data-customer-id="60"')
        self.assertNotContains(second, 'data-customer-id="60"')
        self.assertContains(second, 'data-customer-id="10"')
        by_name = self.client.get(URL, {**query, "sort": "name"})
        self.assertContains(by_name, 'aria-sort="ascending"')
        self.assertNotContains(first, 'aria-sort="ascending"')

    def test_each_session_gets_its_own_csrf_token_in_the_kept_page(self):
        many_customers(3)
        self.client.get(URL, self.WINDOW)  # written once, by the first analyst
        other = Client(enforce_csrf_checks=True)
        other.force_login(make_user("second-analyst", permissions=("view_transaction",)))
        page = other.get(URL, self.WINDOW).content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        saved = other.post("/segments/new/", {**self.WINDOW, "name": "kept", "csrfmiddlewaretoken": token})
        self.assertEqual(saved.status_code, 302, saved.content[:300])
