"""POST /api/query-transaction-range, end to end: every test ingests its data through the API.

The report has two paths: a window holding every stored transaction reads the customers'
running totals, any other window sums the transactions in SQL. The scenarios in
``RangeReportScenarios`` run once on each path, with the same query and the same expected
answer; the windowed run adds a transaction outside the window that would change the answer
if it leaked in.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal

from django.core.cache import caches
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext

from tests.support import ApiClientMixin, ReportPartsTestCase, record

# Every scenario query ends its window here; only the windowed run stores anything later.
WINDOW_END = "8999-12-31T23:59:59Z"


def body_of(response) -> bytes:
    """The whole body, whether the view streamed it (no limit) or not; may be called again."""
    if response.streaming:
        body = b"".join(response.streaming_content)
        response.streaming_content = [body]  # a stream is read once; keep it for the next call
        return body
    return response.content


def answer_of(response):
    """The JSON body with every non-integer number as an exact Decimal."""
    return json.loads(body_of(response), parse_float=Decimal)


def customer_total(customer_id: int, name: str, total: str) -> dict:
    return {"customer_id": customer_id, "name": name, "total_transaction_amount": Decimal(total)}


class RangeReportTestCase(ApiClientMixin, TestCase):
    def ingest_batch(self, records: list[dict]) -> None:
        response = self.ingest(records)
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(json.loads(response.content)["created"], len(records), response.content)

    def assertReport(self, response, expected: list[dict], *, total_count: int | None = None) -> None:
        """The answer is exactly `expected`, with X-Total-Count = all matches (default: len)."""
        self.assertEqual(response.status_code, 200, body_of(response))
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(answer_of(response), expected)
        self.assertEqual(response["X-Total-Count"], str(len(expected) if total_count is None else total_count))


class RangeReportScenarios:
    """Scenarios run on both paths; subclasses set up which path a WINDOW_END query takes."""

    sums_transactions_in_sql: bool

    def query(self, **body) -> dict:
        return {"time_period": WINDOW_END, **body}

    def test_query_takes_the_path_under_test(self):
        self.ingest_batch([record(customer_id=1, transaction_amount="10.00")])
        with CaptureQueriesContext(connection) as queries:
            response = self.range_query(self.query(min_amount=0, max_amount=100))
            self.assertReport(response, [customer_total(1, "amit", "10.00")])
        summed = any("SUM(" in query["sql"].upper() for query in queries.captured_queries)
        self.assertEqual(summed, self.sums_transactions_in_sql)

    def test_totals_are_summed_per_customer_not_per_row(self):
        self.ingest_batch(
            [
                record(customer_id=1, name="asha", transaction_amount="100.10", transaction_datetime="2024-01-01T10:00:00Z"),
                record(customer_id=2, name="bala", transaction_amount="50.00", transaction_datetime="2024-01-02T10:00:00Z"),
                record(customer_id=1, name="asha", transaction_amount="200.20", transaction_datetime="2024-01-03T10:00:00Z"),
                record(customer_id=1, name="asha", transaction_amount="300.30", transaction_datetime="2024-01-04T10:00:00Z"),
            ]
        )

        response = self.range_query(self.query(min_amount=0, max_amount=1000))

        self.assertReport(response, [customer_total(1, "asha", "600.60"), customer_total(2, "bala", "50.00")])

    def test_a_customer_is_included_only_when_the_total_not_a_single_row_is_in_range(self):
        # Each row of customer 1 lies in [150, 250] but the total (300) does not; customer 2's
        # rows lie outside it but its total (200) is inside.
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="150.00", transaction_datetime="2024-01-01T10:00:00Z"),
                record(customer_id=1, transaction_amount="150.00", transaction_datetime="2024-01-02T10:00:00Z"),
                record(customer_id=2, name="bala", transaction_amount="100.00", transaction_datetime="2024-01-01T10:00:00Z"),
                record(customer_id=2, name="bala", transaction_amount="100.00", transaction_datetime="2024-01-02T10:00:00Z"),
            ]
        )

        response = self.range_query(self.query(min_amount=150, max_amount=250))

        self.assertReport(response, [customer_total(2, "bala", "200.00")])

    def test_both_bounds_are_inclusive_and_a_cent_outside_is_excluded(self):
        self.ingest_batch(
            [
                record(customer_id=10, name="at-min", transaction_amount="100.00", transaction_datetime="2024-02-01T00:00:00Z"),
                record(customer_id=11, name="below-min", transaction_amount="99.99", transaction_datetime="2024-02-01T00:00:00Z"),
                record(customer_id=12, name="at-max", transaction_amount="120.00", transaction_datetime="2024-02-01T00:00:00Z"),
                record(customer_id=12, name="at-max", transaction_amount="80.00", transaction_datetime="2024-02-02T00:00:00Z"),
                record(customer_id=13, name="above-max", transaction_amount="100.00", transaction_datetime="2024-02-01T00:00:00Z"),
                record(customer_id=13, name="above-max", transaction_amount="100.01", transaction_datetime="2024-02-02T00:00:00Z"),
                record(customer_id=14, name="inside", transaction_amount="150.00", transaction_datetime="2024-02-01T00:00:00Z"),
            ]
        )

        response = self.range_query(self.query(min_amount=100, max_amount=200))

        self.assertReport(
            response,
            [
                customer_total(12, "at-max", "200.00"),
                customer_total(14, "inside", "150.00"),
                customer_total(10, "at-min", "100.00"),
            ],
        )

    def test_equal_bounds_match_exactly_that_total(self):
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="99.99", transaction_datetime="2024-02-01T00:00:00Z"),
                record(customer_id=2, name="bala", transaction_amount="100.00", transaction_datetime="2024-02-01T00:00:00Z"),
                record(customer_id=3, name="chitra", transaction_amount="100.01", transaction_datetime="2024-02-01T00:00:00Z"),
            ]
        )

        response = self.range_query(self.query(min_amount="100.00", max_amount="100.00"))

        self.assertReport(response, [customer_total(2, "bala", "100.00")])

    def test_ordered_by_total_descending_then_customer_id_ascending(self):
        # Ingested out of order; 9.99 < 10.00 < 1000.00 checks the order is numeric, not textual.
        self.ingest_batch(
            [
                record(customer_id=30, name="c30", transaction_amount="250.00", transaction_datetime="2024-03-01T00:00:00Z"),
                record(customer_id=5, name="c5", transaction_amount="9.99", transaction_datetime="2024-03-01T00:00:00Z"),
                record(customer_id=20, name="c20", transaction_amount="700.00", transaction_datetime="2024-03-01T00:00:00Z"),
                record(customer_id=10, name="c10", transaction_amount="500.00", transaction_datetime="2024-03-01T00:00:00Z"),
                record(customer_id=40, name="c40", transaction_amount="10.00", transaction_datetime="2024-03-01T00:00:00Z"),
                record(customer_id=30, name="c30", transaction_amount="250.00", transaction_datetime="2024-03-02T00:00:00Z"),
                record(customer_id=6, name="c6", transaction_amount="1000.00", transaction_datetime="2024-03-01T00:00:00Z"),
            ]
        )

        response = self.range_query(self.query(min_amount=0, max_amount=5000))

        self.assertReport(
            response,
            [
                customer_total(6, "c6", "1000.00"),
                customer_total(20, "c20", "700.00"),
                customer_total(10, "c10", "500.00"),
                customer_total(30, "c30", "500.00"),
                customer_total(40, "c40", "10.00"),
                customer_total(5, "c5", "9.99"),
            ],
        )

    def test_answer_is_a_json_array_of_exact_decimal_numbers(self):
        self.ingest_batch(
            [
                record(customer_id=1, name="Zoë", transaction_amount="0.10", transaction_datetime="2024-04-01T00:00:00Z"),
                record(customer_id=1, name="Zoë", transaction_amount="0.20", transaction_datetime="2024-04-02T00:00:00Z"),
                record(customer_id=2, name="round", transaction_amount=1500, transaction_datetime="2024-04-01T00:00:00Z"),
                record(customer_id=3, name="big", transaction_amount="999999999999.99", transaction_datetime="2024-04-01T00:00:00Z"),
                record(customer_id=3, name="big", transaction_amount="999999999999.99", transaction_datetime="2024-04-02T00:00:00Z"),
            ]
        )

        response = self.range_query(self.query(min_amount=0, max_amount=2_000_000_000_000))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response).decode("utf-8"),
            "["
            '{"customer_id":3,"name":"big","total_transaction_amount":1999999999999.98},'
            '{"customer_id":2,"name":"round","total_transaction_amount":1500.00},'
            '{"customer_id":1,"name":"Zoë","total_transaction_amount":0.30}'
            "]",
        )

    def test_name_is_that_of_the_customers_most_recent_transaction(self):
        self.ingest_batch(
            [
                record(customer_id=7, name="Ravi Kumar", transaction_amount="10.00", transaction_datetime="2024-05-01T00:00:00Z"),
                record(customer_id=8, name="Meena", transaction_amount="5.00", transaction_datetime="2024-05-01T00:00:00Z"),
            ]
        )
        # An older transaction arriving later does not rename the customer...
        self.ingest_batch(
            [record(customer_id=7, name="R. Kumar", transaction_amount="20.00", transaction_datetime="2024-01-01T00:00:00Z")]
        )
        self.assertReport(
            self.range_query(self.query(min_amount=0, max_amount=100)),
            [customer_total(7, "Ravi Kumar", "30.00"), customer_total(8, "Meena", "5.00")],
        )

        # ...a newer one does.
        self.ingest_batch(
            [record(customer_id=7, name="Ravi K.", transaction_amount="1.00", transaction_datetime="2024-06-01T00:00:00Z")]
        )
        self.assertReport(
            self.range_query(self.query(min_amount=0, max_amount=100)),
            [customer_total(7, "Ravi K.", "31.00"), customer_total(8, "Meena", "5.00")],
        )

    def test_total_count_header_counts_every_match_before_paging(self):
        self.ingest_batch(
            [
                record(customer_id=customer_id, name=f"c{customer_id}", transaction_amount=f"{amount}.00")
                for customer_id, amount in [(1, 500), (2, 400), (3, 300), (4, 200), (5, 100)]
            ]
        )

        response = self.range_query(self.query(min_amount=150, max_amount=450, limit=1))

        self.assertReport(response, [customer_total(2, "c2", "400.00")], total_count=3)

    def test_limit_and_offset_page_through_the_matches_in_order(self):
        self.ingest_batch(
            [
                record(customer_id=customer_id, name=f"c{customer_id}", transaction_amount=f"{amount}.00")
                for customer_id, amount in [(3, 300), (1, 500), (5, 100), (2, 400), (4, 200)]
            ]
        )
        everyone = [
            customer_total(1, "c1", "500.00"),
            customer_total(2, "c2", "400.00"),
            customer_total(3, "c3", "300.00"),
            customer_total(4, "c4", "200.00"),
            customer_total(5, "c5", "100.00"),
        ]

        for offset, expected in [(0, everyone[0:2]), (2, everyone[2:4]), (4, everyone[4:]), (5, [])]:
            with self.subTest(offset=offset):
                response = self.range_query(self.query(min_amount=0, max_amount=1000, limit=2, offset=offset))
                self.assertFalse(response.streaming)
                self.assertReport(response, expected, total_count=5)

    def test_without_limit_every_match_from_offset_is_streamed(self):
        self.ingest_batch(
            [
                record(customer_id=customer_id, name=f"c{customer_id}", transaction_amount=f"{amount}.00")
                for customer_id, amount in [(1, 500), (2, 400), (3, 300), (4, 200), (5, 100)]
            ]
        )

        everything = self.range_query(self.query(min_amount=0, max_amount=1000))
        from_offset = self.range_query(self.query(min_amount=0, max_amount=1000, offset=3))

        self.assertTrue(everything.streaming)
        self.assertReport(
            everything,
            [customer_total(i, f"c{i}", f"{amount}.00") for i, amount in [(1, 500), (2, 400), (3, 300), (4, 200), (5, 100)]],
        )
        self.assertTrue(from_offset.streaming)
        self.assertReport(from_offset, [customer_total(4, "c4", "200.00"), customer_total(5, "c5", "100.00")], total_count=5)

    def test_no_match_is_an_empty_array(self):
        self.ingest_batch([record(customer_id=1, transaction_amount="10.00")])

        streamed = self.range_query(self.query(min_amount=11, max_amount=20))
        paged = self.range_query(self.query(min_amount=11, max_amount=20, limit=10))

        self.assertReport(streamed, [])
        self.assertEqual(body_of(streamed), b"[]")
        self.assertReport(paged, [])
        self.assertEqual(body_of(paged), b"[]")


class AllTimeRangeReportTests(RangeReportScenarios, RangeReportTestCase):
    """Nothing is stored after WINDOW_END, so the query reads the running totals."""

    sums_transactions_in_sql = False


class WindowedRangeReportTests(RangeReportScenarios, RangeReportTestCase):
    """A transaction after WINDOW_END, in every scenario's range, forces the summing path."""

    sums_transactions_in_sql = True

    def setUp(self):
        super().setUp()
        self.ingest_batch(
            [
                record(
                    customer_id=900_001,
                    name="outside the window",
                    transaction_amount="150.00",
                    transaction_datetime="9000-01-01T00:00:00Z",
                )
            ]
        )


