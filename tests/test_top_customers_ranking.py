"""The all-time top-customers ranking against a ranking worked out in Python from the rows.

On MySQL and PostgreSQL each pincode is ranked by its own ``ORDER BY ... LIMIT`` (joined with
UNION ALL, a few pincodes a statement); SQLite ranks with ROW_NUMBER(). Either way the answer
must be the stored transactions' totals per customer and pincode, biggest first, ties by
customer id; a customer with no transactions left in a pincode is not listed there.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal
from unittest import mock

from django.test import TestCase

from tests.support import record
from transactions import selectors, services
from transactions.models import CustomerPincodeTotal, Transaction
from transactions.validation import parse_transaction_record


class TopCustomersRankingTests(TestCase):
    def setUp(self):
        rng = random.Random(7)
        records = []
        for n in range(400):
            customer_id = rng.randint(1, 60)
            records.append(record(
                customer_id=customer_id,
                name=f"c{customer_id}",
                # Few distinct amounts, so totals tie often and the customer id must decide.
                transaction_amount=str(rng.choice(["10.00", "20.00", "35.50"])),
                transaction_datetime=f"2024-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}T{n % 24:02}:{n % 60:02}:00Z",
                pincode=rng.choice(["110001", "110002", "110003", "110004", "110005"]),
                state=rng.choice(["Delhi", "DELHI", "delhi"]),
            ))
        services.ingest_transactions(records=[parse_transaction_record(r) for r in records])
        # Customer 7's transactions in one pincode are deleted, and customer 8 has a total row
        # at zero there, as a total emptied by corrections would be: neither is listed.
        gone = Transaction.objects.filter(customer_id=7, pincode="110003")
        self.assertTrue(gone.exists())
        services.delete_transactions(rows=gone)
        CustomerPincodeTotal.objects.filter(customer_id=8).delete()
        CustomerPincodeTotal.objects.create(
            customer_id=8, state_key="delhi", state="Delhi", pincode="110003", total_amount=Decimal("0"), transaction_count=0
        )

    def expected(self, limit: int) -> dict[str, list[tuple[int, Decimal]]]:
        totals: dict[tuple[str, int], Decimal] = defaultdict(Decimal)
        stored = Transaction.objects.exclude(customer_id=8).values_list("pincode", "customer_id", "transaction_amount")
        for pincode, customer_id, amount in stored:
            totals[(pincode, customer_id)] += amount
        by_pincode: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
        for (pincode, customer_id), total in totals.items():
            by_pincode[pincode].append((customer_id, total))
        return {
            pincode: sorted(customers, key=lambda pair: (-pair[1], pair[0]))[:limit]
            for pincode, customers in sorted(by_pincode.items())
        }

    def ranked(self, limit: int) -> dict[str, list[tuple[int, Decimal]]]:
        answer = selectors.top_customers_by_pincode(state="Delhi", limit=limit)
        return {
            pincode: [(c.customer_id, c.total_transaction_amount) for c in customers]
            for pincode, customers in answer.items()
        }

    def test_ranking_matches_the_stored_transactions(self):
        for limit in (1, 5, 100):
            with self.subTest(limit=limit):
                expected = self.expected(limit)
                self.assertEqual(len(expected), 5)
                self.assertEqual(self.ranked(limit), expected)
                self.assertEqual(list(self.ranked(limit)), list(expected))

    def test_pincodes_split_over_several_statements_give_the_same_answer(self):
        with mock.patch.object(selectors, "PINCODES_PER_QUERY", 2):
            self.assertEqual(self.ranked(5), self.expected(5))

    def test_a_customer_without_transactions_left_in_a_pincode_is_not_listed(self):
        listed = [customer_id for customer_id, _ in self.ranked(100)["110003"]]
        self.assertNotIn(7, listed)
        self.assertNotIn(8, listed)
        self.assertIn(7, [customer_id for pincode in self.ranked(100).values() for customer_id, _ in pincode])
