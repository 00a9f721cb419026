"""What a gunicorn worker does once it has started (gunicorn.conf.py's post_worker_init).

The hook is run in this process as gunicorn runs it: with the worker's WSGI application, its
log and its settings (a sync worker: no thread pool).
"""

from __future__ import annotations

import gc
import logging
import runpy
import weakref
from pathlib import Path
from types import SimpleNamespace

from django.core.handlers.wsgi import WSGIHandler
from django.test import TransactionTestCase

from cdp_site.workers import freeze_what_start_up_made

GUNICORN_CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"


class WorkerStartTests(TransactionTestCase):
    def setUp(self):
        gc.unfreeze()
        self.addCleanup(gc.unfreeze)

    def test_after_its_warm_up_a_worker_freezes_what_it_holds(self):
        worker = SimpleNamespace(wsgi=WSGIHandler(), log=logging.getLogger("gunicorn.error"), cfg=SimpleNamespace(threads=1))
        with self.assertLogs("gunicorn.error", level="INFO") as logged:
            runpy.run_path(str(GUNICORN_CONF))["post_worker_init"](worker)
        self.assertIn("warm-up done", logged.output[-1])
        self.assertIn("(200 401 401 200)", logged.output[-1])  # the warm-up requests ran
        # The objects start-up and warm-up made are out of the collector's full passes.
        self.assertGreater(gc.get_freeze_count(), 10_000)

    def test_freezing_frees_garbage_first_and_leaves_later_objects_collectable(self):
        class Cycle:
            pass

        garbage = Cycle()
        garbage.me = garbage  # a cycle: only the collector frees it
        gone = weakref.ref(garbage)
        del garbage
        freeze_what_start_up_made()
        frozen = gc.get_freeze_count()
        self.assertIsNone(gone())  # freed, not frozen for the process's life
        later = [[index] for index in range(100)]
        self.assertEqual(gc.get_freeze_count(), frozen)  # what comes after is not frozen
        self.assertTrue(all(gc.is_tracked(item) for item in later))
