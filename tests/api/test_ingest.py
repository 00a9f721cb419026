"""POST /api/ingest-data over HTTP: single records, batches, duplicates, conflicts, exact money."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django.test import TestCase, override_settings

from tests.support import ApiClientMixin, make_user, record, token_client
from transactions.api.json_codec import dumps_exact
from transactions.models import Customer, CustomerPincodeTotal, Transaction

UTC = dt.timezone.utc
INGEST_URL = "/api/ingest-data"
CREATED_MESSAGE = "Transaction data ingested successfully"
DUPLICATE_BODY = {"status": "duplicate", "message": "Duplicate transaction found, not inserted."}
CONFLICT_MESSAGE = "A different transaction is already stored for this customer at this time; not inserted."
PLACES_MESSAGE = "Enter an amount with at most 2 decimal places."


def body_of(response_or_content) -> object:
    """The JSON answer with every non-integer number as an exact Decimal."""
    content = response_or_content
    if not isinstance(content, bytes):
        # getvalue() reads a streamed answer too; it can be read only once.
        content = content.getvalue()
    return json.loads(content, parse_float=Decimal)


def stored_fields(row: Transaction) -> dict:
    return {
        "customer_id": row.customer_id,
        "name": row.name,
        "transaction_amount": row.transaction_amount,
        "mob_no": row.mob_no,
        "transaction_datetime": row.transaction_datetime,
        "pincode": row.pincode,
        "state": row.state,
        "state_key": row.state_key,
    }


class IngestTestCase(ApiClientMixin, TestCase):
    def post_json_text(self, text: str):
        """Post JSON exactly as written, so numbers reach the server as the client typed them."""
        return self.api.post(INGEST_URL, data=text, content_type="application/json")

    def record_text(self, *, amount_literal: str, **overrides) -> str:
        """A record as JSON text whose amount is the bare number literal given."""
        text = json.dumps(record(transaction_amount="__AMOUNT__", **overrides))
        return text.replace('"__AMOUNT__"', amount_literal)

    def assertCreated(self, response) -> int:
        self.assertEqual(response.status_code, 201, response.content)
        answer = body_of(response)
        self.assertEqual(set(answer), {"status", "message", "id"})
        self.assertEqual(answer["status"], "created")
        self.assertEqual(answer["message"], CREATED_MESSAGE)
        self.assertIsInstance(answer["id"], int)
        return answer["id"]


class SingleRecordTests(IngestTestCase):
    def test_new_record_is_created_and_stored_normalised(self):
        response = self.ingest(
            record(
                customer_id="101",
                name="  amit  ",
                transaction_amount="1500.75",
                mob_no="+91 98765-43210",
                transaction_datetime="2024-09-24T15:30:00Z",
                pincode=110001,
                state="  Tamil   Nadu ",
            )
        )
        transaction_id = self.assertCreated(response)
        stored = Transaction.objects.get()
        self.assertEqual(stored.pk, transaction_id)
        self.assertEqual(
            stored_fields(stored),
            {
                "customer_id": 101,
                "name": "amit",
                "transaction_amount": Decimal("1500.75"),
                "mob_no": "919876543210",
                "transaction_datetime": dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC),
                "pincode": "110001",
                "state": "Tamil Nadu",
                "state_key": "tamil nadu",
            },
        )

    def test_trailing_slash_is_accepted_too(self):
        response = self.api.post(INGEST_URL + "/", record(), format="json")
        self.assertEqual(Transaction.objects.get().pk, self.assertCreated(response))

    def test_same_key_same_payment_is_a_duplicate_and_not_stored_again(self):
        first_id = self.assertCreated(self.ingest(record()))
        response = self.ingest(record())
        self.assertEqual(response.status_code, 200)
        self.assertEqual(body_of(response), DUPLICATE_BODY)
        self.assertEqual(list(Transaction.objects.values_list("pk", flat=True)), [first_id])

    def test_state_differing_only_in_case_and_spacing_is_still_a_duplicate(self):
        self.assertCreated(self.ingest(record(state="Tamil Nadu")))
        response = self.ingest(record(state="  TAMIL   nadu"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(body_of(response), DUPLICATE_BODY)
        self.assertEqual(list(Transaction.objects.values_list("state", flat=True)), ["Tamil Nadu"])

    def test_amount_written_differently_but_equal_is_a_duplicate(self):
        self.assertCreated(self.ingest(record(transaction_amount="1500.5")))
        response = self.post_json_text(self.record_text(amount_literal="1500.50"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(body_of(response), DUPLICATE_BODY)
        self.assertEqual(Transaction.objects.count(), 1)

    def test_same_key_other_amount_is_a_conflict_and_the_stored_row_is_kept(self):
        stored_id = self.assertCreated(self.ingest(record(transaction_amount="1500.75")))
        # A user who may see personal data gets the stored record whole.
        pii_reader = token_client(make_user("pii-reader", permissions=("add_transaction", "view_pii")))
        response = pii_reader.post(
            INGEST_URL, record(transaction_amount="1600.00", name="someone else", mob_no="1111111"), format="json"
        )
        self.assertEqual(response.status_code, 409)
        self.assertEqual(
            body_of(response),
            {
                "status": "conflict",
                "message": CONFLICT_MESSAGE,
                "existing": {
                    "id": stored_id,
                    "customer_id": 101,
                    "name": "amit",
                    "transaction_amount": Decimal("1500.75"),
                    "mob_no": "9876543210",
                    "transaction_datetime": "2024-09-24T15:30:00Z",
                    "pincode": "110001",
                    "state": "Delhi",
                },
            },
        )
        self.assertEqual(
            stored_fields(Transaction.objects.get()),
            {
                "customer_id": 101,
                "name": "amit",
                "transaction_amount": Decimal("1500.75"),
                "mob_no": "9876543210",
                "transaction_datetime": dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC),
                "pincode": "110001",
                "state": "Delhi",
                "state_key": "delhi",
            },
        )

    def test_conflict_masks_the_stored_mobile_number_for_users_without_the_pii_permission(self):
        stored_id = self.assertCreated(self.ingest(record(transaction_amount="1500.75")))
        response = self.ingest(record(transaction_amount="1600.00"))
        self.assertEqual(response.status_code, 409)
        self.assertEqual(
            body_of(response)["existing"],
            {
                "id": stored_id,
                "customer_id": 101,
                "name": "amit",
                "transaction_amount": Decimal("1500.75"),
                "mob_no": "98******10",
                "transaction_datetime": "2024-09-24T15:30:00Z",
                "pincode": "110001",
                "state": "Delhi",
            },
        )
        self.assertEqual(Transaction.objects.get().mob_no, "9876543210")

    def test_same_key_other_pincode_or_state_is_a_conflict(self):
        stored_id = self.assertCreated(self.ingest(record()))
        for change in ({"pincode": "110002"}, {"state": "Haryana"}):
            with self.subTest(change=change):
                response = self.ingest(record(**change))
                self.assertEqual(response.status_code, 409)
                answer = body_of(response)
                self.assertEqual(answer["status"], "conflict")
                self.assertEqual(answer["existing"]["id"], stored_id)
                self.assertEqual((answer["existing"]["pincode"], answer["existing"]["state"]), ("110001", "Delhi"))
        self.assertEqual(list(Transaction.objects.values_list("pincode", "state")), [("110001", "Delhi")])

    def test_same_time_for_another_customer_is_a_new_transaction(self):
        first_id = self.assertCreated(self.ingest(record(customer_id=101)))
        second_id = self.assertCreated(self.ingest(record(customer_id=102)))
        self.assertNotEqual(first_id, second_id)
        self.assertEqual(sorted(Transaction.objects.values_list("customer_id", flat=True)), [101, 102])

    def test_offset_datetime_is_stored_in_utc(self):
        self.assertCreated(self.ingest(record(transaction_datetime="2024-09-24T21:00:00+05:30")))
        self.assertEqual(Transaction.objects.get().transaction_datetime, dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC))

    def test_naive_datetime_of_the_same_instant_is_a_duplicate_of_an_offset_one(self):
        self.assertCreated(self.ingest(record(transaction_datetime="2024-09-24T21:00:00+05:30")))
        response = self.ingest(record(transaction_datetime="2024-09-24T15:30:00"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(body_of(response), DUPLICATE_BODY)
        self.assertEqual(Transaction.objects.count(), 1)

    def test_unknown_fields_are_ignored(self):
        transaction_id = self.assertCreated(self.ingest(record(loyalty_tier="gold", id=99999, created_at="never")))
        stored = Transaction.objects.get()
        self.assertEqual(stored.pk, transaction_id)
        self.assertEqual((stored.customer_id, stored.transaction_amount), (101, Decimal("1500.75")))

    def test_invalid_record_is_answered_with_each_field_error_and_nothing_is_stored(self):
        broken = record(customer_id=0, pincode="012345")
        del broken["name"]
        response = self.ingest(broken)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            body_of(response),
            {
                "customer_id": ["Enter a whole number from 1 to 9223372036854775807."],
                "name": ["This field is required."],
                "pincode": ["Enter a pincode of exactly 6 digits that does not start with 0."],
            },
        )
        self.assertFalse(Transaction.objects.exists())
        self.assertFalse(Customer.objects.exists())


class ExactMoneyTests(IngestTestCase):
    def range_report(self, text: str) -> bytes:
        """The range report's answer as the raw bytes sent, to see how its numbers are written."""
        response = self.api.post("/api/query-transaction-range", data=text, content_type="application/json")
        self.assertEqual(response.status_code, 200)
        return response.getvalue()

    def test_json_number_is_stored_as_the_exact_decimal_sent(self):
        self.assertCreated(self.post_json_text(self.record_text(amount_literal="1500.75")))
        self.assertEqual(Transaction.objects.get().transaction_amount, Decimal("1500.75"))
        self.assertEqual(Customer.objects.get().total_amount, Decimal("1500.75"))

    def test_amounts_that_floats_cannot_hold_add_up_exactly(self):
        for minute, literal in ((0, "0.10"), (1, "0.2")):
            self.assertCreated(
                self.post_json_text(
                    self.record_text(
                        amount_literal=literal, customer_id=7, transaction_datetime=f"2024-01-01T00:0{minute}:00"
                    )
                )
            )
        self.assertEqual(
            sorted(Transaction.objects.values_list("transaction_amount", flat=True)), [Decimal("0.10"), Decimal("0.20")]
        )
        self.assertEqual(Customer.objects.get().total_amount, Decimal("0.30"))
        # With binary floats 0.1 + 0.2 is 0.30000000000000004 and falls outside [0.3, 0.3].
        response = self.range_report('{"min_amount": 0.3, "max_amount": 0.3, "time_period": "2038-01-01T00:00:00"}')
        self.assertEqual(
            body_of(response), [{"customer_id": 7, "name": "amit", "total_transaction_amount": Decimal("0.30")}]
        )
        self.assertIn(b'"total_transaction_amount":0.30}', response)

    def test_amounts_summed_by_the_database_over_a_window_are_exact(self):
        for moment, literal in (
            ("2024-01-01T00:00:00", "0.1"),
            ("2024-01-02T00:00:00", "0.2"),
            ("2030-01-01T00:00:00", "0.05"),
        ):
            self.assertCreated(
                self.post_json_text(
                    self.record_text(amount_literal=literal, customer_id=7, transaction_datetime=moment)
                )
            )
        # The window ends before the 2030 transaction, so the report sums rows in SQL.
        windowed = self.range_report('{"min_amount": 0.3, "max_amount": 0.3, "time_period": "2029-01-01T00:00:00"}')
        self.assertEqual(
            body_of(windowed), [{"customer_id": 7, "name": "amit", "total_transaction_amount": Decimal("0.30")}]
        )
        everything = self.range_report('{"min_amount": 0.35, "max_amount": 0.35, "time_period": "2038-01-01T00:00:00"}')
        self.assertEqual(
            body_of(everything), [{"customer_id": 7, "name": "amit", "total_transaction_amount": Decimal("0.35")}]
        )

    def test_largest_amount_is_stored_without_loss(self):
        self.assertCreated(self.post_json_text(self.record_text(amount_literal="999999999999.99")))
        self.assertEqual(Transaction.objects.get().transaction_amount, Decimal("999999999999.99"))

    def test_three_decimal_places_are_rejected_and_nothing_is_stored(self):
        response = self.post_json_text(self.record_text(amount_literal="1500.755"))
        self.assertEqual(response.status_code, 400)
        self.assertEqual(body_of(response), {"transaction_amount": [PLACES_MESSAGE]})
        self.assertFalse(Transaction.objects.exists())
        self.assertFalse(Customer.objects.exists())

    def test_nan_literal_is_malformed_json(self):
        response = self.post_json_text(self.record_text(amount_literal="NaN"))
        self.assertEqual(response.status_code, 400)
        self.assertEqual(body_of(response), {"detail": "JSON parse error - NaN is not valid JSON"})
        self.assertFalse(Transaction.objects.exists())


