"""The cyclic garbage collector paused while a big write holds its records (``services.collector``)."""

from __future__ import annotations

import gc
import threading
from unittest import mock

from django.test import SimpleTestCase, TestCase

from tests.support import record
from transactions import services
from transactions.models import Transaction
from transactions.services import batch_parts
from transactions.services.collector import collector_paused


class CollectorPausedTests(SimpleTestCase):
    def setUp(self):
        self.addCleanup(gc.enable if gc.isenabled() else gc.disable)
        gc.enable()

    def test_the_collector_is_off_within_and_on_again_after_an_error_too(self):
        with collector_paused():
            self.assertFalse(gc.isenabled())
        self.assertTrue(gc.isenabled())
        with self.assertRaises(ZeroDivisionError), collector_paused():
            1 / 0
        self.assertTrue(gc.isenabled())

    def test_blocks_open_at_once_on_two_threads_keep_it_off_until_the_last_ends(self):
        first_in, first_may_leave = threading.Event(), threading.Event()
        seen = {}

        def first():
            with collector_paused():
                first_in.set()
                first_may_leave.wait(5)
                seen["first, after the second ended"] = gc.isenabled()

        thread = threading.Thread(target=first)
        thread.start()
        self.assertTrue(first_in.wait(5))
        with collector_paused():
            pass
        seen["the second ended, the first still open"] = gc.isenabled()
        first_may_leave.set()
        thread.join(5)
        self.assertEqual(seen, {"the second ended, the first still open": False, "first, after the second ended": False})
        self.assertTrue(gc.isenabled())

    def test_a_collector_found_off_is_left_off(self):
        gc.disable()
        with collector_paused():
            self.assertFalse(gc.isenabled())
        self.assertFalse(gc.isenabled())


class BatchPausesTheCollectorTests(TestCase):
    def test_a_batch_is_validated_and_stored_with_the_collector_off_and_it_is_on_again_after(self):
        self.addCleanup(gc.enable if gc.isenabled() else gc.disable)
        gc.enable()
        seen = []
        real_validated = batch_parts._validated

        def noting_the_collector(*args, **kwargs):
            seen.append(gc.isenabled())
            return real_validated(*args, **kwargs)

        batch = [record(customer_id=customer) for customer in (1, 2, 3)]
        with mock.patch.object(batch_parts, "_validated", side_effect=noting_the_collector):
            errors, outcomes = services.ingest_batch(batch)
        self.assertEqual((errors, [o.status for o in outcomes]), ({}, ["created"] * 3))
        self.assertTrue(seen)
        self.assertEqual(set(seen), {False})
        self.assertTrue(gc.isenabled())
        self.assertEqual(Transaction.objects.count(), 3)
