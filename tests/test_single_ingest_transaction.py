"""A single record's transaction, sent with its statements (services.rows.transaction_sent_together).

Outside any other transaction (as in an API request), a single ingest's first attempt sends
``START TRANSACTION`` with its first statements and ``COMMIT`` with its last, where the database
takes statements together (MariaDB/MySQL), instead of ``atomic()``'s three round trips of its
own. These tests run outside a test transaction (``TransactionTestCase``) so that path is the
one taken: the writers' whole contract, what reaches the server, and the error path.
"""

from __future__ import annotations

import contextlib
import threading
from unittest import skipUnless

from django.db import OperationalError, connection, connections, transaction
from django.test import TransactionTestCase

from django.contrib.auth.models import User
from django.core.cache import caches
from rest_framework.authtoken.models import Token

from tests.support import clear_caches, make_user, record, token_client
from tests.test_write_contract import WriterContract, parsed
from transactions import services
from transactions.api import authentication
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


@skipUnless(connection.vendor == "mysql", "only MariaDB/MySQL take several statements in one round trip")
class CredentialsConfirmedByTheCommitTests(TransactionTestCase):
    """An API ingest with kept credentials reads no generation first: its last batch holds a
    statement that fails unless the shared generation is unchanged (api.authentication)."""

    def setUp(self):
        if not operations().sends_statements_together:
            self.skipTest("this connection does not send statements together")
        clear_caches()
        self.user = make_user("confirming", permissions=("add_transaction", "view_transaction"))
        self.api = token_client(self.user)
        self.assertEqual(self.ingest(1).status_code, 201)  # keeps the credentials

    @contextlib.contextmanager
    def sent(self):
        """The statements sent meanwhile, with their parameters spelled out."""
        sent = []

        def keep(execute, sql, params, many, context):
            sent.append(sql if not params else f"{sql} -- {params}")
            return execute(sql, params, many, context)

        with connection.execute_wrapper(keep):
            yield sent

    @staticmethod
    def generation_reads(sent: list[str]) -> list[str]:
        return [sql for sql in sent if "auth-generation" in sql and not sql.rstrip().endswith("COMMIT")]

    def ingest(self, day: int):
        return self.api.post("/api/ingest-data", record(customer_id=1, transaction_datetime=f"2024-01-{day:02d}T00:00:00Z"),
                             format="json")

    def test_a_kept_token_writes_in_two_round_trips_and_the_second_confirms_the_generation(self):
        with self.sent() as sent:
            response = self.ingest(2)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(self.generation_reads(sent), [])
        writes = sent[-2:]  # (the statements before are the throttle's, in the shared cache too)
        self.assertTrue(writes[0].startswith("START TRANSACTION;"), writes[0][:80])
        self.assertIn("auth-generation", writes[1])
        self.assertTrue(writes[1].rstrip().endswith("COMMIT"), writes[1][-80:])
        self.assertEqual(Transaction.objects.count(), 2)

    def test_a_permission_another_process_took_away_is_refused_and_nothing_is_stored(self):
        # Another process's change arrives only as a new generation (no signal here).
        User.user_permissions.through.objects.filter(user=self.user)._raw_delete("default")
        caches["default"].set(authentication.GENERATION_KEY, "another-process-changed-something", None)
        response = self.ingest(2)
        self.assertEqual(response.status_code, 403, response.content)
        self.assertEqual(response.json(), {"detail": "You do not have permission to ingest transactions."})
        self.assertEqual(Transaction.objects.count(), 1)
        self.assertEqual(Customer.objects.get(pk=1).transaction_count, 1)

    def test_a_token_another_process_deleted_is_refused(self):
        Token.objects.filter(user=self.user)._raw_delete("default")
        caches["default"].set(authentication.GENERATION_KEY, "another-process-changed-something", None)
        response = self.ingest(2)
        self.assertEqual(response.status_code, 401, response.content)
        self.assertEqual(Transaction.objects.count(), 1)

    def test_a_new_generation_with_the_same_credentials_stores_the_record_once(self):
        caches["default"].set(authentication.GENERATION_KEY, "another-process-changed-something-else", None)
        response = self.ingest(2)
        self.assertEqual(response.status_code, 201, response.content)
        self.assertEqual(Transaction.objects.count(), 2)
        self.assertEqual(Customer.objects.get(pk=1).transaction_count, 2)
        with self.sent() as sent:  # and the copy kept under the new generation is confirmed by the commit again
            self.assertEqual(self.ingest(3).status_code, 201)
        self.assertEqual(self.generation_reads(sent), [])
        self.assertIn("auth-generation", sent[-1])

    def test_an_invalid_record_is_refused_only_after_the_credentials_are_confirmed(self):
        Token.objects.filter(user=self.user)._raw_delete("default")
        caches["default"].set(authentication.GENERATION_KEY, "another-process-changed-something", None)
        response = self.api.post("/api/ingest-data", record(customer_id="x"), format="json")
        self.assertEqual(response.status_code, 401, response.content)