class MalformedBodyTests(IngestTestCase):
    def test_body_that_is_not_json_is_a_parse_error(self):
        response = self.api.post(INGEST_URL, data='{"customer_id": 101,', content_type="application/json")
        self.assertEqual(response.status_code, 400)
        answer = body_of(response)
        self.assertEqual(list(answer), ["detail"])
        self.assertTrue(answer["detail"].startswith("JSON parse error - "), answer)
        self.assertFalse(Transaction.objects.exists())

    def test_body_that_is_not_utf8_is_a_parse_error(self):
        response = self.api.post(INGEST_URL, data=b'{"name": "\xff"}', content_type="application/json")
        self.assertEqual(response.status_code, 400)
        self.assertEqual(body_of(response), {"detail": "JSON parse error - the body is not valid UTF-8."})

    def test_json_scalar_body_is_rejected(self):
        for text in ("42", '"a record"', "true", "null"):
            with self.subTest(body=text):
                response = self.post_json_text(text)
                self.assertEqual(response.status_code, 400)
                self.assertEqual(
                    body_of(response),
                    {"non_field_errors": ["Expected a transaction record (a JSON object) or an array of them."]},
                )
        self.assertFalse(Transaction.objects.exists())

    @override_settings(CDP_MAX_JSON_BODY_BYTES=2000)
    def test_body_over_the_size_limit_is_refused_with_413(self):
        batch = [record(customer_id=customer_id) for customer_id in range(1, 21)]
        self.assertGreater(len(json.dumps(batch)), 2000)
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 413)
        self.assertEqual(body_of(response), {"detail": "Request body is too large."})
        self.assertFalse(Transaction.objects.exists())

    def test_wrong_method_is_405(self):
        response = self.api.get(INGEST_URL)
        self.assertEqual(response.status_code, 405)
        self.assertEqual(body_of(response), {"detail": 'Method "GET" not allowed.'})


