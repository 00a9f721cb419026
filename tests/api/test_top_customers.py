"""POST /api/top-customers, end to end: every test ingests its data through the API.

Like the range report, this report reads running totals (per customer, state and pincode) for
a window holding every stored transaction and sums transactions in SQL otherwise. The
scenarios in ``TopCustomersScenarios`` run once on each path with the same expected answer;
the windowed run adds transactions after the window that would change it if they leaked in.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.core.cache import caches
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext

from tests.support import ApiClientMixin, ReportPartsTestCase, record
from transactions import selectors
from transactions.models import PincodeTotal, PincodeTotalDelta

# Every scenario query ends its window here; only the windowed run stores anything later.
WINDOW_END = "8999-12-31T23:59:59Z"


def answer_of(response):
    """The JSON body, keys in the order sent, every non-integer number an exact Decimal."""
    return json.loads(response.content, parse_float=Decimal)


def customer_total(customer_id: int, name: str, total: str) -> dict:
    return {"customer_id": customer_id, "name": name, "total_transaction_amount": Decimal(total)}


def punjab(customer_id: int, amount: str, *, pincode: str = "140001", when: str = "2024-01-01T00:00:00Z", **fields) -> dict:
    fields.setdefault("name", f"c{customer_id}")
    return record(
        customer_id=customer_id,
        transaction_amount=amount,
        pincode=pincode,
        transaction_datetime=when,
        state="Punjab",
        **fields,
    )


class TopCustomersTestCase(ApiClientMixin, TestCase):
    def ingest_batch(self, records: list[dict]) -> None:
        response = self.ingest(records)
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(json.loads(response.content)["created"], len(records), response.content)

    def assertTopCustomers(self, response, expected: dict) -> None:
        """The answer is exactly `expected`, keys in the same order."""
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response["Content-Type"], "application/json")
        body = answer_of(response)
        self.assertEqual(body, expected)
        self.assertEqual(list(body), list(expected))


class TopCustomersScenarios:
    """Scenarios run on both paths; subclasses set up which path a WINDOW_END query takes."""

    sums_transactions_in_sql: bool

    def query(self, **body) -> dict:
        return {"time_period": WINDOW_END, **body}

    def test_query_takes_the_path_under_test(self):
        self.ingest_batch([punjab(1, "10.00")])
        with CaptureQueriesContext(connection) as queries:
            response = self.top_customers(self.query(state="Punjab"))
        self.assertTopCustomers(response, {"pincode_140001": [customer_total(1, "c1", "10.00")]})
        summed = any("SUM(" in query["sql"].upper() for query in queries.captured_queries)
        self.assertEqual(summed, self.sums_transactions_in_sql)

    def test_state_is_matched_case_insensitively_and_other_states_are_excluded(self):
        self.ingest_batch(
            [
                punjab(1, "300.00"),
                punjab(2, "100.00"),
                punjab(2, "150.00", when="2024-01-02T00:00:00Z"),
                # Same pincode, other states: excluded however big.
                record(customer_id=3, name="c3", transaction_amount="9000.00", pincode="140001", state="Haryana"),
                record(customer_id=1, name="c1", transaction_amount="9000.00", pincode="140001", state="Punjabi",
                       transaction_datetime="2024-01-03T00:00:00Z"),
            ]
        )
        expected = {"pincode_140001": [customer_total(1, "c1", "300.00"), customer_total(2, "c2", "250.00")]}

        for state in ["Punjab", "punjab", "PUNJAB", " Punjab ", "pUnJaB"]:
            with self.subTest(state=state):
                self.assertTopCustomers(self.top_customers(self.query(state=state)), expected)

    def test_a_state_stored_in_different_cases_is_one_state(self):
        self.ingest_batch(
            [
                record(customer_id=1, name="c1", transaction_amount="10.00", pincode="140001", state="punjab",
                       transaction_datetime="2024-01-01T00:00:00Z"),
                record(customer_id=1, name="c1", transaction_amount="20.00", pincode="140001", state="PUNJAB",
                       transaction_datetime="2024-01-02T00:00:00Z"),
                record(customer_id=1, name="c1", transaction_amount="40.00", pincode="140001", state="Punjab",
                       transaction_datetime="2024-01-03T00:00:00Z"),
            ]
        )

        response = self.top_customers(self.query(state="Punjab"))

        self.assertTopCustomers(response, {"pincode_140001": [customer_total(1, "c1", "70.00")]})

    def test_states_differing_by_an_accent_or_an_emoji_are_different_states(self):
        # Matching ignores case, nothing more: no database collation may fold accents or emoji.
        spellings = ["Punjab", "Pünjab", "Pùnjab", "🍎 Punjab", "🍏 Punjab", "Straße", "Strasse"]
        self.ingest_batch(
            [
                record(customer_id=n, name=f"c{n}", transaction_amount=f"{n}0.00", pincode="140001", state=state,
                       transaction_datetime="2024-01-01T00:00:00Z")
                for n, state in enumerate(spellings, start=1)
            ]
            # Customer 1 again, in the same pincode, in the state spelled with an accent.
            + [record(customer_id=1, name="c1", transaction_amount="5.00", pincode="140001", state="Pünjab",
                      transaction_datetime="2024-01-02T00:00:00Z")]
        )
        expected = {
            "Punjab": [customer_total(1, "c1", "10.00")],
            "Pünjab": [customer_total(2, "c2", "20.00"), customer_total(1, "c1", "5.00")],
            "PÙNJAB": [customer_total(3, "c3", "30.00")],
            "🍎 punjab": [customer_total(4, "c4", "40.00")],
            "🍏 PUNJAB": [customer_total(5, "c5", "50.00")],
            # Folding makes "ß" "ss": these two are one state, as case-insensitive matching says.
            "STRASSE": [customer_total(7, "c7", "70.00"), customer_total(6, "c6", "60.00")],
        }
        for state, customers in expected.items():
            with self.subTest(state=state):
                self.assertTopCustomers(self.top_customers(self.query(state=state)), {"pincode_140001": customers})

    def test_states_whose_folded_forms_differ_past_fifty_characters_are_different_states(self):
        # 31 characters each, 61 once "ß" is folded to "ss"; "ΐ" folds to three characters.
        states = ["ß" * 30 + "a", "ß" * 30 + "b", "ΐ" * 50]
        self.ingest_batch(
            [
                record(customer_id=n, name=f"c{n}", transaction_amount=f"{n}0.00", pincode="140001", state=state,
                       transaction_datetime="2024-01-01T00:00:00Z")
                for n, state in enumerate(states, start=1)
            ]
        )
        # "ẞ" is the capital of "ß" (its upper() would be "SS", 61 characters, too long to send).
        spellings = {1: [states[0], "ẞ" * 30 + "A"], 2: [states[1], "ẞ" * 30 + "B"], 3: [states[2]]}
        for n, spelled_as in spellings.items():
            for spelled in spelled_as:
                with self.subTest(state=spelled):
                    self.assertTopCustomers(self.top_customers(self.query(state=spelled)),
                                            {"pincode_140001": [customer_total(n, f"c{n}", f"{n}0.00")]})

    def test_at_most_five_per_pincode_by_default_biggest_total_first_ties_by_customer_id(self):
        # Seven customers, ingested out of order; 7 and 3 tie, 9.99 < 10.00 orders numerically.
        self.ingest_batch(
            [
                punjab(4, "10.00"),
                punjab(7, "500.00"),
                punjab(1, "9.99"),
                punjab(6, "1000.00"),
                punjab(3, "200.00"),
                punjab(3, "300.00", when="2024-01-02T00:00:00Z"),
                punjab(5, "700.00"),
                punjab(2, "5.00"),
            ]
        )

        response = self.top_customers(self.query(state="Punjab"))

        self.assertTopCustomers(
            response,
            {
                "pincode_140001": [
                    customer_total(6, "c6", "1000.00"),
                    customer_total(5, "c5", "700.00"),
                    customer_total(3, "c3", "500.00"),
                    customer_total(7, "c7", "500.00"),
                    customer_total(4, "c4", "10.00"),
                ]
            },
        )

    def test_limit_sets_how_many_customers_each_pincode_lists(self):
        self.ingest_batch(
            [punjab(customer_id, f"{customer_id}00.00") for customer_id in range(1, 8)]
            + [
                punjab(customer_id, f"{customer_id}.00", pincode="150001", when="2024-01-02T00:00:00Z")
                for customer_id in (1, 2)
            ]
        )
        ranked_140001 = [customer_total(i, f"c{i}", f"{i}00.00") for i in range(7, 0, -1)]

        for limit in (1, 2, 6, 100):
            with self.subTest(limit=limit):
                self.assertTopCustomers(
                    self.top_customers(self.query(state="Punjab", limit=limit)),
                    {
                        "pincode_140001": ranked_140001[:limit],
                        "pincode_150001": [customer_total(2, "c2", "2.00"), customer_total(1, "c1", "1.00")][:limit],
                    },
                )

    def test_totals_are_per_customer_per_pincode(self):
        self.ingest_batch(
            [
                punjab(1, "100.00", pincode="140001"),
                punjab(1, "300.00", pincode="150001", when="2024-01-02T00:00:00Z"),
                punjab(1, "50.00", pincode="150001", when="2024-01-03T00:00:00Z"),
                punjab(2, "200.00", pincode="140001"),
                punjab(2, "20.00", pincode="150001", when="2024-01-02T00:00:00Z"),
            ]
        )

        response = self.top_customers(self.query(state="Punjab"))

        self.assertTopCustomers(
            response,
            {
                "pincode_140001": [customer_total(2, "c2", "200.00"), customer_total(1, "c1", "100.00")],
                "pincode_150001": [customer_total(1, "c1", "350.00"), customer_total(2, "c2", "20.00")],
            },
        )

    def test_keys_are_the_pincodes_in_ascending_order(self):
        self.ingest_batch(
            [
                punjab(1, "10.00", pincode="160001"),
                punjab(2, "20.00", pincode="140001"),
                punjab(3, "30.00", pincode="151001"),
                punjab(4, "40.00", pincode="143001"),
            ]
        )

        response = self.top_customers(self.query(state="Punjab"))

        self.assertTopCustomers(
            response,
            {
                "pincode_140001": [customer_total(2, "c2", "20.00")],
                "pincode_143001": [customer_total(4, "c4", "40.00")],
                "pincode_151001": [customer_total(3, "c3", "30.00")],
                "pincode_160001": [customer_total(1, "c1", "10.00")],
            },
        )
        text = response.content.decode("utf-8")
        positions = [text.index(f'"pincode_{pincode}"') for pincode in ("140001", "143001", "151001", "160001")]
        self.assertEqual(positions, sorted(positions))

    def test_answer_is_an_object_of_arrays_of_exact_decimal_numbers(self):
        self.ingest_batch(
            [
                punjab(1, "0.10", name="Zoë"),
                punjab(1, "0.20", name="Zoë", when="2024-01-02T00:00:00Z"),
                punjab(2, 1500, name="round"),
                punjab(3, "999999999999.99", name="big", pincode="150001"),
                punjab(3, "999999999999.99", name="big", pincode="150001", when="2024-01-02T00:00:00Z"),
            ]
        )

        response = self.top_customers(self.query(state="Punjab"))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.content.decode("utf-8"),
            '{"pincode_140001":['
            '{"customer_id":2,"name":"round","total_transaction_amount":1500.00},'
            '{"customer_id":1,"name":"Zoë","total_transaction_amount":0.30}'
            '],"pincode_150001":['
            '{"customer_id":3,"name":"big","total_transaction_amount":1999999999999.98}'
            "]}",
        )

    def test_name_is_that_of_the_customers_most_recent_transaction_in_any_state(self):
        self.ingest_batch(
            [
                punjab(1, "10.00", name="Old Name", when="2024-01-01T00:00:00Z"),
                record(customer_id=1, name="New Name", transaction_amount="5.00", state="Delhi",
                       transaction_datetime="2024-02-01T00:00:00Z"),
            ]
        )

        response = self.top_customers(self.query(state="Punjab"))

        self.assertTopCustomers(response, {"pincode_140001": [customer_total(1, "New Name", "10.00")]})

    def test_state_without_transactions_is_an_empty_object(self):
        self.ingest_batch([punjab(1, "10.00")])

        response = self.top_customers(self.query(state="Kerala"))

        self.assertTopCustomers(response, {})
        self.assertEqual(response.content, b"{}")


class AllTimeTopCustomersTests(TopCustomersScenarios, TopCustomersTestCase):
    """Nothing is stored after WINDOW_END, so the query reads the running totals."""

    sums_transactions_in_sql = False


class WindowedTopCustomersTests(TopCustomersScenarios, TopCustomersTestCase):
    """Transactions after WINDOW_END force the summing path and must not show."""

    sums_transactions_in_sql = True

    def setUp(self):
        super().setUp()
        late = "9000-01-01T00:00:00Z"
        self.ingest_batch(
            [
                # Would top pincode 140001 (customers of the scenarios are left alone: a later
                # transaction would rename them)...
                punjab(900_001, "999999.00", name="outside the window", when=late),
                # ...and add a pincode of its own.
                punjab(900_002, "1.00", name="outside the window", pincode="199999", when=late),
            ]
        )


class TopCustomersWindowTests(TopCustomersTestCase):
    def test_time_period_is_an_inclusive_end(self):
        self.ingest_batch(
            [
                punjab(1, "10.00", when="2024-06-30T12:00:00Z"),
                punjab(1, "5.00", when="2024-06-30T12:00:01Z"),
                punjab(2, "20.00", when="2024-06-30T12:00:01Z"),
                punjab(3, "30.00", pincode="150001", when="2024-06-30T12:00:01Z"),
            ]
        )

        response = self.top_customers({"state": "Punjab", "time_period": "2024-06-30T12:00:00Z"})

        self.assertTopCustomers(response, {"pincode_140001": [customer_total(1, "c1", "10.00")]})

    def test_start_is_inclusive(self):
        self.ingest_batch(
            [
                punjab(1, "10.00", when="2024-01-01T00:00:00Z"),
                punjab(1, "40.00", when="2023-12-31T23:59:59Z"),
                punjab(2, "20.00", when="2023-12-31T23:59:59Z"),
                punjab(3, "30.00", pincode="150001", when="2023-12-31T23:59:59Z"),
                punjab(4, "5.00", pincode="150001", when="2024-03-01T00:00:00Z"),
            ]
        )

        response = self.top_customers({"state": "Punjab", "start": "2024-01-01T00:00:00Z"})

        self.assertTopCustomers(
            response,
            {"pincode_140001": [customer_total(1, "c1", "10.00")], "pincode_150001": [customer_total(4, "c4", "5.00")]},
        )

    def test_window_reranks_customers_by_their_totals_inside_it(self):
        # All time customer 1 leads; in February customer 2 does.
        self.ingest_batch(
            [
                punjab(1, "1000.00", when="2024-01-15T00:00:00Z"),
                punjab(1, "10.00", when="2024-02-15T00:00:00Z"),
                punjab(2, "20.00", when="2024-02-10T00:00:00Z"),
                punjab(3, "30.00", when="2024-03-15T00:00:00Z"),
            ]
        )

        february = self.top_customers(
            {"state": "Punjab", "start": "2024-02-01T00:00:00Z", "time_period": "2024-02-29T23:59:59Z"}
        )
        all_time = self.top_customers({"state": "Punjab"})

        self.assertTopCustomers(
            february, {"pincode_140001": [customer_total(2, "c2", "20.00"), customer_total(1, "c1", "10.00")]}
        )
        self.assertTopCustomers(
            all_time,
            {
                "pincode_140001": [
                    customer_total(1, "c1", "1010.00"),
                    customer_total(3, "c3", "30.00"),
                    customer_total(2, "c2", "20.00"),
                ]
            },
        )

    def test_limit_applies_within_the_window(self):
        self.ingest_batch(
            [
                punjab(1, "100.00", when="2024-01-01T00:00:00Z"),
                punjab(2, "200.00", when="2024-01-01T00:00:00Z"),
                punjab(3, "300.00", when="2024-01-01T00:00:00Z"),
                punjab(4, "900.00", when="2024-12-01T00:00:00Z"),
            ]
        )

        response = self.top_customers({"state": "Punjab", "limit": 2, "time_period": "2024-06-01T00:00:00Z"})

        self.assertTopCustomers(
            response, {"pincode_140001": [customer_total(3, "c3", "300.00"), customer_total(2, "c2", "200.00")]}
        )

    def test_default_window_is_all_time_including_future_transactions(self):
        # Unlike the range report, whose window ends now by default.
        self.ingest_batch([punjab(1, "10.00"), punjab(2, "20.00", when="2999-01-01T00:00:00Z")])

        response = self.top_customers({"state": "Punjab"})

        self.assertTopCustomers(
            response, {"pincode_140001": [customer_total(2, "c2", "20.00"), customer_total(1, "c1", "10.00")]}
        )

    def test_window_without_transactions_in_the_state_is_an_empty_object(self):
        self.ingest_batch(
            [
                punjab(1, "10.00", when="2024-06-01T00:00:00Z"),
                record(customer_id=2, transaction_amount="5.00", state="Delhi", transaction_datetime="2024-01-01T00:00:00Z"),
            ]
        )

        response = self.top_customers({"state": "Punjab", "time_period": "2024-05-31T23:59:59Z"})

        self.assertTopCustomers(response, {})

    def test_running_totals_and_windowed_sums_give_the_same_answer(self):
        # The only transaction outside the second window is in another state, so both windows
        # hold the same Punjab transactions.
        self.ingest_batch(
            [
                punjab(3, "250.00", pincode="150001", when="2024-01-01T00:00:00Z"),
                punjab(1, "120.50", when="2024-01-02T00:00:00Z"),
                punjab(1, "179.50", when="2024-01-03T00:00:00Z"),
                punjab(2, "300.00", when="2024-01-04T00:00:00Z"),
                punjab(1, "0.01", pincode="150001", when="2024-01-05T00:00:00Z"),
                record(customer_id=9, transaction_amount="5.00", state="Delhi", transaction_datetime="2024-12-31T00:00:00Z"),
            ]
        )
        expected = {
            "pincode_140001": [customer_total(1, "c1", "300.00"), customer_total(2, "c2", "300.00")],
            "pincode_150001": [customer_total(3, "c3", "250.00"), customer_total(1, "c1", "0.01")],
        }

        with CaptureQueriesContext(connection) as all_time_queries:
            all_time = self.top_customers({"state": "punjab", "time_period": "2024-12-31T00:00:00Z"})
        with CaptureQueriesContext(connection) as windowed_queries:
            windowed = self.top_customers({"state": "punjab", "time_period": "2024-12-30T23:59:59Z"})

        self.assertTopCustomers(all_time, expected)
        self.assertTopCustomers(windowed, expected)
        self.assertEqual(all_time.content, windowed.content)
        self.assertFalse(any("SUM(" in q["sql"].upper() for q in all_time_queries.captured_queries))
        self.assertTrue(any("SUM(" in q["sql"].upper() for q in windowed_queries.captured_queries))


class WindowedTopCustomersKeptUntilNewDataTests(TopCustomersTestCase):
    """A window's ranking is kept (names included) until a transaction is added or corrected."""

    WINDOW = {"state": "Punjab", "time_period": "2024-06-30T23:59:59Z", "limit": 100}

    def setUp(self):
        super().setUp()
        from tests.support import clear_caches

        clear_caches()
        self.ingest_batch([punjab(1, "10.00"), punjab(2, "20.00"), punjab(3, "5.00", when="2025-01-01T00:00:00Z")])

    def test_a_repeated_query_sums_nothing_again_and_gives_the_same_answer(self):
        first = self.top_customers(self.WINDOW)
        with CaptureQueriesContext(connection) as queries:
            again = self.top_customers(self.WINDOW)
        self.assertEqual(again.content, first.content)
        self.assertTopCustomers(again, {"pincode_140001": [customer_total(2, "c2", "20.00"), customer_total(1, "c1", "10.00")]})
        self.assertFalse(any("SUM(" in q["sql"].upper() for q in queries.captured_queries), queries.captured_queries)

    def test_a_new_transaction_in_the_window_is_in_the_next_answer(self):
        self.top_customers(self.WINDOW)
        self.ingest_batch([punjab(1, "15.00", when="2024-02-01T00:00:00Z")])
        self.assertTopCustomers(
            self.top_customers(self.WINDOW),
            {"pincode_140001": [customer_total(1, "c1", "25.00"), customer_total(2, "c2", "20.00")]},
        )

    def test_a_newer_name_is_in_the_next_answer(self):
        self.top_customers(self.WINDOW)
        # After the window: it changes no total inside it, only customer 2's name.
        self.ingest_batch([punjab(2, "1.00", when="2025-02-01T00:00:00Z", name="Renamed")])
        self.assertTopCustomers(
            self.top_customers(self.WINDOW),
            {"pincode_140001": [customer_total(2, "Renamed", "20.00"), customer_total(1, "c1", "10.00")]},
        )

    def test_names_needing_escapes_are_written_as_dumps_exact_writes_them(self):
        from transactions.api.json_codec import dumps_exact
        from transactions.models import Customer

        names = {1: 'Asha "Ash"\\', 2: "tab\tline\u2028sep", 3: "Zoë 😀"}
        for customer_id, name in names.items():
            Customer.objects.filter(pk=customer_id).update(name=name)
        # The window holds customers 2 and 1; all time customer 3 too (after the window).
        for body, ranked in ((self.WINDOW, [2, 1]), ({"state": "Punjab"}, [2, 1, 3])):
            with self.subTest(body=body):
                response = self.top_customers(body)
                self.assertEqual([row["name"] for row in answer_of(response)["pincode_140001"]], [names[i] for i in ranked])
                self.assertEqual(response.content, dumps_exact(answer_of(response)).encode())
                self.assertIn(b"line\\u2028sep", response.content)