class RangeReportWindowTests(RangeReportTestCase):
    def test_a_windowed_query_reads_the_stored_time_span_once(self):
        self.ingest_batch([
            record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=2, transaction_amount="20.00", transaction_datetime="2024-12-01T00:00:00Z"),
        ])
        window = {"min_amount": 0, "max_amount": 100, "time_period": "2024-06-30T00:00:00Z"}
        for body in ({**window, "limit": 10}, window):
            for cold in (True, False):
                with self.subTest(body=body, cold=cold):
                    if cold:
                        caches["dashboard"].clear()
                    with CaptureQueriesContext(connection) as queries:
                        response = self.range_query(body)
                        self.assertEqual(answer_of(response), [customer_total(1, "amit", "10.00")])
                    span_reads = [q["sql"] for q in queries.captured_queries if "MIN(" in q["sql"] and "transaction_datetime" in q["sql"]]
                    self.assertEqual(len(span_reads), 1, span_reads)

    def test_time_period_is_an_inclusive_end(self):
        self.ingest_batch(
            [
                record(customer_id=1, name="at-end", transaction_amount="10.00", transaction_datetime="2024-06-30T12:00:00Z"),
                record(customer_id=2, name="after-end", transaction_amount="20.00", transaction_datetime="2024-06-30T12:00:01Z"),
                record(customer_id=1, name="at-end", transaction_amount="5.00", transaction_datetime="2024-06-30T12:00:01Z"),
            ]
        )

        response = self.range_query({"min_amount": 0, "max_amount": 100, "time_period": "2024-06-30T12:00:00Z"})

        self.assertReport(response, [customer_total(1, "at-end", "10.00")])

    def test_time_period_with_an_offset_is_taken_in_utc(self):
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-06-30T12:00:00Z"),
                record(customer_id=2, name="later", transaction_amount="20.00", transaction_datetime="2024-06-30T12:00:01Z"),
            ]
        )

        # 17:30 at +05:30 is 12:00 UTC: the first transaction is at the end, the second after it.
        response = self.range_query({"min_amount": 0, "max_amount": 100, "time_period": "2024-06-30T17:30:00+05:30"})

        self.assertReport(response, [customer_total(1, "amit", "10.00")])

    def test_time_period_without_an_offset_is_taken_as_utc(self):
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-06-30T17:30:00+05:30"),
                record(customer_id=2, name="later", transaction_amount="20.00", transaction_datetime="2024-06-30T17:30:00Z"),
            ]
        )

        response = self.range_query({"min_amount": 0, "max_amount": 100, "time_period": "2024-06-30T12:00:00"})

        self.assertReport(response, [customer_total(1, "amit", "10.00")])

    def test_start_is_inclusive(self):
        self.ingest_batch(
            [
                record(customer_id=1, name="at-start", transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
                record(customer_id=2, name="before-start", transaction_amount="20.00", transaction_datetime="2023-12-31T23:59:59Z"),
                record(customer_id=1, name="at-start", transaction_amount="40.00", transaction_datetime="2023-12-31T23:59:59Z"),
                record(customer_id=3, name="inside", transaction_amount="30.00", transaction_datetime="2024-03-01T00:00:00Z"),
            ]
        )

        response = self.range_query(
            {"min_amount": 0, "max_amount": 100, "start": "2024-01-01T00:00:00Z", "time_period": "2025-01-01T00:00:00Z"}
        )

        self.assertReport(response, [customer_total(3, "inside", "30.00"), customer_total(1, "at-start", "10.00")])

    def test_start_equal_to_time_period_counts_transactions_at_that_instant(self):
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
                record(customer_id=2, name="other", transaction_amount="20.00", transaction_datetime="2024-01-01T00:00:01Z"),
            ]
        )

        response = self.range_query(
            {"min_amount": 0, "max_amount": 100, "start": "2024-01-01T00:00:00Z", "time_period": "2024-01-01T00:00:00Z"}
        )

        self.assertReport(response, [customer_total(1, "amit", "10.00")])

    def test_time_period_defaults_to_now(self):
        self.ingest_batch(
            [
                record(customer_id=1, name="past", transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
                record(customer_id=2, name="future", transaction_amount="20.00", transaction_datetime="2999-01-01T00:00:00Z"),
                record(customer_id=1, name="past", transaction_amount="5.00", transaction_datetime="2999-01-01T00:00:00Z"),
            ]
        )

        without_end = self.range_query({"min_amount": 0, "max_amount": 100})
        until_3000 = self.range_query({"min_amount": 0, "max_amount": 100, "time_period": "3000-01-01T00:00:00Z"})

        self.assertReport(without_end, [customer_total(1, "past", "10.00")])
        self.assertReport(until_3000, [customer_total(2, "future", "20.00"), customer_total(1, "past", "15.00")])

    def test_window_ending_and_starting_exactly_at_the_stored_extremes_counts_them(self):
        # [oldest, newest] covers everything, so this is the running-totals path; its boundary
        # test must be inclusive like the windowed one.
        self.ingest_batch(
            [
                record(customer_id=1, name="oldest", transaction_amount="10.00", transaction_datetime="2024-01-01T00:00:00Z"),
                record(customer_id=2, name="newest", transaction_amount="20.00", transaction_datetime="2024-12-31T00:00:00Z"),
                record(customer_id=1, name="oldest", transaction_amount="1.00", transaction_datetime="2024-06-01T00:00:00Z"),
            ]
        )

        response = self.range_query(
            {"min_amount": 0, "max_amount": 100, "start": "2024-01-01T00:00:00Z", "time_period": "2024-12-31T00:00:00Z"}
        )

        self.assertReport(response, [customer_total(2, "newest", "20.00"), customer_total(1, "oldest", "11.00")])

    def test_window_sums_only_the_customers_transactions_inside_it(self):
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="100.00", transaction_datetime="2024-01-15T00:00:00Z"),
                record(customer_id=1, transaction_amount="200.00", transaction_datetime="2024-02-15T00:00:00Z"),
                record(customer_id=1, transaction_amount="400.00", transaction_datetime="2024-03-15T00:00:00Z"),
            ]
        )

        february = self.range_query(
            {"min_amount": 0, "max_amount": 1000, "start": "2024-02-01T00:00:00Z", "time_period": "2024-02-29T23:59:59Z"}
        )
        until_february = self.range_query({"min_amount": 0, "max_amount": 1000, "time_period": "2024-02-29T23:59:59Z"})
        from_february = self.range_query(
            {"min_amount": 0, "max_amount": 1000, "start": "2024-02-01T00:00:00Z", "time_period": "2025-01-01T00:00:00Z"}
        )

        self.assertReport(february, [customer_total(1, "amit", "200.00")])
        self.assertReport(until_february, [customer_total(1, "amit", "300.00")])
        self.assertReport(from_february, [customer_total(1, "amit", "600.00")])

    def test_bounds_apply_to_the_total_inside_the_window(self):
        # All time, customer 1 holds 300 and is outside [0, 250]; within the window it holds 100.
        self.ingest_batch(
            [
                record(customer_id=1, transaction_amount="100.00", transaction_datetime="2024-01-15T00:00:00Z"),
                record(customer_id=1, transaction_amount="200.00", transaction_datetime="2024-03-15T00:00:00Z"),
            ]
        )

        response = self.range_query({"min_amount": 0, "max_amount": 250, "time_period": "2024-02-01T00:00:00Z"})

        self.assertReport(response, [customer_total(1, "amit", "100.00")])

    def test_name_comes_from_the_most_recent_transaction_even_outside_the_window(self):
        # shared/API.md: the name shown in every report is that of the customer's most recent
        # transaction, not the most recent one inside the window.
        self.ingest_batch(
            [
                record(customer_id=1, name="old name", transaction_amount="100.00", transaction_datetime="2024-01-15T00:00:00Z"),
                record(customer_id=1, name="new name", transaction_amount="200.00", transaction_datetime="2024-03-15T00:00:00Z"),
            ]
        )

        response = self.range_query({"min_amount": 0, "max_amount": 1000, "time_period": "2024-02-01T00:00:00Z"})

        self.assertReport(response, [customer_total(1, "new name", "100.00")])

    def test_window_without_transactions_is_an_empty_array(self):
        self.ingest_batch([record(customer_id=1, transaction_amount="10.00", transaction_datetime="2024-06-01T00:00:00Z")])

        response = self.range_query({"min_amount": 0, "max_amount": 100, "time_period": "2024-05-31T23:59:59Z"})

        self.assertReport(response, [])

    def test_empty_database_is_an_empty_array(self):
        response = self.range_query({"min_amount": 0, "max_amount": 100})

        self.assertReport(response, [])

    def test_running_totals_and_windowed_sums_give_the_same_answer(self):
        # Customer 9's late transaction only exists so that a window can end before it; it keeps
        # customer 9 above max_amount either way, so both windows must give the same answer.
        self.ingest_batch(
            [
                record(customer_id=4, name="d", transaction_amount="300.00", transaction_datetime="2024-01-01T00:00:00Z"),
                record(customer_id=1, name="a", transaction_amount="120.50", transaction_datetime="2024-01-02T00:00:00Z"),
                record(customer_id=1, name="a", transaction_amount="179.50", transaction_datetime="2024-01-03T00:00:00Z"),
                record(customer_id=2, name="b", transaction_amount="0.01", transaction_datetime="2024-01-04T00:00:00Z"),
                record(customer_id=3, name="c", transaction_amount="1000.01", transaction_datetime="2024-01-05T00:00:00Z"),
                record(customer_id=9, name="i", transaction_amount="2000.00", transaction_datetime="2024-01-06T00:00:00Z"),
                record(customer_id=9, name="i", transaction_amount="5000.00", transaction_datetime="2024-12-31T00:00:00Z"),
            ]
        )
        expected = [customer_total(1, "a", "300.00"), customer_total(4, "d", "300.00"), customer_total(2, "b", "0.01")]

        with CaptureQueriesContext(connection) as all_time_queries:
            all_time = self.range_query({"min_amount": 0, "max_amount": 1000, "time_period": "2024-12-31T00:00:00Z"})
            self.assertReport(all_time, expected)
        with CaptureQueriesContext(connection) as windowed_queries:
            windowed = self.range_query({"min_amount": 0, "max_amount": 1000, "time_period": "2024-12-30T23:59:59Z"})
            self.assertReport(windowed, expected)

        self.assertEqual(body_of(all_time), body_of(windowed))
        self.assertFalse(any("SUM(" in q["sql"].upper() for q in all_time_queries.captured_queries))
        self.assertTrue(any("SUM(" in q["sql"].upper() for q in windowed_queries.captured_queries))


