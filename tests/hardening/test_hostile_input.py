"""Hand-written hostile requests: what a fuzzer rarely builds on its own.

Each one must be answered with the documented 4xx (or accepted, where the contract accepts
it), never a 5xx, and must leave the stored data as it was. Text that looks like SQL or
HTML/JS is data like any other: stored verbatim, returned verbatim in JSON, escaped in HTML.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.test import TestCase

from tests.support import ApiClientMixin, make_user, record
from transactions.models import Customer, Transaction

INGEST_URL = "/api/ingest-data"
RANGE_URL = "/api/query-transaction-range"
TOP_CUSTOMERS_URL = "/api/top-customers"
ONE_MB = 1024 * 1024


class HostileInputTestCase(ApiClientMixin, TestCase):
    def post_raw(self, url: str, body: bytes, content_type: str = "application/json"):
        return self.api.generic("POST", url, body, content_type=content_type)

    def assertRefused(self, response, status: int = 400) -> dict:
        self.assertEqual(response.status_code, status, getattr(response, "content", b"(streamed)")[:500])
        self.assertEqual(response["Content-Type"], "application/json")
        return response.json()

    def assertNothingStored(self) -> None:
        self.assertEqual(Transaction.objects.count(), 0)
        self.assertEqual(Customer.objects.count(), 0)


class HugeValueTests(HostileInputTestCase):
    def test_a_one_megabyte_string_in_any_field_is_a_400_on_that_field(self):
        huge = "9" * ONE_MB
        for field in ("customer_id", "name", "transaction_amount", "mob_no", "transaction_datetime", "pincode", "state"):
            with self.subTest(field=field):
                body = self.assertRefused(self.ingest(record(**{field: huge})))
                self.assertEqual(list(body), [field])
                self.assertEqual(len(body[field]), 1)
                self.assertLess(len(json.dumps(body)), 500)  # the value is not echoed back
        self.assertNothingStored()

    def test_a_one_megabyte_unknown_field_is_ignored(self):
        response = self.ingest(record(comment="x" * ONE_MB))
        self.assertEqual(response.status_code, 201, response.content[:300])
        self.assertEqual(Transaction.objects.count(), 1)

    def test_one_megabyte_strings_in_report_queries_are_400(self):
        huge = "a" * ONE_MB
        self.assertEqual(
            self.assertRefused(self.top_customers({"state": huge})),
            {"state": ["Enter a state of 1 to 50 characters."]},
        )
        self.assertEqual(list(self.assertRefused(self.range_query({"min_amount": huge, "max_amount": 1}))), ["min_amount"])
        self.assertEqual(
            list(self.assertRefused(self.range_query({"min_amount": 0, "max_amount": 1, "time_period": huge}))),
            ["time_period"],
        )

    def test_an_integer_of_thousands_of_digits_is_a_parse_error(self):
        digits = "9" * 5000  # beyond Python's int-from-string limit
        body = self.assertRefused(self.post_raw(INGEST_URL, json.dumps(record()).replace("101", digits, 1).encode()))
        self.assertTrue(body["detail"].startswith("JSON parse error"), body)
        body = self.assertRefused(self.post_raw(RANGE_URL, f'{{"min_amount": 0, "max_amount": {digits}}}'.encode()))
        self.assertTrue(body["detail"].startswith("JSON parse error"), body)
        self.assertNothingStored()

    def test_offsets_and_limits_beyond_any_database_integer_are_400(self):
        for field, value in (("offset", 2**63), ("offset", 2**70), ("limit", 2**70), ("offset", -1), ("limit", 0)):
            with self.subTest(field=field, value=value):
                body = self.assertRefused(self.range_query({"min_amount": 0, "max_amount": 10, field: value}))
                self.assertEqual(list(body), [field])

    def test_the_largest_offset_is_answered_with_an_empty_page(self):
        self.assertEqual(self.ingest(record()).status_code, 201)
        response = self.range_query({"min_amount": 0, "max_amount": 10**6, "offset": 2**63 - 1, "limit": 10})
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(response.json(), [])
        self.assertEqual(response["X-Total-Count"], "1")
        streamed = self.range_query({"min_amount": 0, "max_amount": 10**6, "offset": 2**63 - 1})
        self.assertEqual(streamed.status_code, 200)
        self.assertEqual(json.loads(b"".join(streamed.streaming_content)), [])

    def test_import_ids_beyond_any_database_integer_are_404(self):
        for job_id in (2**63, 10**30):
            for path in (f"/api/imports/{job_id}/", f"/api/imports/{job_id}/rejected.csv"):
                with self.subTest(path=path):
                    self.assertEqual(list(self.assertRefused(self.api.get(path), 404)), ["detail"])

    def test_an_id_that_is_not_a_number_is_a_json_404(self):
        for path in ("/api/imports/abc/", "/api/imports/1,2/", "/api/imports/-1/rejected.csv", "/api/nowhere/",
                     "/api/imports/%0A/", "/api/imports/1%0A/rejected.csv", "/api/imports/%2F/"):
            with self.subTest(path=path):
                self.assertEqual(self.assertRefused(self.api.get(path), 404), {"detail": "Not found."})


class NestingTests(HostileInputTestCase):
    def test_json_nested_a_hundred_thousand_deep_is_a_parse_error(self):
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000):
            for url in (INGEST_URL, RANGE_URL, TOP_CUSTOMERS_URL):
                with self.subTest(url=url, starts=body[:2]):
                    self.assertEqual(
                        self.assertRefused(self.post_raw(url, body)), {"detail": "JSON parse error - nested too deeply."}
                    )
        self.assertNothingStored()

    def test_nested_values_where_scalars_belong_are_field_errors(self):
        nested: object = 1
        for _ in range(200):
            nested = {"a": [nested]}
        body = self.assertRefused(self.ingest(record(name=nested, pincode=[nested], customer_id={"$gt": 0})))
        self.assertEqual(sorted(body), ["customer_id", "name", "pincode"])
        body = self.assertRefused(self.top_customers({"state": nested, "limit": nested}))
        self.assertEqual(sorted(body), ["limit", "state"])
        self.assertNothingStored()

    def test_a_batch_of_batches_is_refused_item_by_item(self):
        body = self.assertRefused(self.ingest([[record()], [[record()]]]))
        self.assertEqual(list(body["errors"]), ["0", "1"])
        self.assertNothingStored()


class NumberTests(HostileInputTestCase):
    def test_amounts_that_are_not_plain_positive_numbers_are_refused(self):
        cases = {
            "1e400": "Enter an amount of at most 999999999999.99.",
            "-0": "Enter an amount greater than 0.",
            "0.00": "Enter an amount greater than 0.",
            "1e-400": "Enter an amount with at most 2 decimal places.",
        }
        for literal, message in cases.items():
            for as_text in (False, True):
                with self.subTest(literal=literal, as_text=as_text):
                    value = f'"{literal}"' if as_text else literal
                    text = json.dumps(record(transaction_amount="AMOUNT")).replace('"AMOUNT"', value)
                    self.assertEqual(self.assertRefused(self.post_raw(INGEST_URL, text.encode())),
                                     {"transaction_amount": [message]})
        for text_value in ("NaN", "Infinity", "-Infinity", "1,000", "1_000", "0x10", "١٢٣", " ", ""):
            with self.subTest(text_value=text_value):
                self.assertEqual(self.assertRefused(self.ingest(record(transaction_amount=text_value))),
                                 {"transaction_amount": ["Enter an amount as a number, e.g. 1500.75."]})
        self.assertNothingStored()

    def test_nan_and_infinity_literals_are_not_json(self):
        for literal in ("NaN", "Infinity", "-Infinity"):
            with self.subTest(literal=literal):
                text = json.dumps(record(transaction_amount="AMOUNT")).replace('"AMOUNT"', literal)
                body = self.assertRefused(self.post_raw(INGEST_URL, text.encode()))
                self.assertEqual(body, {"detail": f"JSON parse error - {literal} is not valid JSON"})
        self.assertNothingStored()

    def test_a_number_beyond_decimals_range_is_a_parse_error_on_every_json_endpoint(self):
        # Python's decimal holds exponents up to 10^18 - 1; past that it raises instead of rounding.
        huge = "1e1000000000000000000"
        bodies = {
            INGEST_URL: [
                json.dumps(record(transaction_amount="N")).replace('"N"', huge),
                json.dumps(record(comment="N")).replace('"N"', huge),  # a field the endpoint ignores
                json.dumps([record(), {"nested": ["N"]}]).replace('"N"', f"-{huge}"),
            ],
            RANGE_URL: [f'{{"min_amount": 0, "max_amount": {huge}}}', f'{{"min_amount": 0, "max_amount": 1, "x": {huge}}}'],
            TOP_CUSTOMERS_URL: [f'{{"state": "Delhi", "limit": {huge}}}', f'{{"state": "Delhi", "x": 1.5E+{huge[2:]}}}'],
        }
        for url, texts in bodies.items():
            for text in texts:
                with self.subTest(url=url, text=text):
                    self.assertEqual(
                        self.assertRefused(self.post_raw(url, text.encode())),
                        {"detail": "JSON parse error - a number is out of range (its exponent is too large)"},
                    )
        self.assertNothingStored()

    def test_a_number_at_the_edge_of_decimals_range_is_a_field_error(self):
        for literal in ("1e999999999999999999", "1e-1000000000000000000"):
            with self.subTest(literal=literal):
                text = json.dumps(record(transaction_amount="N")).replace('"N"', literal)
                self.assertEqual(list(self.assertRefused(self.post_raw(INGEST_URL, text.encode()))), ["transaction_amount"])
                text = f'{{"min_amount": 0, "max_amount": {literal}, "limit": {literal}}}'
                self.assertEqual(sorted(self.assertRefused(self.post_raw(RANGE_URL, text.encode()))), ["limit", "max_amount"])
        self.assertNothingStored()

    def test_customer_ids_that_are_not_whole_numbers_in_range_are_refused(self):
        for literal in ("1e400", "-0", "0", "1.5", "1e2", "9223372036854775808", "true", '"1,000"', '"0x10"', '" "'):
            with self.subTest(literal=literal):
                text = json.dumps(record(customer_id="ID")).replace('"ID"', literal)
                self.assertEqual(self.assertRefused(self.post_raw(INGEST_URL, text.encode())),
                                 {"customer_id": ["Enter a whole number from 1 to 9223372036854775807."]})
        self.assertNothingStored()

    def test_amount_bounds_of_a_report_refuse_nonsense_and_accept_minus_zero(self):
        for literal in ("1e400", "-1e400", '"NaN"', '"1,000"', "-0.01"):
            with self.subTest(literal=literal):
                text = f'{{"min_amount": {literal}, "max_amount": 100}}'
                self.assertEqual(list(self.assertRefused(self.post_raw(RANGE_URL, text.encode()))), ["min_amount"])
        response = self.post_raw(RANGE_URL, b'{"min_amount": -0, "max_amount": -0.0}')
        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(b"".join(response.streaming_content)), [])


class DatetimeTests(HostileInputTestCase):
    def test_impossible_and_out_of_range_datetimes_are_400(self):
        invalid = "Enter an ISO 8601 datetime, e.g. 2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."
        out_of_range = "Enter a datetime between the years 1000 and 9999 (UTC)."
        cases = {
            "2024-02-30T25:00": invalid,
            "2024-02-30T10:00:00": invalid,
            "2023-02-29T10:00:00": invalid,
            "2024-01-01T24:00:00": invalid,
            "2024-01-01T10:60:00": invalid,
            "2024-09-24T15:30:00+25:00": invalid,
            "0000-01-01": invalid,
            "0000-01-01T00:00:00": invalid,
            "yesterday": invalid,
            "0999-12-31T23:59:59": out_of_range,
            "0001-01-01T00:00:00+01:00": out_of_range,  # before year 1 once in UTC
            "9999-12-31T23:59:59-01:00": out_of_range,  # after year 9999 once in UTC
        }
        for value, message in cases.items():
            with self.subTest(value=value):
                self.assertEqual(self.assertRefused(self.ingest(record(transaction_datetime=value))),
                                 {"transaction_datetime": [message]})
                body = self.assertRefused(self.range_query({"min_amount": 0, "max_amount": 1, "time_period": value}))
                self.assertEqual(body, {"time_period": [message]})
                body = self.assertRefused(self.top_customers({"state": "Delhi", "start": value}))
                self.assertEqual(body, {"start": [message]})
        self.assertNothingStored()

    def test_the_extreme_valid_datetimes_are_stored(self):
        for customer_id, value in ((1, "1000-01-01T00:00:00Z"), (2, "9999-12-31T23:59:59.999999Z")):
            with self.subTest(value=value):
                self.assertEqual(self.ingest(record(customer_id=customer_id, transaction_datetime=value)).status_code, 201)
        self.assertEqual(Transaction.objects.count(), 2)
        response = self.range_query({"min_amount": 0, "max_amount": 10**6, "start": "1000-01-01T00:00:00",
                                     "time_period": "9999-12-31T23:59:59.999999", "limit": 10})
        self.assertEqual([row["customer_id"] for row in response.json()], [1, 2])


class BatchSizeTests(HostileInputTestCase):
    def test_a_batch_over_ten_thousand_records_is_400_and_nothing_is_stored(self):
        batch = [record(customer_id=i + 1) for i in range(settings.CDP_MAX_BATCH_RECORDS + 1)]
        self.assertEqual(self.assertRefused(self.ingest(batch)),
                         {"non_field_errors": ["A batch holds 1 to 10000 records, not 10001."]})
        self.assertEqual(self.assertRefused(self.ingest([])),
                         {"non_field_errors": ["A batch holds 1 to 10000 records, not 0."]})
        self.assertNothingStored()

    def test_one_bad_record_at_the_end_of_a_full_batch_stores_nothing(self):
        batch = [record(customer_id=i + 1) for i in range(settings.CDP_MAX_BATCH_RECORDS)]
        batch[-1] = record(customer_id=10_000, pincode="012345")
        body = self.assertRefused(self.ingest(batch))
        self.assertEqual(body, {"errors": {"9999": {"pincode": [
            "Enter a pincode of exactly 6 digits that does not start with 0."]}}})
        self.assertNothingStored()

    def test_a_full_batch_of_ten_thousand_is_stored(self):
        batch = [record(customer_id=i + 1, transaction_amount="1.00") for i in range(settings.CDP_MAX_BATCH_RECORDS)]
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 200, response.content[:300])
        body = response.json()
        self.assertEqual((body["received"], body["created"], body["duplicates"], body["conflicts"]), (10_000, 10_000, 0, 0))
        self.assertEqual(Transaction.objects.count(), 10_000)

    def test_a_body_over_ten_megabytes_is_413(self):
        body = json.dumps([record(name="n" * 90, comment="x" * 2000)] * 5000).encode()
        self.assertGreater(len(body), settings.CDP_MAX_JSON_BODY_BYTES)
        self.assertEqual(self.assertRefused(self.post_raw(INGEST_URL, body), 413), {"detail": "Request body is too large."})
        self.assertNothingStored()


class ContentTypeAndEncodingTests(HostileInputTestCase):
    def test_bodies_of_other_media_types_are_415(self):
        valid = json.dumps(record()).encode()
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                             "application/xml", "text/html", "application/jsonx"):
            for url in (INGEST_URL, RANGE_URL, TOP_CUSTOMERS_URL):
                with self.subTest(content_type=content_type, url=url):
                    body = self.assertRefused(self.post_raw(url, valid, content_type), 415)
                    self.assertEqual(list(body), ["detail"])
        self.assertNothingStored()

    def test_bodies_that_are_not_utf_8_are_400(self):
        for raw in (b'{"name": "\xff\xfe"}', b'{"name": "\xc0\xaf"}', b'{"name": "\xed\xa0\x80"}',
                    json.dumps(record()).encode("utf-16"), b"\x00\x00\x00"):
            with self.subTest(raw=raw[:12]):
                body = self.assertRefused(self.post_raw(INGEST_URL, raw))
                self.assertTrue(body["detail"].startswith("JSON parse error"), body)
        self.assertNothingStored()

    def test_escaped_lone_surrogates_and_nul_characters_are_field_errors(self):
        text = json.dumps(record(name="NAME", state="STATE")).replace('"NAME"', r'"a\ud800b"').replace('"STATE"', r'"x\u0000y"')
        body = self.assertRefused(self.post_raw(INGEST_URL, text.encode()))
        self.assertEqual(body, {"name": ["Enter a name as valid Unicode text."],
                                "state": ["Null characters are not allowed."]})
        self.assertNothingStored()

    def test_a_json_scalar_or_null_body_is_400(self):
        for raw in (b"null", b"1", b'"record"', b"true"):
            with self.subTest(raw=raw):
                self.assertEqual(list(self.assertRefused(self.post_raw(INGEST_URL, raw))), ["non_field_errors"])
                self.assertEqual(self.post_raw(RANGE_URL, raw).status_code, 400)
                self.assertEqual(self.post_raw(TOP_CUSTOMERS_URL, raw).status_code, 400)
        self.assertNothingStored()


class InjectionTextTests(HostileInputTestCase):
    NAME = "Robert'); DROP TABLE transactions_transaction;-- \" OR 1=1 #"
    STATE = "<script>alert('x')</script>&amp;"

    def test_sql_and_markup_are_stored_verbatim_and_returned_verbatim_as_json(self):
        created = self.ingest(record(name=self.NAME, state=self.STATE))
        self.assertEqual(created.status_code, 201, created.content)

        row = Transaction.objects.get()
        self.assertEqual((row.name, row.state), (self.NAME, self.STATE))
        top = self.top_customers({"state": self.STATE.upper()})
        self.assertEqual(top.status_code, 200)
        self.assertEqual(top["Content-Type"], "application/json")
        self.assertEqual(top["X-Content-Type-Options"], "nosniff")
        self.assertEqual(
            top.json(), {"pincode_110001": [{"customer_id": 101, "name": self.NAME, "total_transaction_amount": 1500.75}]}
        )
        report = self.range_query({"min_amount": 0, "max_amount": 10**6, "limit": 5})
        self.assertEqual(report.json()[0]["name"], self.NAME)
        # A LIKE-style wildcard matches nothing: states are compared whole, not as patterns.
        self.assertEqual(self.top_customers({"state": "%"}).json(), {})
        self.assertEqual(self.top_customers({"state": "' OR '1'='1"}).json(), {})

    def test_the_dashboard_shows_them_escaped(self):
        self.assertEqual(self.ingest(record(name=self.NAME, state=self.STATE)).status_code, 201)
        self.client.force_login(make_user("viewer", permissions=("view_transaction", "view_customer")))

        page = self.client.get("/customers/101/")

        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertNotIn("<script>alert", html)
        self.assertIn("&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;amp;", html)
        self.assertIn("Robert&#x27;); DROP TABLE transactions_transaction;-- &quot; OR 1=1 #", html)
