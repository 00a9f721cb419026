"""A batch written in parts at once and committed as one (``services.batch_parts``): XA on a
single MariaDB/MySQL server, so these run where the database has it (the MariaDB pass).

The writer's contract (``tests.test_write_contract``) runs against it too, every batch of two
or more records sent through ``ingest_batch``; here, what only this writer has: branches on
connections of their own, an invalid record found after some slices were stored, a writer that
waits too long for a lock, and what recovery does with branches a crash left prepared.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
import uuid
from unittest import mock, skipUnless

import MySQLdb
from django.db import DatabaseError, OperationalError, connection, connections
from django.db.models import Sum
from django.test import TransactionTestCase

from tests.support import ApiClientMixin, SummaryAssertionsMixin, record
from tests.test_write_contract import WriterContract
from transactions import services
from transactions.models import CommittedBatch, Customer, MonthlyTotalDelta, PincodeTotalDelta, Transaction
from transactions.services import batch_parts
from transactions.sql import operations
from transactions.validation import parse_transaction_record

MIN_RECORDS = batch_parts.MIN_RECORDS  # as configured, before a test makes it smaller
# Each test's customers are its own: rows a TransactionTestCase's flush leaves delete-marked (not
# purged yet) make an insert of the same key check them with gap locks, which two branches
# could each hold where the other inserts (a deadlock: the batch is written on one connection).
_FIRST_CUSTOMERS = itertools.count(10_000, 10_000)


def has_two_phase_commit() -> bool:
    ops = operations()
    return connection.vendor == "mysql" and ops.has_bulk_loader and ops.has_two_phase_commit


def prepared_parts() -> list[str]:
    return sorted(xid for xid, _, _ in batch_parts._prepared_branches(connection))  # this database's


def batch_of(customers: range, *, moment: str = "2024-03-01T10:00:00Z", **overrides) -> list[dict]:
    return [record(customer_id=customer, transaction_datetime=moment, transaction_amount=f"{customer}.25", **overrides)
            for customer in customers]


class PartsTestMixin:
    """Batches of ``MIN_RECORDS`` (here 4) or more go in parts; each test starts with writers
    whose sessions are new, and ends with no branch left on the server."""

    def setUp(self):
        super().setUp()
        if not has_two_phase_commit():
            self.skipTest("the database has no two-phase commit with a bulk loader (XA: MariaDB/MySQL)")
        self.enterContext(mock.patch.object(batch_parts, "MIN_RECORDS", 4))
        self.enterContext(self.settings(CDP_BATCH_WRITERS=2))
        batch_parts.close_part_writers()
        self.addCleanup(self.assertNothingLeft)
        self.base = next(_FIRST_CUSTOMERS)

    def ids(self, first: int, end: int) -> range:
        """Customer ids of this test's own."""
        return range(self.base + first, self.base + end)

    def assertNothingLeft(self) -> None:
        """No branch of this database's is left prepared; any that is, is rolled back first: it
        would hold its locks, and the test database could not be dropped."""
        batch_parts.close_part_writers()
        left = prepared_parts()
        for xid in left:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(operations().two_phase_finish(xid, commit=False))
            except DatabaseError:
                pass
        self.assertEqual(left, [])

    def branches_committed(self):
        """A spy on the branches' commits: the xids, in the order committed."""
        committed: list[str] = []
        real = batch_parts._Branch.commit

        def commit(branch):
            real(branch)
            committed.append(branch.xid)

        self.enterContext(mock.patch.object(batch_parts._Branch, "commit", commit))
        return committed


@skipUnless(connection.vendor == "mysql", "XA: MariaDB/MySQL")
class BatchInPartsWriterTests(PartsTestMixin, WriterContract, TransactionTestCase):
    """The writer's contract, every batch of two or more records through ``ingest_batch``."""

    returning = True
    bulk_loader = True

    def setUp(self):
        super().setUp()
        real = services.ingest_transactions
        self.committed = self.branches_committed()

        def routed(*, records, **kwargs):
            if len(records) > 1 and not kwargs:
                errors, outcomes = services.ingest_batch(records)
                self.assertEqual(errors, {})
                return outcomes
            return real(records=records, **kwargs)

        self.enterContext(mock.patch.object(services, "ingest_transactions", routed))

    def test_a_batch_of_several_customers_is_written_in_parts(self):
        statuses = [o.status for o in services.ingest_transactions(records=list(map(parse_transaction_record, batch_of(self.ids(1, 9)))))]
        self.assertEqual(statuses, ["created"] * 8)
        self.assertEqual(len(self.committed), 2)
        self.assertTotalsAddUp()


