"""A correction the database ends over a lock conflict (deadlock, lock wait timeout) is run again.

The conflict is injected at the correction service, the point where a real one surfaces: the
database rolls the whole transaction back and the driver raises; the request must then succeed
on its next attempt rather than end on a server error. Other database errors are not retried.
"""

from __future__ import annotations

from unittest import mock

from django.db import OperationalError, connection

from tests.admin import AdminTestCase, transaction_url
from transactions import services
from transactions.models import Transaction


def lock_conflict() -> OperationalError:
    """The error this database's driver raises when a transaction loses a deadlock."""
    if connection.vendor == "mysql":
        return OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
    if connection.vendor == "postgresql":
        error = OperationalError("deadlock detected")
        error.__cause__ = type("DriverError", (Exception,), {"sqlstate": "40P01"})()
        return error
    return OperationalError("database is locked")


class LockConflictRetryTests(AdminTestCase):
    def failing_first(self, real, error: Exception):
        calls = []

        def service(**kwargs):
            calls.append(kwargs)
            if len(calls) == 1:
                raise error
            return real(**kwargs)

        return service, calls

    def test_a_correction_ended_by_a_deadlock_is_saved_on_the_next_attempt(self):
        self.assertTrue(services.is_transient_lock_error(lock_conflict()))
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        service, calls = self.failing_first(services.save_corrected_transaction, lock_conflict())

        with mock.patch.object(services, "save_corrected_transaction", service):
            response = self.post_change(transaction_url(row), transaction_amount="150.00")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        self.assertEqual(len(calls), 2)
        self.assertEqual(str(Transaction.objects.get(pk=row.pk).transaction_amount), "150.00")
        self.assertEqual(Transaction.history.filter(id=row.pk, history_type="~").count(), 1)

    def test_a_delete_ended_by_a_deadlock_is_done_on_the_next_attempt(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        service, calls = self.failing_first(services.delete_transactions, lock_conflict())

        with mock.patch.object(services, "delete_transactions", service):
            response = self.admin.post(transaction_url(row, "delete"), {"post": "yes"})

        self.assertRedirects(response, "/admin/transactions/transaction/")
        self.assertEqual(len(calls), 2)
        self.assertFalse(Transaction.objects.filter(pk=row.pk).exists())

    def test_other_database_errors_are_not_run_again(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        other = OperationalError(2006, "MySQL server has gone away")
        self.assertFalse(services.is_transient_lock_error(other))
        service, calls = self.failing_first(services.save_corrected_transaction, other)

        with mock.patch.object(services, "save_corrected_transaction", service):
            response = self.post_change(transaction_url(row), transaction_amount="150.00")

        # The outage middleware's answer to a lost database, after one attempt only.
        self.assertEqual(response.status_code, 503)
        self.assertEqual(len(calls), 1)
        self.assertEqual(str(Transaction.objects.get(pk=row.pk).transaction_amount), "100.00")
