import csv
import io
import json
import tempfile
from pathlib import Path

from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import TestCase
from rest_framework.test import APIClient

from tests.support import record
from transactions.models import Customer, Transaction
from transactions.validation import TRANSACTION_FIELDS, RecordInvalid, parse_transaction_record


def run_command(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


class GenerateTransactionsCommandTest(TestCase):
    def test_same_seed_gives_the_same_csv_and_another_seed_does_not(self):
        first = run_command("generate_transactions", "--rows", "500", "--customers", "50", "--seed", "3")
        again = run_command("generate_transactions", "--rows", "500", "--customers", "50", "--seed", "3")
        other = run_command("generate_transactions", "--rows", "500", "--customers", "50", "--seed", "4")
        self.assertEqual(first, again)
        self.assertNotEqual(first, other)

    def test_csv_has_the_seven_fields_and_every_row_is_a_valid_record(self):
        text = run_command("generate_transactions", "--rows", "2000", "--customers", "100")
        rows = list(csv.DictReader(io.StringIO(text)))
        self.assertEqual(tuple(csv.reader(io.StringIO(text)).__next__()), TRANSACTION_FIELDS)
        self.assertEqual(len(rows), 2000)
        invalid = []
        for row in rows:
            try:
                parse_transaction_record(row)
            except RecordInvalid as exc:
                invalid.append(exc.errors)
        self.assertEqual(invalid, [])
        self.assertLessEqual(len({row["customer_id"] for row in rows}), 100)

    def test_about_one_percent_of_records_repeat_a_key(self):
        text = run_command("generate_transactions", "--rows", "20000", "--customers", "2000", "--format", "ndjson")
        records = [json.loads(line) for line in text.splitlines()]
        keys = [(r["customer_id"], r["transaction_datetime"]) for r in records]
        repeats = len(keys) - len(set(keys))
        self.assertEqual(len(records), 20000)
        self.assertGreater(repeats, 20000 * 0.005)
        self.assertLess(repeats, 20000 * 0.02)

    def test_writes_to_a_file_when_asked(self):
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "out.ndjson"
            run_command("generate_transactions", "--rows", "7", "--format", "ndjson", "--output", str(target))
            lines = target.read_text(encoding="utf-8").splitlines()
        self.assertEqual(len(lines), 7)
        self.assertEqual(set(json.loads(lines[0])), set(TRANSACTION_FIELDS))


class LoadDemoDataCommandTest(TestCase):
    def test_loads_the_generated_records_and_a_second_run_adds_nothing(self):
        output = run_command("load_demo_data", "--rows", "3000")
        stored = Transaction.objects.count()
        text = run_command("generate_transactions", "--rows", "3000", "--customers", "300")
        distinct_keys = {(row["customer_id"], row["transaction_datetime"]) for row in csv.DictReader(io.StringIO(text))}
        self.assertEqual(stored, len(distinct_keys))
        self.assertIn(f"{stored} created", output)

        again = run_command("load_demo_data", "--rows", "3000")
        self.assertEqual(Transaction.objects.count(), stored)
        self.assertIn("0 created", again)
        self.assertEqual(Customer.objects.count(), len({key[0] for key in distinct_keys}))


class CreateApiClientCommandTest(TestCase):
    def test_printed_token_can_ingest_and_query(self):
        token = run_command("create_api_client", "partner-bank").strip()
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

        created = client.post("/api/ingest-data", record(), format="json")
        top = client.post("/api/top-customers", {"state": "delhi"}, format="json")

        self.assertEqual(created.status_code, 201, created.content)
        self.assertEqual(top.json(), {"pincode_110001": [{"customer_id": 101, "name": "amit", "total_transaction_amount": 1500.75}]})
        self.assertFalse(User.objects.get(username="partner-bank").has_usable_password())

    def test_running_again_keeps_the_token_and_sets_a_password(self):
        first = run_command("create_api_client", "analyst").strip()
        second = run_command("create_api_client", "analyst", "--password", "a-long-password-1").strip()
        self.assertEqual(first, second)
        self.assertTrue(User.objects.get(username="analyst").check_password("a-long-password-1"))

    def test_demo_banner_names_the_login_and_the_token(self):
        output = run_command("create_api_client", "demo", "--password", "demo-password", "--demo")
        token = User.objects.get(username="demo").auth_token.key
        self.assertIn("demo / demo-password", output)
        self.assertIn(token, output)
