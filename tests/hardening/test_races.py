"""Races: eight clients post the same records, each in its own shuffled order, to a real
multi-worker gunicorn on the test database.

Whatever the interleaving, each key must be stored exactly once, exactly one response in all
must say it created it, no response may be a 5xx (lock waits and deadlocks are retried inside
``services.ingest_transactions``), and the running totals kept beside the rows must agree with
the rows.

Sizes: the batch test sends all 10,000 records per client (80,000 records in 80 batches of
1,000), on every backend. The single-record test sends 1,250 records per client (10,000
requests in all): 8 x 10,000 single requests would take 10-15 minutes on a 2-core CI machine,
and the races that matter (two requests for the same customer at once) are denser with fewer customers, not
rarer. On SQLite the single-record test sends 500 records per client (4,000 requests): SQLite
serialises writers, so there is less to race and each request waits its turn, but the answers
and counts must still be right.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections import Counter
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Sum
from django.test import TransactionTestCase
from rest_framework.authtoken.models import Token

from tests.hardening.support import Gunicorn, database_url_of_test_run
from tests.support import (
    clear_caches,
    make_user,
    monthly_totals,
    monthly_totals_grouped_from_transactions,
    pincode_totals,
    pincode_totals_grouped_from_transactions,
    slow_on_each_database,
)
from transactions.models import Customer, CustomerPincodeTotal, Transaction

CLIENTS = 8
WORKERS = 4
BATCH_SIZE = 1_000
STATES = ("Punjab", "Delhi", "Gujarat", "Kerala")


def race_records(*, customers: int, per_customer: int) -> list[dict]:
    """Distinct keys: `per_customer` transactions for each customer, at distinct times."""
    rng = random.Random(customers * 7919 + per_customer)
    start = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    records = []
    for customer_id in range(1, customers + 1):
        for n in range(per_customer):
            records.append(
                {
                    "customer_id": customer_id,
                    "name": f"customer {customer_id}",
                    "transaction_amount": f"{rng.randint(1, 10_000_000) / 100:.2f}",
                    "mob_no": f"98{customer_id:08d}",
                    "transaction_datetime": (start + dt.timedelta(hours=n, seconds=customer_id)).isoformat(),
                    "pincode": str(110001 + n % 3),
                    "state": STATES[(customer_id + n) % len(STATES)],
                }
            )
    return records


@slow_on_each_database
class IngestRaceTests(TransactionTestCase):
    def setUp(self):
        clear_caches()
        self.token = Token.objects.create(user=make_user("racer")).key
        # LOG_LEVEL=INFO lets the service's "retrying" lines through, to count the races won.
        self.server = Gunicorn(
            database_url=database_url_of_test_run(), workers=WORKERS, environment={"LOG_LEVEL": "INFO"}
        )
        self.addCleanup(self.server.stop)

    def race(self, requests_per_client: list[list[object]]) -> list[tuple[int, object]]:
        """Send each client's bodies in order, all clients at once; (status, body) of every answer."""
        answers: list[tuple[int, object]] = []
        lock = threading.Lock()
        failures: list[BaseException] = []
        start = threading.Barrier(len(requests_per_client))

        def client(bodies: list[object]) -> None:
            try:
                start.wait()
                for body in bodies:
                    answer = self.server.call("POST", "/api/ingest-data", body=body, token=self.token, timeout=120)
                    parsed = answer.json() if answer.headers.get("Content-Type") == "application/json" else answer.body
                    with lock:
                        answers.append((answer.status, parsed))
            except BaseException as exc:  # reported below, with the server's log
                failures.append(exc)

        threads = [threading.Thread(target=client, args=(bodies,)) for bodies in requests_per_client]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(failures, [], self.server.log())
        return answers

    def assertStoredExactly(self, records: list[dict]) -> None:
        sent = {(r["customer_id"], dt.datetime.fromisoformat(r["transaction_datetime"])) for r in records}
        stored = set(Transaction.objects.values_list("customer_id", "transaction_datetime"))
        self.assertEqual(len(stored), Transaction.objects.count())  # the unique constraint held
        self.assertEqual(stored, sent)

    def assertTotalsAgreeWithRows(self, records: list[dict]) -> None:
        expected: dict[int, list] = {}
        for r in records:
            entry = expected.setdefault(r["customer_id"], [Decimal("0"), 0])
            entry[0] += Decimal(r["transaction_amount"])
            entry[1] += 1
        customers = {c.customer_id: [c.total_amount, c.transaction_count] for c in Customer.objects.all()}
        self.assertEqual(customers, expected)
        by_pincode = {
            (row["customer_id"], row["state_key"], row["pincode"]): (row["total"], row["count"])
            for row in Transaction.objects.values("customer_id", "state_key", "pincode").annotate(
                total=Sum("transaction_amount"), count=Count("id")
            )
        }
        kept = {
            (t.customer_id, t.state_key, t.pincode): (t.total_amount, t.transaction_count)
            for t in CustomerPincodeTotal.objects.all()
        }
        self.assertEqual(kept, by_pincode)
        # The month and pincode totals every request updated.
        self.assertEqual(monthly_totals(), monthly_totals_grouped_from_transactions())
        self.assertEqual(pincode_totals(), pincode_totals_grouped_from_transactions())

    def report(self, what: str, answers: list[tuple[int, object]], records: int, seconds: float) -> str:
        retries = self.server.log_text().count("retrying")
        statuses = Counter(status for status, _ in answers)
        line = (
            f"\nrace on {connection.vendor}, {what}: {len(answers)} requests from {CLIENTS} clients, "
            f"{records} distinct keys, {seconds:.1f} s, statuses {dict(sorted(statuses.items()))}, "
            f"ingest retries inside the service: {retries}"
        )
        print(line)  # the figures docs/RELIABILITY.md quotes
        return line

    def test_eight_clients_posting_the_same_batches_in_shuffled_orders_store_each_key_once(self):
        records = race_records(customers=1_000, per_customer=10)
        per_client = []
        for client in range(CLIENTS):
            shuffled = records[:]
            random.Random(client).shuffle(shuffled)
            per_client.append([shuffled[i:i + BATCH_SIZE] for i in range(0, len(shuffled), BATCH_SIZE)])

        started = time.monotonic()
        answers = self.race(per_client)
        summary = self.report("batches of 1,000", answers, len(records), time.monotonic() - started)

        self.assertEqual([status for status, _ in answers if status >= 500], [], summary + self.server.log())
        self.assertEqual(Counter(status for status, _ in answers), {200: len(answers)}, summary)
        self.assertEqual(len(answers), CLIENTS * len(per_client[0]))
        created = sum(body["created"] for _, body in answers)
        duplicates = sum(body["duplicates"] for _, body in answers)
        self.assertEqual(created, len(records), summary)
        self.assertEqual(duplicates, (CLIENTS - 1) * len(records), summary)
        self.assertEqual(sum(body["conflicts"] for _, body in answers), 0)
        self.assertStoredExactly(records)
        self.assertTotalsAgreeWithRows(records)

    def test_eight_clients_posting_the_same_single_records_in_shuffled_orders_store_each_key_once(self):
        # 125 customers x 10: every customer is wanted by several clients at any moment.
        records = race_records(customers=125, per_customer=10) if connection.vendor != "sqlite" else \
            race_records(customers=50, per_customer=10)
        per_client = []
        for client in range(CLIENTS):
            shuffled = records[:]
            random.Random(100 + client).shuffle(shuffled)
            per_client.append(shuffled)

        started = time.monotonic()
        answers = self.race(per_client)
        summary = self.report("single records", answers, len(records), time.monotonic() - started)

        self.assertEqual([status for status, _ in answers if status >= 500], [], summary + self.server.log())
        statuses = Counter(status for status, _ in answers)
        self.assertEqual(statuses, {201: len(records), 200: (CLIENTS - 1) * len(records)}, summary)
        self.assertEqual(Counter(body["status"] for _, body in answers),
                         {"created": len(records), "duplicate": (CLIENTS - 1) * len(records)})
        created_ids = [body["id"] for _, body in answers if body["status"] == "created"]
        self.assertEqual(sorted(created_ids), sorted(Transaction.objects.values_list("id", flat=True)))
        self.assertStoredExactly(records)
        self.assertTotalsAgreeWithRows(records)