class TopCustomersValidationTests(TopCustomersTestCase):
    def assertRejected(self, body, errors: dict) -> None:
        response = self.top_customers(body)
        self.assertEqual(response.status_code, 400, response.content)
        self.assertEqual(response.json(), errors)

    def test_missing_state_is_rejected(self):
        self.assertRejected({}, {"state": ["This field is required."]})
        self.assertRejected({"limit": 3}, {"state": ["This field is required."]})

    def test_blank_state_is_rejected(self):
        for state in ["", "   ", "\t\n"]:
            with self.subTest(state=state):
                self.assertRejected({"state": state}, {"state": ["Enter a state of 1 to 50 characters."]})

    def test_state_that_is_not_text_is_rejected(self):
        self.assertRejected({"state": 42}, {"state": ["Enter a state as text."]})
        self.assertRejected({"state": None}, {"state": ["This field may not be null."]})

    def test_limit_outside_1_to_100_is_rejected(self):
        self.assertRejected({"state": "Punjab", "limit": 0}, {"limit": ["Ensure this value is greater than or equal to 1."]})
        self.assertRejected({"state": "Punjab", "limit": 101}, {"limit": ["Ensure this value is less than or equal to 100."]})

    def test_start_after_time_period_is_rejected(self):
        self.assertRejected(
            {"state": "Punjab", "start": "2024-01-01T00:00:01Z", "time_period": "2024-01-01T00:00:00Z"},
            {"start": ["start must not be after time_period."]},
        )

    def test_a_datetime_that_is_not_iso_8601_is_rejected(self):
        self.assertRejected(
            {"state": "Punjab", "time_period": "last week"},
            {"time_period": ["Enter an ISO 8601 datetime, e.g. 2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."]},
        )


