"""A single record's transaction, sent with its statements (services.rows.transaction_sent_together).

Outside any other transaction (as in an API request), a single ingest's first attempt sends
``START TRANSACTION`` with its first statements and ``COMMIT`` with its last, where the database
takes statements together (MariaDB/MySQL), instead of ``atomic()``'s three round trips of its
own. These tests run outside a test transaction (``TransactionTestCase``) so that path is the
one taken: the writers' whole contract, what reaches the server, and the error path.
"""

from __future__ import annotations

import threading
from unittest import skipUnless

from django.db import OperationalError, connection, connections, transaction
from django.test import TransactionTestCase

from tests.test_write_contract import WriterContract, parsed
from transactions import services
from transactions.models import Customer, Transaction
from transactions.sql import operations


class SingleRecordOutsideATransactionTests(WriterContract, TransactionTestCase):
    """The contract, with every single record taking the path an API request takes."""

    returning = True


def _session_status(names: tuple[str, ...]) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SHOW SESSION STATUS WHERE Variable_name IN (%s)" % ", ".join(["%s"] * len(names)), names
        )
        return {name.lower(): int(value) for name, value in cursor.fetchall()}


@skipUnless(connection.vendor == "mysql", "only MariaDB/MySQL take several statements in one round trip")
class TransactionSentWithTheStatementsTests(TransactionTestCase):
    def setUp(self):
        if not operations().sends_statements_together:
            self.skipTest("this connection does not send statements together")

    def test_a_new_record_commits_in_two_round_trips_without_touching_autocommit(self):
        services.ingest_transactions(records=[parsed(customer_id=1, transaction_datetime="2024-05-01T00:00:00Z")])
        names = ("Com_set_option", "Com_commit", "Com_begin", "Com_rollback")
        before = _session_status(names)
        sent = []
        with connection.execute_wrapper(lambda execute, sql, params, many, context: sent.append(sql) or execute(sql, params, many, context)):
            [outcome] = services.ingest_transactions(records=[parsed(customer_id=1, transaction_datetime="2024-05-02T00:00:00Z")])
        after = _session_status(names)
        self.assertEqual(outcome.status, "created")
        self.assertEqual(len(sent), 2, sent)
        self.assertTrue(sent[0].startswith("START TRANSACTION;"), sent[0][:80])
        self.assertTrue(sent[-1].rstrip().endswith("COMMIT"), sent[-1][-80:])
        # SHOW STATUS counts itself as neither; no SET autocommit went out, one BEGIN and one COMMIT did.
        self.assertEqual(after["com_set_option"] - before["com_set_option"], 0)
        self.assertEqual(after["com_begin"] - before["com_begin"], 1)
        self.assertEqual(after["com_commit"] - before["com_commit"], 1)
        self.assertEqual(after["com_rollback"] - before["com_rollback"], 0)
        # Committed: another connection sees it.
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM transactions_transaction WHERE customer_id = 1")
                self.assertEqual(cursor.fetchone()[0], 2)
        finally:
            other.close()

    def test_a_repeat_is_rolled_back_and_answered_from_the_stored_row(self):
        services.ingest_transactions(records=[parsed(customer_id=1, transaction_datetime="2024-05-01T00:00:00Z")])
        [outcome] = services.ingest_transactions(
            records=[parsed(customer_id=1, transaction_datetime="2024-05-01T00:00:00Z", transaction_amount="1.00")]
        )
        self.assertEqual(outcome.status, "conflict")
        self.assertEqual(outcome.transaction.transaction_amount, parsed().transaction_amount)
        self.assertEqual(Customer.objects.get(pk=1).transaction_count, 1)  # the rolled-back addition is gone
        self.assertFalse(self._in_transaction())

    def test_a_statement_that_fails_mid_transaction_leaves_nothing_stored_and_no_transaction_open(self):
        services.ingest_transactions(records=[parsed(customer_id=1, transaction_datetime="2024-05-01T00:00:00Z")])
        holding, release, errors = threading.Event(), threading.Event(), []

        def hold_customer_1() -> None:
            try:
                with transaction.atomic():
                    Customer.objects.select_for_update().get(pk=1)
                    holding.set()
                    release.wait(30)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connections["default"].close()

        holder = threading.Thread(target=hold_customer_1)
        holder.start()
        try:
            self.assertTrue(holding.wait(30))
            with connection.cursor() as cursor:
                cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")
            with self.assertRaises(OperationalError) as raised:
                services.ingest_transactions(
                    records=[parsed(customer_id=1, transaction_datetime="2024-05-02T00:00:00Z")], max_attempts=1
                )
            self.assertTrue(operations().is_transient(raised.exception), raised.exception)
            # The lock wait ended the statement, not the transaction: it was rolled back for us.
            self.assertFalse(self._in_transaction())
            self.assertFalse(connection.in_atomic_block)
        finally:
            release.set()
            holder.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(Transaction.objects.filter(customer_id=1).count(), 1)
        self.assertEqual(Customer.objects.get(pk=1).transaction_count, 1)
        # And the connection goes on: the same record is stored once the lock is gone.
        [outcome] = services.ingest_transactions(records=[parsed(customer_id=1, transaction_datetime="2024-05-02T00:00:00Z")])
        self.assertEqual(outcome.status, "created")
        self.assertEqual(Customer.objects.get(pk=1).transaction_count, 2)

    def _in_transaction(self) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@in_transaction")
            return bool(cursor.fetchone()[0])