class RangeReportValidationTests(RangeReportTestCase):
    def assertRejected(self, body, errors: dict) -> None:
        response = self.range_query(body)
        self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(response.json(), errors)
        self.assertNotIn("X-Total-Count", response)

    def test_min_above_max_is_rejected(self):
        self.assertRejected(
            {"min_amount": 200, "max_amount": 100},
            {"max_amount": ["max_amount must not be less than min_amount."]},
        )

    def test_negative_min_is_rejected(self):
        self.assertRejected(
            {"min_amount": -1, "max_amount": 100},
            {"min_amount": ["Enter an amount from 0 to 999999999999999999.99."]},
        )

    def test_missing_bounds_are_rejected(self):
        self.assertRejected({"max_amount": 100}, {"min_amount": ["This field is required."]})
        self.assertRejected({"min_amount": 0}, {"max_amount": ["This field is required."]})

    def test_a_bound_with_three_decimal_places_is_rejected_not_rounded(self):
        self.assertRejected(
            {"min_amount": 0, "max_amount": "100.005"},
            {"max_amount": ["Enter an amount with at most 2 decimal places."]},
        )
        self.assertRejected(
            {"min_amount": 1.001, "max_amount": 100},
            {"min_amount": ["Enter an amount with at most 2 decimal places."]},
        )

    def test_a_bound_that_is_not_a_number_is_rejected(self):
        self.assertRejected(
            {"min_amount": "lots", "max_amount": 100},
            {"min_amount": ["Enter an amount as a number, e.g. 1500.75."]},
        )

    def test_start_after_time_period_is_rejected(self):
        self.assertRejected(
            {"min_amount": 0, "max_amount": 100, "start": "2024-01-01T00:00:01Z", "time_period": "2024-01-01T00:00:00Z"},
            {"start": ["start must not be after time_period."]},
        )

    def test_limit_outside_1_to_10000_is_rejected(self):
        self.assertRejected(
            {"min_amount": 0, "max_amount": 100, "limit": 0},
            {"limit": ["Ensure this value is greater than or equal to 1."]},
        )
        self.assertRejected(
            {"min_amount": 0, "max_amount": 100, "limit": 10_001},
            {"limit": ["Ensure this value is less than or equal to 10000."]},
        )

    def test_negative_offset_is_rejected(self):
        self.assertRejected(
            {"min_amount": 0, "max_amount": 100, "offset": -1},
            {"offset": ["Ensure this value is greater than or equal to 0."]},
        )

    def test_a_datetime_that_is_not_iso_8601_is_rejected(self):
        message = ["Enter an ISO 8601 datetime, e.g. 2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."]
        self.assertRejected({"min_amount": 0, "max_amount": 100, "time_period": "yesterday"}, {"time_period": message})
        self.assertRejected({"min_amount": 0, "max_amount": 100, "start": "2024-02-30T00:00:00"}, {"start": message})

    def test_a_body_that_is_not_an_object_is_rejected(self):
        self.assertRejected([], {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})

    def test_the_edges_of_the_valid_ranges_are_accepted(self):
        self.ingest_batch([record(customer_id=1, transaction_amount="0.01")])

        for body in [
            {"min_amount": 0, "max_amount": 0.01, "limit": 1},
            {"min_amount": "0.01", "max_amount": "999999999999999999.99", "limit": 10_000},
        ]:
            with self.subTest(body=body):
                self.assertReport(self.range_query(body), [customer_total(1, "amit", "0.01")])


