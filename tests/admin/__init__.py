"""The operators' admin, driven over HTTP as an operator would, with the reports checked after.

``AdminTestCase`` ingests a small known data set through the API, logs an operator in to the
admin and gives the tests the two report endpoints (queried as an api-client), so every
correction can be followed by the full answer the reports give afterwards.
"""

from __future__ import annotations

import json
from decimal import Decimal

from django.contrib.auth.models import User
from django.test import Client, TestCase

from tests.support import clear_caches, record, token_client
from transactions import services
from transactions.models import Transaction

# Ends the windowed queries: after January's transactions, before February's and March's.
WINDOW_END = "2024-02-01T00:00:00Z"
# Ends a window that holds everything, which makes the reports read the running totals.
FAR_FUTURE = "2999-12-31T23:59:59Z"

# Customer 1 (asha) and 2 (bala) in Delhi, customer 3 (chitra) in Punjab.
TRANSACTIONS = [
    record(customer_id=1, name="asha", mob_no="9876543210", transaction_amount="100.00",
           transaction_datetime="2024-01-10T10:00:00Z", pincode="110001", state="Delhi"),
    record(customer_id=1, name="asha", mob_no="9876543210", transaction_amount="200.00",
           transaction_datetime="2024-02-10T10:00:00Z", pincode="110001", state="Delhi"),
    record(customer_id=2, name="bala", mob_no="9123456789", transaction_amount="250.00",
           transaction_datetime="2024-01-15T10:00:00Z", pincode="110001", state="Delhi"),
    record(customer_id=2, name="bala", mob_no="9123456789", transaction_amount="50.00",
           transaction_datetime="2024-03-01T10:00:00Z", pincode="110002", state="Delhi"),
    record(customer_id=3, name="chitra", mob_no="9988776655", transaction_amount="400.00",
           transaction_datetime="2024-01-20T10:00:00Z", pincode="140001", state="Punjab"),
]


def total(customer_id: int, name: str, amount: str) -> dict:
    """One customer as both reports answer it."""
    return {"customer_id": customer_id, "name": name, "total_transaction_amount": Decimal(amount)}


# What the reports answer for TRANSACTIONS before any correction:
# all time:          chitra (3) 400.00, asha (1) 300.00, bala (2) 300.00
# up to WINDOW_END:  chitra (3) 400.00, bala (2) 250.00, asha (1) 100.00
# Delhi, all time:   110001: asha 300.00, bala 250.00;  110002: bala 50.00
# Delhi, window:     110001: bala 250.00, asha 100.00
# Punjab, all time:  140001: chitra 400.00 (none of it after WINDOW_END)

TRANSACTION_LIST = "/admin/transactions/transaction/"
CUSTOMER_LIST = "/admin/transactions/customer/"

RANGE_BEFORE = dict(
    all_time=[total(3, "chitra", "400.00"), total(1, "asha", "300.00"), total(2, "bala", "300.00")],
    window=[total(3, "chitra", "400.00"), total(2, "bala", "250.00"), total(1, "asha", "100.00")],
)
DELHI_BEFORE = dict(
    all_time={
        "pincode_110001": [total(1, "asha", "300.00"), total(2, "bala", "250.00")],
        "pincode_110002": [total(2, "bala", "50.00")],
    },
    window={"pincode_110001": [total(2, "bala", "250.00"), total(1, "asha", "100.00")]},
)
PUNJAB_BEFORE = dict(
    all_time={"pincode_140001": [total(3, "chitra", "400.00")]},
    window={"pincode_140001": [total(3, "chitra", "400.00")]},
)


def make_role_user(username: str, role: str) -> User:
    user = User.objects.create_user(username=username, password="a-long-test-password")
    services.assign_role(user=user, role=role)
    return user


class AdminTestCase(TestCase):
    """The data set above, an operator logged in to the admin, and the reports at hand."""

    @classmethod
    def setUpTestData(cls):
        # Built once per class; each test starts from it (Django rolls every test back to here).
        # Groups are rows, not migrations: a fresh test database has none until this runs.
        services.ensure_roles()
        cls.api_user = make_role_user("machine", "api-client")
        cls.operator = make_role_user("olga", "operator")
        clear_caches()
        response = token_client(cls.api_user).post("/api/ingest-data", TRANSACTIONS, format="json")
        if response.status_code != 200 or json.loads(response.content)["created"] != len(TRANSACTIONS):
            raise AssertionError(f"the data set was not stored: {response.status_code} {response.content!r}")

    def setUp(self):
        super().setUp()
        clear_caches()  # throttle counters outlive a test
        self.api = token_client(self.api_user)
        self.admin = Client()
        self.admin.force_login(self.operator)

    # --- data ------------------------------------------------------------------------------

    def ingest(self, records: list[dict]) -> None:
        response = self.api.post("/api/ingest-data", records, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        self.assertEqual(json.loads(response.content)["created"], len(records), response.content)

    def transaction_at(self, customer_id: int, moment: str) -> Transaction:
        return Transaction.objects.get(customer_id=customer_id, transaction_datetime=moment)

    # --- reports ---------------------------------------------------------------------------

    def range_report(self, **window) -> list[dict]:
        response = self.api.post(
            "/api/query-transaction-range", {"min_amount": 0, "max_amount": 1_000_000, **window}, format="json"
        )
        self.assertEqual(response.status_code, 200)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return json.loads(body, parse_float=Decimal)

    def top_customers(self, state: str, **window) -> dict:
        response = self.api.post("/api/top-customers", {"state": state, **window}, format="json")
        self.assertEqual(response.status_code, 200, response.content)
        return json.loads(response.content, parse_float=Decimal)

    def assertRangeReport(self, *, all_time: list[dict], window: list[dict]) -> None:
        """The range answer with no time_period and with one past every row (both read the
        running totals), and the answer of the window ending at WINDOW_END (summed in SQL)."""
        self.assertEqual(self.range_report(), all_time)
        self.assertEqual(self.range_report(time_period=FAR_FUTURE), all_time)
        self.assertEqual(self.range_report(time_period=WINDOW_END), window)

    def assertTopCustomers(self, state: str, *, all_time: dict, window: dict) -> None:
        self.assertEqual(self.top_customers(state), all_time)
        self.assertEqual(self.top_customers(state, time_period=FAR_FUTURE), all_time)
        self.assertEqual(self.top_customers(state, time_period=WINDOW_END), window)

    # --- admin forms -----------------------------------------------------------------------

    def change_form_data(self, url: str, **changes) -> dict:
        """GET a change page and return its form's current values, with `changes` applied."""
        response = self.admin.get(url)
        self.assertEqual(response.status_code, 200)
        form = response.context["adminform"].form
        data = {name: form[name].value() for name in form.fields}
        data = {name: "" if value is None else str(value) for name, value in data.items()}
        data.update(changes)
        return data

    def post_change(self, url: str, **changes):
        """Submit the change form of `url` as an operator would, with some fields edited."""
        return self.admin.post(url, self.change_form_data(url, **changes))


def transaction_url(row: Transaction, page: str = "change") -> str:
    return f"/admin/transactions/transaction/{row.pk}/{page}/"


def customer_url(customer_id: int, page: str = "change") -> str:
    return f"/admin/transactions/customer/{customer_id}/{page}/"