class IngestPermissionTests(TestCase):
    def test_request_without_credentials_is_401_and_stores_nothing(self):
        response = self.client.post(INGEST_URL, data=json.dumps(record()), content_type="application/json")
        self.assertEqual(response.status_code, 401)
        self.assertEqual(body_of(response), {"detail": "Authentication credentials were not provided."})
        self.assertFalse(Transaction.objects.exists())

    def test_user_without_the_add_permission_is_403_and_stores_nothing(self):
        viewer = token_client(make_user("viewer", permissions=("view_transaction",)))
        response = viewer.post(INGEST_URL, record(), format="json")
        self.assertEqual(response.status_code, 403)
        self.assertEqual(set(body_of(response)), {"detail"})
        self.assertFalse(Transaction.objects.exists())


class BatchTests(IngestTestCase):
    def test_batch_answers_counts_and_one_result_per_record(self):
        batch = [
            record(customer_id=1, transaction_datetime="2024-01-01T00:00:00"),
            record(customer_id=2, transaction_datetime="2024-01-01T00:00:00"),
            record(customer_id=1, transaction_datetime="2024-01-02T00:00:00"),
        ]
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response),
            {
                "received": 3,
                "created": 3,
                "duplicates": 0,
                "conflicts": 0,
                "results": [
                    {"index": 0, "status": "created"},
                    {"index": 1, "status": "created"},
                    {"index": 2, "status": "created"},
                ],
            },
        )
        self.assertEqual(
            sorted(Transaction.objects.values_list("customer_id", "transaction_datetime")),
            [
                (1, dt.datetime(2024, 1, 1, tzinfo=UTC)),
                (1, dt.datetime(2024, 1, 2, tzinfo=UTC)),
                (2, dt.datetime(2024, 1, 1, tzinfo=UTC)),
            ],
        )

    def test_single_record_batch_is_answered_as_a_batch(self):
        response = self.ingest([record()])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response),
            {
                "received": 1,
                "created": 1,
                "duplicates": 0,
                "conflicts": 0,
                "results": [{"index": 0, "status": "created"}],
            },
        )
        self.assertEqual(Transaction.objects.count(), 1)

    def test_batch_against_stored_rows_reports_duplicates_and_conflicts(self):
        self.assertCreated(self.ingest(record(transaction_datetime="2024-01-01T00:00:00", transaction_amount="10.00")))
        self.assertCreated(self.ingest(record(transaction_datetime="2024-01-02T00:00:00", transaction_amount="20.00")))
        response = self.ingest(
            [
                record(transaction_datetime="2024-01-03T00:00:00", transaction_amount="30.00"),
                record(transaction_datetime="2024-01-01T00:00:00", transaction_amount="10", state="DELHI"),
                record(transaction_datetime="2024-01-02T00:00:00", transaction_amount="21.00"),
            ]
        )
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response),
            {
                "received": 3,
                "created": 1,
                "duplicates": 1,
                "conflicts": 1,
                "results": [
                    {"index": 0, "status": "created"},
                    {"index": 1, "status": "duplicate"},
                    {"index": 2, "status": "conflict"},
                ],
            },
        )
        # Written directly (json_codec.batch_answer_json): byte for byte what the renderer writes.
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response.content, dumps_exact(body_of(response)).encode())
        self.assertEqual(
            sorted(Transaction.objects.values_list("transaction_amount", flat=True)),
            [Decimal("10.00"), Decimal("20.00"), Decimal("30.00")],
        )

    def test_identical_records_in_one_batch_are_created_once_then_duplicate(self):
        response = self.ingest([record(), record(state="delhi")])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response),
            {
                "received": 2,
                "created": 1,
                "duplicates": 1,
                "conflicts": 0,
                "results": [{"index": 0, "status": "created"}, {"index": 1, "status": "duplicate"}],
            },
        )
        self.assertEqual(Transaction.objects.count(), 1)
        self.assertEqual(Customer.objects.get().total_amount, Decimal("1500.75"))

    def test_conflicting_records_in_one_batch_keep_the_first(self):
        response = self.ingest([record(transaction_amount="100.00"), record(transaction_amount="200.00")])
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response),
            {
                "received": 2,
                "created": 1,
                "duplicates": 0,
                "conflicts": 1,
                "results": [{"index": 0, "status": "created"}, {"index": 1, "status": "conflict"}],
            },
        )
        self.assertEqual(list(Transaction.objects.values_list("transaction_amount", flat=True)), [Decimal("100.00")])
        self.assertEqual(Customer.objects.get().total_amount, Decimal("100.00"))

    def test_one_invalid_record_rejects_the_whole_batch(self):
        batch = [record(customer_id=customer_id) for customer_id in range(1, 6)]
        batch[2]["transaction_amount"] = "12.345"
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(body_of(response), {"errors": {"2": {"transaction_amount": [PLACES_MESSAGE]}}})
        self.assertFalse(Transaction.objects.exists())
        self.assertFalse(Customer.objects.exists())
        self.assertFalse(CustomerPincodeTotal.objects.exists())

    def test_every_invalid_record_is_reported_by_its_index(self):
        batch = [record(customer_id=customer_id) for customer_id in range(1, 5)]
        batch[0]["pincode"] = "12345"
        del batch[3]["state"]
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            body_of(response),
            {
                "errors": {
                    "0": {"pincode": ["Enter a pincode of exactly 6 digits that does not start with 0."]},
                    "3": {"state": ["This field is required."]},
                }
            },
        )
        self.assertFalse(Transaction.objects.exists())

    def test_item_that_is_not_an_object_is_an_error_at_its_index(self):
        response = self.ingest([record(), "not a record", 42])
        self.assertEqual(response.status_code, 400)
        not_a_record = {"non_field_errors": ["Expected a transaction record (a JSON object)."]}
        self.assertEqual(body_of(response), {"errors": {"1": not_a_record, "2": not_a_record}})
        self.assertFalse(Transaction.objects.exists())

    def test_empty_batch_is_rejected(self):
        response = self.ingest([])
        self.assertEqual(response.status_code, 400)
        self.assertEqual(body_of(response), {"non_field_errors": ["A batch holds 1 to 10000 records, not 0."]})

    def test_batch_of_10001_records_is_rejected_and_nothing_is_stored(self):
        start = dt.datetime(2024, 1, 1, tzinfo=UTC)
        batch = [
            record(customer_id=1 + i % 100, transaction_datetime=(start + dt.timedelta(minutes=i)).isoformat())
            for i in range(10_001)
        ]
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(body_of(response), {"non_field_errors": ["A batch holds 1 to 10000 records, not 10001."]})
        self.assertFalse(Transaction.objects.exists())

    def test_batch_of_10000_records_is_stored_whole(self):
        start = dt.datetime(2024, 1, 1, tzinfo=UTC)
        batch = [
            record(
                customer_id=1 + i % 100,
                transaction_amount="0.01",
                transaction_datetime=(start + dt.timedelta(minutes=i)).isoformat(),
            )
            for i in range(10_000)
        ]
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 200)
        answer = body_of(response)
        self.assertEqual(
            {key: answer[key] for key in ("received", "created", "duplicates", "conflicts")},
            {"received": 10_000, "created": 10_000, "duplicates": 0, "conflicts": 0},
        )
        self.assertEqual(answer["results"], [{"index": i, "status": "created"} for i in range(10_000)])
        self.assertEqual(Transaction.objects.count(), 10_000)
        self.assertEqual(
            set(Customer.objects.values_list("total_amount", "transaction_count")), {(Decimal("1.00"), 100)}
        )