class WholeAnswerEncodingTests(RangeReportTestCase):
    """The whole answer (no limit) is written batch by batch by ``json_codec.customer_totals_json``;
    it must be byte for byte what the general encoder writes, on both paths."""

    # Quotes, a backslash, control characters, the two JavaScript line separators, and
    # characters outside ASCII and outside the BMP: what a name can hold that needs care.
    # Control characters (escaped \u00XX, in lower case), and a name spelling such an escape
    # itself; the whole answers are written by the database where it can (sql customer_total_json).
    NAMES = ['Asha "Ash" Iyer', "back\\slash", "tab\there", "line\u2028sep\u2029para", "Zoë 😀 नमस्ते", "</script>",
             "ctl\x01\x1f\x7f", "lit\\u001F"]

    def assertEncodedAsDumpsExact(self, response) -> None:
        from transactions.api.json_codec import decimal_as_json_number, dumps_exact

        answer = answer_of(response)
        expected = dumps_exact(
            [{**row, "total_transaction_amount": decimal_as_json_number(row["total_transaction_amount"])} for row in answer]
        ).encode("utf-8")
        self.assertEqual(body_of(response), expected)

    def test_names_needing_escapes_are_written_as_dumps_exact_writes_them(self):
        from transactions.models import Customer

        self.ingest_batch([
            record(customer_id=i, name=f"n{i}", transaction_amount=f"{i}0.5", transaction_datetime="2024-01-01T00:00:00Z")
            for i, name in enumerate(self.NAMES, start=1)
        ])
        # Ingest folds whitespace in names; a name stored some other way (a data fix) may hold any.
        for i, name in enumerate(self.NAMES, start=1):
            Customer.objects.filter(pk=i).update(name=name)
        expected = [customer_total(i, name, f"{i}0.50") for i, name in reversed(list(enumerate(self.NAMES, start=1)))]
        for window in ({}, {"time_period": "2024-06-30T00:00:00Z", "start": "2023-12-31T00:00:00Z"}):
            with self.subTest(window=window):
                # The windowed query's window holds every transaction: make it a real window.
                if window:
                    self.ingest_batch([record(customer_id=99, name="later", transaction_amount="1.00",
                                              transaction_datetime="2025-01-01T00:00:00Z")])
                response = self.range_query({"min_amount": 1, "max_amount": 1000, **window})
                self.assertReport(response, expected)
                self.assertEncodedAsDumpsExact(response)
                self.assertNotIn("\u2028".encode(), body_of(response))
                self.assertIn(b'"line\\u2028sep\\u2029para"', body_of(response))

    def test_an_answer_of_several_batches_is_one_array_in_order(self):
        # More customers than one batch (2,000): the batches' seams must not show.
        count = 4100
        self.ingest_batch([
            record(customer_id=i, name=f"c{i}", transaction_amount=f"{i}.{i % 100:02d}",
                   transaction_datetime="2024-01-01T00:00:00Z")
            for i in range(1, count + 1)
        ])
        expected = [customer_total(i, f"c{i}", f"{i}.{i % 100:02d}") for i in range(count, 0, -1)]
        all_time = self.range_query({"min_amount": 0, "max_amount": 100_000})
        self.assertReport(all_time, expected)
        self.assertEncodedAsDumpsExact(all_time)
        offset = self.range_query({"min_amount": 0, "max_amount": 100_000, "offset": 1999})
        self.assertReport(offset, expected[1999:], total_count=count)

        self.ingest_batch([record(customer_id=count + 1, name="later", transaction_amount="0.01",
                                  transaction_datetime="2025-01-01T00:00:00Z")])
        window = {"min_amount": 1, "max_amount": 100_000, "time_period": "2024-12-31T00:00:00Z"}
        with CaptureQueriesContext(connection) as cold:
            windowed = self.range_query(window)
            self.assertReport(windowed, expected)
        self.assertEqual(body_of(windowed), body_of(all_time))
        # Summed afresh, a whole answer reads the names with the sums; asked again, from the
        # kept sums, it reads them 2,000 customers a query: the same answer either way.
        def name_look_ups(queries):
            return [q["sql"] for q in queries.captured_queries
                    if "transactions_customer" in q["sql"] and (" IN (" in q["sql"] or " = ANY(" in q["sql"])]

        self.assertEqual(name_look_ups(cold), [])
        with CaptureQueriesContext(connection) as warm:
            again = self.range_query(window)
            self.assertReport(again, expected)
        self.assertEqual(len(name_look_ups(warm)), 3)
        self.assertEqual(body_of(again), body_of(windowed))
        page = self.range_query({**window, "offset": 2000, "limit": 3})
        self.assertReport(page, expected[2000:2003], total_count=count)
        caches["dashboard"].clear()  # summed afresh again, from an offset
        from_offset = self.range_query({**window, "offset": 1999})
        self.assertReport(from_offset, expected[1999:], total_count=count)
        self.assertEncodedAsDumpsExact(from_offset)

    def test_a_customer_whose_transactions_were_all_deleted_matches_no_range(self):
        from transactions import services
        from transactions.models import Customer, Transaction

        self.ingest_batch([
            record(customer_id=1, name="kept", transaction_amount="5.00"),
            record(customer_id=2, name="emptied", transaction_amount="7.00"),
        ])
        Transaction.objects.filter(customer_id=2).delete()
        services.recompute_customer_totals(customer_ids=[2])
        self.assertEqual(Customer.objects.get(pk=2).total_amount, Decimal("0.00"))

        for min_amount in (0, Decimal("0.01")):
            with self.subTest(min_amount=min_amount):
                self.assertReport(
                    self.range_query({"min_amount": min_amount, "max_amount": 10}), [customer_total(1, "kept", "5.00")]
                )
        self.assertReport(self.range_query({"min_amount": 0, "max_amount": 0}), [])