@skipUnless(connection.vendor == "mysql", "XA: MariaDB/MySQL")
class BatchInPartsTests(PartsTestMixin, SummaryAssertionsMixin, TransactionTestCase):
    def assertStoredAsSent(self, batch: list[dict]) -> None:
        stored = {(t.customer_id, t.transaction_amount) for t in Transaction.objects.all()}
        self.assertEqual(stored, {(r["customer_id"], Transaction._meta.get_field("transaction_amount").to_python(
            r["transaction_amount"])) for r in batch})
        for customer in Customer.objects.all():
            self.assertEqual(customer.total_amount, Transaction.objects.filter(customer=customer).aggregate(
                total=Sum("transaction_amount"))["total"])
        self.assertSummariesMatchTransactions()

    def test_a_batch_goes_in_slices_to_two_branches_committed_first_to_last(self):
        services.ingest_batch(batch_of(self.ids(1, 3)))  # two stored already: one repeated, one contradicted
        committed = self.branches_committed()
        batch = batch_of(self.ids(1, 41))
        batch.append({**batch[39], "state": "DELHI"})  # the same state spelled otherwise: a repeat
        batch[1]["transaction_amount"] = "99.00"
        errors, outcomes = services.ingest_batch(batch)
        self.assertEqual(errors, {})
        self.assertEqual([o.index for o in outcomes], list(range(41)))
        self.assertEqual([o.status for o in outcomes], ["duplicate", "conflict", *["created"] * 38, "duplicate"])
        self.assertEqual(len(committed), 2)
        self.assertTrue(committed[0].endswith("-0") and committed[1].endswith("-1"), committed)  # the batch's commit first
        self.assertEqual(Transaction.objects.count(), 40)
        self.assertEqual(CommittedBatch.objects.count(), 0)  # deleted once every branch was in
        self.assertStoredAsSent(batch_of(self.ids(1, 41)))

    def test_a_batch_appends_its_deltas_once_in_writer_0s_branch_in_the_order_its_records_were_sent(self):
        committed = self.branches_committed()
        batch = batch_of(self.ids(1, 9), state="punjab")  # four slices of two customers each
        batch[-1]["state"] = "PUNJAB"
        batch.insert(0, batch.pop())  # the last slice's customer sent first
        before = PincodeTotalDelta.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        errors, outcomes = services.ingest_batch(batch)
        self.assertEqual((errors, {o.status for o in outcomes}), ({}, {"created"}))
        self.assertEqual(len(committed), 2)
        deltas = list(PincodeTotalDelta.objects.filter(pk__gt=before).order_by("pk").values_list("state", "transaction_count"))
        # One row per spelling for the whole batch, the spelling sent first first (of equally
        # common spellings, the one sent first names the state); not one per slice.
        self.assertEqual(deltas, [("PUNJAB", 1), ("punjab", 7)])
        self.assertEqual(MonthlyTotalDelta.objects.count(), 1)
        self.assertSummariesMatchTransactions()
        # The same batch again, in parts: every record a repeat, no delta appended.
        errors, outcomes = services.ingest_batch(batch)
        self.assertEqual((errors, {o.status for o in outcomes}), ({}, {"duplicate"}))
        self.assertEqual(len(committed), 4)
        self.assertEqual(PincodeTotalDelta.objects.filter(pk__gt=before).count(), 2)
        self.assertSummariesMatchTransactions()

    def test_an_invalid_record_after_stored_slices_stores_nothing_and_every_error_is_answered(self):
        batch = batch_of(self.ids(1, 41))
        batch[39]["transaction_amount"] = "-1"  # in the last slice: validated after the others were stored
        stored_slices = []
        real_store = batch_parts._Branch.store

        def store(branch, records, indexes):
            stored_slices.append(len(records))
            return real_store(branch, records, indexes)

        with mock.patch.object(batch_parts._Branch, "store", store):
            errors, outcomes = services.ingest_batch(batch)
        self.assertEqual(list(errors), ["39"])
        self.assertIn("transaction_amount", errors["39"])
        self.assertEqual(outcomes, [])
        self.assertEqual(stored_slices, [10, 10, 10])  # stored, then rolled back
        self.assertEqual((Transaction.objects.count(), Customer.objects.count(), CommittedBatch.objects.count()), (0, 0, 0))
        self.assertEqual(prepared_parts(), [])

        batch[2]["pincode"] = "012345"  # and one in the first slice: every error is answered
        errors, _ = services.ingest_batch(batch)
        self.assertEqual(list(errors), ["2", "39"])
        self.assertEqual(Transaction.objects.count(), 0)

        batch[2]["pincode"], batch[39]["transaction_amount"] = "110001", "40.25"
        errors, outcomes = services.ingest_batch(batch)  # the writers' connections serve on
        self.assertEqual((errors, [o.status for o in outcomes]), ({}, ["created"] * 40))
        self.assertStoredAsSent(batch)

    def test_a_writer_kept_waiting_for_a_lock_gives_way_to_one_connection(self):
        self.enterContext(mock.patch.object(batch_parts, "PART_LOCK_WAIT_SECONDS", 1))
        services.ingest_batch(batch_of(self.ids(39, 41), moment="2024-01-01T00:00:00Z"))
        locked, release = threading.Event(), threading.Event()

        def hold_customer_40() -> None:  # another writer's transaction, holding the customer's row lock
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute("START TRANSACTION")
                    cursor.execute(f"SELECT * FROM {Customer._meta.db_table} WHERE customer_id = {self.base + 40} FOR UPDATE")
                    locked.set()
                    release.wait(30)
                    cursor.execute("COMMIT")
            finally:
                connections["default"].close()

        holder = threading.Thread(target=hold_customer_40)
        holder.start()
        self.assertTrue(locked.wait(10))
        threading.Timer(2.5, release.set).start()
        real = services.ingest.ingest_transactions
        one_connection = []

        def ingest_transactions(*, records, **kwargs):
            one_connection.append(len(records))
            return real(records=records, **kwargs)

        batch = batch_of(self.ids(1, 41))
        started = time.monotonic()
        with mock.patch.object(services.ingest, "ingest_transactions", ingest_transactions):
            errors, outcomes = services.ingest_batch(batch)
        holder.join(10)
        self.assertEqual(errors, {})
        self.assertEqual([o.status for o in outcomes], ["created"] * 40)
        self.assertEqual(one_connection, [40])  # the parts were rolled back; one connection waited instead
        self.assertGreaterEqual(time.monotonic() - started, 2.0)
        self.assertEqual(Transaction.objects.filter(transaction_datetime__month=3).count(), 40)
        self.assertEqual(CommittedBatch.objects.count(), 0)
        self.assertStoredAsSent([*batch, *batch_of(self.ids(39, 41), moment="2024-01-01T00:00:00Z")])

    def test_a_crash_after_the_batchs_commit_leaves_the_rest_to_recovery_which_commits_it(self):
        real_commit = batch_parts._Branch.commit

        def commit(branch):
            if branch.decided_by is None:  # the writer process dies before the second commit
                connection.close()
                raise OperationalError(2013, "Lost connection to server during query")
            real_commit(branch)

        batch = batch_of(self.ids(1, 41))
        with mock.patch.object(batch_parts._Branch, "commit", commit), self.assertRaises(DatabaseError):
            services.ingest_batch(batch)
        # Recovery ran at once (the batch's connections closed, its row there): stored whole.
        self.assertEqual(prepared_parts(), [])
        self.assertStoredAsSent(batch)
        self.assertEqual(CommittedBatch.objects.count(), 1)  # left for the worker to prune
        self.assertEqual(batch_parts.prune_committed_batches(older_than=dt.timedelta(0)), 1)
        errors, outcomes = services.ingest_batch(batch)  # the client resends what it saw fail
        self.assertEqual([o.status for o in outcomes], ["duplicate"] * 40)

    def test_branches_left_prepared_are_rolled_back_by_the_next_connection_when_the_batch_was_not_committed(self):
        def crash(batch_id, branches, writers, **kwargs):  # the process dies between the phases
            for writer in writers:
                writer.submit(connections.close_all).result()
            raise SystemExit("killed")

        batch = batch_of(self.ids(1, 41))
        connection.ensure_connection()  # opened before the crash: a new one would finish them at once
        with mock.patch.object(batch_parts, "_commit", crash), self.assertRaises(SystemExit):
            services.ingest_batch(batch)
        self.assertEqual(len(prepared_parts()), 2)  # both prepared, no live connection holding them
        # A new connection (a restarted web worker's) finishes them: nothing was committed. (The
        # server lets go of a closed connection's branches a moment later: until then a new
        # connection leaves them, as it leaves a live writer's.)
        def new_connection() -> None:
            try:
                connections["default"].ensure_connection()
            finally:
                connections["default"].close()

        deadline = time.monotonic() + 5
        while prepared_parts() and time.monotonic() < deadline:
            thread = threading.Thread(target=new_connection)
            thread.start()
            thread.join(30)
            time.sleep(0.05)
        self.assertEqual(prepared_parts(), [])
        self.assertEqual(Transaction.objects.count(), 0)
        self.assertEqual(Customer.objects.count(), 0)
        self.assertEqual(CommittedBatch.objects.count(), 0)
        errors, outcomes = services.ingest_batch(batch)  # their locks are gone: the resend is stored
        self.assertEqual([o.status for o in outcomes], ["created"] * 40)
        self.assertStoredAsSent(batch)

    def test_recovery_leaves_a_branch_its_live_connection_holds_and_another_databases(self):
        settings_dict = connection.settings_dict

        def prepared_on_a_connection_of_its_own(xid: str):
            raw = MySQLdb.connect(host=settings_dict["HOST"] or "127.0.0.1", port=int(settings_dict["PORT"] or 3306),
                                  user=settings_dict["USER"], passwd=settings_dict["PASSWORD"] or "", db=settings_dict["NAME"])
            cursor = raw.cursor()
            cursor.execute(f"XA START '{xid}'")
            # Some work of its own (the row of another batch, for want of a table it could not lock up).
            cursor.execute(f"INSERT INTO {CommittedBatch._meta.db_table} (batch_id, created_at) VALUES ('{uuid.uuid4().hex}', NOW())")
            cursor.execute(f"XA END '{xid}'")
            cursor.execute(f"XA PREPARE '{xid}'")
            return raw

        def recovered_once_let_go(expected: int) -> int:
            """The server lets go of a closed connection's branch a moment after it is closed."""
            deadline = time.monotonic() + 5
            while (finished := batch_parts.recover_prepared_parts()) != expected and time.monotonic() < deadline:
                time.sleep(0.05)
            return finished

        ours = f"{batch_parts._xid_prefix(connection)}{'a' * 32}-1"
        others = f"{batch_parts.XID_PREFIX}{'0' * 8}-{'c' * 32}-1"  # a branch of another database on this server
        other_connection = prepared_on_a_connection_of_its_own(others)
        other_connection.close()
        try:
            live = prepared_on_a_connection_of_its_own(ours)
            try:
                self.assertEqual(batch_parts.recover_prepared_parts(), 0)  # its writer is alive: its to finish
                self.assertEqual(prepared_parts(), [ours])
            finally:
                live.close()
            self.assertEqual(recovered_once_let_go(1), 1)  # gone, and no row for its batch: rolled back
            self.assertEqual(prepared_parts(), [])
            self.assertEqual(CommittedBatch.objects.count(), 0)
            with connection.cursor() as cursor:
                self.assertIn(others, operations().prepared_branches(cursor))  # not this database's to finish
        finally:
            with connection.cursor() as cursor:
                cursor.execute(operations().two_phase_finish(others, commit=False))


@skipUnless(connection.vendor == "mysql", "XA: MariaDB/MySQL")
class BatchInPartsApiTests(PartsTestMixin, ApiClientMixin, TransactionTestCase):
    def test_a_big_batch_through_the_api_is_answered_record_by_record(self):
        self.enterContext(mock.patch.object(batch_parts, "MIN_RECORDS", MIN_RECORDS))  # the size as configured
        committed = self.branches_committed()
        batch = batch_of(self.ids(1, MIN_RECORDS + 501))
        batch.append(dict(batch[7]))  # a repeat inside the batch
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 200, response.content)
        body = response.json()
        self.assertEqual({k: body[k] for k in ("received", "created", "duplicates", "conflicts")},
                         {"received": len(batch), "created": len(batch) - 1, "duplicates": 1, "conflicts": 0})
        self.assertEqual(body["results"][7], {"index": 7, "status": "created"})
        self.assertEqual(body["results"][-1], {"index": len(batch) - 1, "status": "duplicate"})
        self.assertEqual(len(committed), 2)
        self.assertEqual(Transaction.objects.count(), len(batch) - 1)

        batch[1000]["mob_no"] = "12"
        response = self.ingest(batch)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(list(response.json()["errors"]), ["1000"])