class CustomerTotalsTests(IngestTestCase):
    def customer(self, customer_id: int) -> dict:
        return Customer.objects.values("name", "mob_no", "total_amount", "transaction_count").get(pk=customer_id)

    def test_totals_follow_created_transactions_only(self):
        self.assertCreated(
            self.ingest(record(customer_id=5, transaction_datetime="2024-01-01T00:00:00", transaction_amount="100.25"))
        )
        self.assertCreated(
            self.ingest(record(customer_id=5, transaction_datetime="2024-01-02T00:00:00", transaction_amount="50.50"))
        )
        self.assertEqual(
            self.ingest(
                record(customer_id=5, transaction_datetime="2024-01-02T00:00:00", transaction_amount="50.50")
            ).status_code,
            200,
        )
        self.assertEqual(
            self.ingest(
                record(customer_id=5, transaction_datetime="2024-01-02T00:00:00", transaction_amount="75.00")
            ).status_code,
            409,
        )
        self.assertEqual(
            self.customer(5),
            {"name": "amit", "mob_no": "9876543210", "total_amount": Decimal("150.75"), "transaction_count": 2},
        )

    def test_totals_follow_a_batch(self):
        self.ingest(
            [
                record(customer_id=1, transaction_datetime="2024-01-01T00:00:00", transaction_amount="1.10"),
                record(customer_id=2, transaction_datetime="2024-01-01T00:00:00", transaction_amount="2.20"),
                record(customer_id=1, transaction_datetime="2024-01-03T00:00:00", transaction_amount="3.30"),
                record(customer_id=1, transaction_datetime="2024-01-03T00:00:00", transaction_amount="3.30"),
            ]
        )
        self.assertEqual(
            list(Customer.objects.order_by("pk").values_list("pk", "total_amount", "transaction_count")),
            [(1, Decimal("4.40"), 2), (2, Decimal("2.20"), 1)],
        )

    def test_name_and_mobile_are_those_of_the_most_recent_transaction_even_if_it_arrived_first(self):
        self.assertCreated(
            self.ingest(
                record(
                    customer_id=9, name="Amit Kumar", mob_no="9000000002", transaction_datetime="2024-06-01T00:00:00"
                )
            )
        )
        self.assertCreated(
            self.ingest(
                record(customer_id=9, name="amit", mob_no="9000000001", transaction_datetime="2024-01-01T00:00:00")
            )
        )
        self.assertEqual(
            self.customer(9),
            {"name": "Amit Kumar", "mob_no": "9000000002", "total_amount": Decimal("3001.50"), "transaction_count": 2},
        )
        self.assertCreated(
            self.ingest(
                record(customer_id=9, name="A. Kumar", mob_no="9000000003", transaction_datetime="2024-07-01T00:00:00")
            )
        )
        self.assertEqual(
            self.customer(9),
            {"name": "A. Kumar", "mob_no": "9000000003", "total_amount": Decimal("4502.25"), "transaction_count": 3},
        )

    def test_most_recent_details_win_inside_a_batch_in_any_order(self):
        self.ingest(
            [
                record(customer_id=9, name="newest", mob_no="9000000003", transaction_datetime="2024-03-01T00:00:00"),
                record(customer_id=9, name="oldest", mob_no="9000000001", transaction_datetime="2024-01-01T00:00:00"),
                record(customer_id=9, name="middle", mob_no="9000000002", transaction_datetime="2024-02-01T00:00:00"),
            ]
        )
        self.assertEqual((self.customer(9)["name"], self.customer(9)["mob_no"]), ("newest", "9000000003"))

    def test_reports_show_the_most_recent_name(self):
        self.ingest(
            record(customer_id=9, name="current", transaction_datetime="2024-06-01T00:00:00", transaction_amount="10")
        )
        self.ingest(
            record(customer_id=9, name="former", transaction_datetime="2024-01-01T00:00:00", transaction_amount="5")
        )
        response = self.range_query({"min_amount": 0, "max_amount": 100})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            body_of(response), [{"customer_id": 9, "name": "current", "total_transaction_amount": Decimal("15.00")}]
        )

    def test_per_pincode_totals_group_states_case_insensitively(self):
        self.ingest(
            [
                record(
                    customer_id=3,
                    state="Punjab",
                    pincode="140001",
                    transaction_datetime="2024-01-01T00:00:00",
                    transaction_amount="10",
                ),
                record(
                    customer_id=3,
                    state="PUNJAB",
                    pincode="140001",
                    transaction_datetime="2024-01-02T00:00:00",
                    transaction_amount="5",
                ),
                record(
                    customer_id=3,
                    state="punjab",
                    pincode="140002",
                    transaction_datetime="2024-01-03T00:00:00",
                    transaction_amount="1",
                ),
            ]
        )
        self.assertEqual(
            sorted(
                CustomerPincodeTotal.objects.values_list(
                    "customer_id", "state_key", "pincode", "total_amount", "transaction_count"
                )
            ),
            [(3, "punjab", "140001", Decimal("15.00"), 2), (3, "punjab", "140002", Decimal("1.00"), 1)],
        )