class CustomerTotalsJsonTests(TestCase):
    """The writer itself: batches of any size, empty ones included, make one array."""

    def test_batches_join_into_one_array_and_empty_batches_add_nothing(self):
        from transactions.api.json_codec import customer_totals_json

        batches = [[], [(1, "a", Decimal("1.00"))], [], [(2, 'b"', Decimal("0.50")), (3, "c", Decimal("1500.00"))], []]
        self.assertEqual(
            b"".join(customer_totals_json(batches)),
            b'[{"customer_id":1,"name":"a","total_transaction_amount":1.00},'
            b'{"customer_id":2,"name":"b\\"","total_transaction_amount":0.50},'
            b'{"customer_id":3,"name":"c","total_transaction_amount":1500.00}]',
        )
        self.assertEqual(b"".join(customer_totals_json([])), b"[]")
        self.assertEqual(b"".join(customer_totals_json([[]])), b"[]")

    def test_totals_given_in_cents_are_written_as_their_decimals_are(self):
        # A window's whole answer is written from the kept cents (rows_in_cents_json): the same
        # bytes as the (customer_id, name, Decimal) rows, for every number of cents, a name that
        # needs escapes, and the general path a negative total would take.
        from transactions.api.json_codec import customer_totals_json, rows_in_cents_json

        names = ["a", 'q"\\', "line\u2028sep", "ctl\x01"]
        for cents in ([0, 5, 10, 99], [100, 101, 1999, 123456789012], [250, -1, -150, 7]):
            with self.subTest(cents=cents):
                ids = list(range(1, len(cents) + 1))
                as_decimals = [(i, n, Decimal(c).scaleb(-2)) for i, n, c in zip(ids, names, cents)]
                self.assertEqual(
                    b"".join(customer_totals_json([rows_in_cents_json(ids, names, cents)])),
                    b"".join(customer_totals_json([as_decimals])),
                )
        self.assertIn(b'"total_transaction_amount":0.05}', b"".join(customer_totals_json([rows_in_cents_json([1, 2], ["a", "b"], [5, 1])])))
        self.assertIn(b'"total_transaction_amount":-1.50}', b"".join(customer_totals_json([rows_in_cents_json([1, 2], ["a", "b"], [-150, 1])])))


    def test_totals_in_cents_as_text_are_their_decimals_text(self):
        from transactions.api.json_codec import cents_as_text

        for cents in ([0, 5, 10, 99, 100, 101, 123456789012], [7, -1, -150]):
            with self.subTest(cents=cents):
                self.assertEqual(cents_as_text(cents), [str(Decimal(c).scaleb(-2)) for c in cents])
        self.assertEqual(cents_as_text([5, 150000]), ["0.05", "1500.00"])