class WindowRankedInPartsTests(ReportPartsTestCase):
    """A window's rankings read in groups of pincodes at once, on connections of their own
    (``selectors._ranked_in_window``): the same answer as one statement, whatever the split."""

    def setUp(self):
        super().setUp()
        records = []
        for index in range(1, 61):
            pincode = f"1400{index % 7:02d}"
            amount = "75.00" if index % 4 == 0 else f"{10 + index}.{index:02d}"  # ties in each pincode
            records.append(punjab(index, amount, pincode=pincode, when="2024-03-01T00:00:00Z", name=f"c{index}"))
            records.append(punjab(index, "999.00", pincode=pincode, when="2025-03-01T00:00:00Z", name=f"c{index}"))
        response = self.ingest(records)
        self.assertEqual(response.status_code, 200, response.content)

    def answer(self, parts: int) -> bytes:
        caches["dashboard"].clear()
        with override_settings(CDP_REPORT_PARTS=parts):
            response = self.top_customers({"state": "punjab", "limit": 4, "time_period": "2024-12-31T00:00:00Z"})
        self.assertEqual(response.status_code, 200, response.content)
        return response.content

    def test_the_answer_is_the_one_statements_whatever_the_parts(self):
        one = self.answer(1)
        by_pincode = json.loads(one, parse_float=Decimal)
        self.assertEqual(list(by_pincode), [f"pincode_1400{i:02d}" for i in range(7)])
        self.assertTrue(all(len(ranked) == 4 for ranked in by_pincode.values()))
        self.assertNotIn(Decimal("999.00"), {row["total_transaction_amount"] for rows in by_pincode.values() for row in rows})
        for parts in (2, 3, 7, 8):
            with self.subTest(parts=parts):
                self.assertEqual(self.answer(parts), one)

    def test_pincodes_the_figures_miss_are_ranked_all_the_same(self):
        # The parts are ranges of the pincodes the figures name, the first and last open-ended:
        # a pincode they miss (first, in between, last) is still read by one of them.
        one = self.answer(1)
        missed = ["140000", "140003", "140006"]
        PincodeTotal.objects.filter(pincode__in=missed).delete()
        PincodeTotalDelta.objects.filter(pincode__in=missed).delete()
        self.assertEqual(selectors._pincodes_of("punjab"), ["140001", "140002", "140004", "140005"])
        for parts in (2, 3):
            with self.subTest(parts=parts):
                self.assertEqual(self.answer(parts), one)