# A part's statement: the window's rows of a range of customers ("customer_id" >= ... on PostgreSQL).
CUSTOMER_RANGE = re.compile(r"customer_id\W{0,2} >= ")


class WindowSummedInPartsTests(ReportPartsTestCase):
    """A window's sums read in customer ranges at once, on connections of their own
    (``selectors._summed_in_parts``): the same answer as one statement, whatever the split."""

    def setUp(self):
        super().setUp()
        # Customers spread over ids 1..90 (the split points fall between and on them), equal
        # totals on both sides of a split (ties go by customer_id), one outside the window.
        records = []
        for customer_id in range(1, 91):
            amount = f"{100 + customer_id % 7}.{customer_id % 100:02d}" if customer_id % 5 else "150.00"
            records.append(record(customer_id=customer_id, name=f"name {customer_id}", transaction_amount=amount,
                                  transaction_datetime="2024-03-01T00:00:00Z"))
            records.append(record(customer_id=customer_id, name=f"name {customer_id}", transaction_amount="999.00",
                                  transaction_datetime="2025-03-01T00:00:00Z"))  # outside the window
        response = self.ingest(records)
        self.assertEqual(response.status_code, 200, response.content)
        self.query = {"min_amount": 100, "max_amount": 200, "start": "2024-01-01T00:00:00Z",
                      "time_period": "2024-12-31T23:59:59Z"}

    def answers(self, parts: int):
        caches["dashboard"].clear()
        with override_settings(CDP_REPORT_PARTS=parts), CaptureQueriesContext(connection) as queries:
            whole = self.range_query(self.query)
            caches["dashboard"].clear()
            page = self.range_query({**self.query, "offset": 17, "limit": 20})
        return whole, page, [q["sql"] for q in queries.captured_queries]

    def test_the_answer_is_the_one_statements_whatever_the_parts(self):
        one_whole, one_page, one_statements = self.answers(1)
        self.assertEqual(one_whole["X-Total-Count"], "90")
        totals = [row["total_transaction_amount"] for row in answer_of(one_whole)]
        self.assertEqual(totals, sorted(totals, reverse=True))
        self.assertEqual(sum(1 for total in totals if total == Decimal("150.00")), 18)  # the ties
        self.assertFalse(any(CUSTOMER_RANGE.search(sql) for sql in one_statements))
        for parts in (2, 3, 4):
            with self.subTest(parts=parts):
                whole, page, statements = self.answers(parts)
                self.assertEqual(body_of(whole), body_of(one_whole))
                self.assertEqual(whole["X-Total-Count"], "90")
                self.assertEqual(body_of(page), body_of(one_page))
                self.assertEqual(page["X-Total-Count"], "90")
                # This connection summed the first range only; the others summed the rest.
                self.assertTrue(any(CUSTOMER_RANGE.search(sql) for sql in statements), statements)

    def test_a_write_answered_before_the_report_is_in_every_part(self):
        self.answers(2)
        response = self.ingest(record(customer_id=90, name="name 90", transaction_amount="50.00",
                                      transaction_datetime="2024-04-01T00:00:00Z"))
        self.assertEqual(response.status_code, 201, response.content)
        whole, _, _ = self.answers(2)
        row = next(row for row in answer_of(whole) if row["customer_id"] == 90)
        self.assertEqual(row["total_transaction_amount"], Decimal("150.00") + Decimal("50.00"))

    def test_the_part_readers_connections_are_closed_when_asked(self):
        # What the test runners rely on before they drop the test databases (PostgreSQL refuses
        # while another session is connected to the one it drops).
        from transactions import parts

        postgresql = connection.vendor == "postgresql"

        def session_id(part) -> list[int]:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()" if postgresql else "SELECT CONNECTION_ID()")
                return [cursor.fetchone()[0]]

        def open_sessions() -> set[int]:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pid FROM pg_stat_activity" if postgresql else "SELECT ID FROM information_schema.PROCESSLIST")
                return {row[0] for row in cursor.fetchall()}

        [[here], *elsewhere] = parts.read_in_parts(session_id, [0, 1, 2])
        theirs = {session for [session] in elsewhere}
        self.assertNotIn(here, theirs)  # the other parts were read on connections of their own
        self.assertLessEqual(theirs, open_sessions())
        parts.close_part_readers()
        deadline = time.monotonic() + 5  # the server forgets a closed session a moment later
        while theirs & open_sessions() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(theirs & open_sessions(), set())
        whole, _, _ = self.answers(2)  # and reading in parts again afterwards works
        self.assertEqual(whole["X-Total-Count"], "90")
