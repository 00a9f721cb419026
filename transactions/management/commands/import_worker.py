"""`manage.py import_worker`: the background worker of file imports.

django-tasks-db's worker loop, made to survive a database that is a Galera cluster (or a
single server that restarts):

- a task claim that loses certification (1213 at COMMIT: a worker on another node claimed the
  same task, since SKIP LOCKED is per node), or waits too long for a lock (1205), is logged and
  the queue polled again: the other worker has the task;
- when the database goes away (2002 refused, 2006 gone, 2013 lost mid-query, 1047 the node left
  the cluster) the worker logs it, drops its connections and reconnects (with several
  ``CDP_DATABASE_HOSTS``, to the next node that answers), backing off while none does; a task
  the outage interrupted is recorded as FAILED once the database answers, and its import is
  queued again at once by the housekeeping below;
- every ``--housekeeping`` seconds, on a thread of its own (so it also runs while a long import
  keeps the worker busy), it cleans the task rows of workers that died, queues again the
  imports nobody runs (``services.requeue_stale_imports``: within CDP_IMPORT_STALE_SECONDS of
  their worker's last report, at once when their task FAILED), and folds the month and pincode
  deltas into their totals (``services.fold_summary_deltas``), so the tails readers add stay short.

Each task runs to completion once across all workers: the claim is one committed UPDATE of the
task row, and an import's run owns the import (``ImportJob.runner``) until another takes it over.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections
from django_tasks_db.compat import DEFAULT_TASK_BACKEND_ALIAS, DEFAULT_TASK_QUEUE_NAME
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception
from django.utils.crypto import get_random_string

from transactions import services
from transactions.services import batch_parts
from transactions.services.imports import clean_orphaned_import_tasks

logger = logging.getLogger("transactions.import_worker")

LOCK_WAIT_TIMEOUT, DEADLOCK = 1205, 1213  # 1213 is also Galera's certification failure
# The server is unreachable (2002, 2003), went away (2006), the connection was lost mid-query
# (2013, 2055), or the node is not part of the cluster's primary component (1047).
CONNECTION_LOST = {1047, 2002, 2003, 2006, 2013, 2055}
RECONNECT_BASE_SECONDS = 0.2
RECONNECT_CAP_SECONDS = 5.0


def database_error_code(exc: BaseException) -> int | None:
    """MySQL's error number of a database error (None on other databases)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    args = getattr(cause, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_lost_claim(exc: BaseException) -> bool:
    """Another worker won the task (a deadlock, a certification failure, a lock wait, SQLite busy)."""
    return isinstance(exc, OperationalError) and (
        database_error_code(exc) in (LOCK_WAIT_TIMEOUT, DEADLOCK) or is_locked_database_exception(exc)
    )


def is_connection_lost(exc: BaseException) -> bool:
    if isinstance(exc, InterfaceError):  # mysqlclient: the connection object is already closed
        return True
    return isinstance(exc, OperationalError) and database_error_code(exc) in CONNECTION_LOST


def drop_connections() -> None:
    """Close this thread's connections, broken ones included; the next query reconnects."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except DatabaseError:
            connection.connection = None  # closing a dead socket can fail; it is gone either way


class ClusterWorker(Worker):
    """django-tasks-db's ``Worker`` with a loop that outlives lost claims and lost connections."""

    def __init__(self, *, housekeeping_seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.housekeeping_seconds = housekeeping_seconds
        self._outage_since: float | None = None
        self._reconnect_attempts = 0

    def run(self) -> None:
        logger.info("import worker %s started", self.worker_id)
        while self.running:
            try:
                task_result, polled = self.claim_next(), True
            except DatabaseError as exc:
                if is_lost_claim(exc):
                    logger.info("task claim lost to another worker (%s); polling again", exc)
                    time.sleep(random.uniform(0, 0.1))
                    continue
                if not is_connection_lost(exc):
                    raise
                self.wait_for_database(exc)
                continue
            self.database_is_back()
            if task_result is not None:
                self.run_task_surviving_outages(task_result)
            if self.batch and polled and task_result is None:
                logger.info("no more tasks: worker %s exits", self.worker_id)
                return
            if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                return
            if self.running and task_result is None:
                time.sleep(self.interval)

    def claim_next(self) -> DBTaskResult | None:
        """The next ready task, claimed for this worker and committed, or None."""
        close_old_connections()  # a connection that failed, or outlived CONN_MAX_AGE, is replaced
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        with exclusive_transaction(tasks.db):
            task_result = tasks.get_locked()
            if task_result is not None:
                task_result.claim(self.worker_id)
        return task_result  # the claim is committed: the task is ours

    def run_task_surviving_outages(self, task_result: DBTaskResult) -> None:
        try:
            self.run_task(task_result)
        except DatabaseError as exc:
            # The task's run failed on a lost connection, and recording that failed as well.
            if not is_connection_lost(exc):
                raise
            logger.warning("task %s interrupted by the database going away (%s)", task_result.id, exc)
            while self.running:
                self.wait_for_database(exc)
                try:
                    task_result.set_failed(exc)  # its import is queued again by the housekeeping
                    self.database_is_back()
                    return
                except DatabaseError as again:
                    if not is_connection_lost(again):
                        raise
                    exc = again

    def wait_for_database(self, exc: BaseException) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            logger.warning("database connection lost (%s); reconnecting", exc)
        drop_connections()
        self._reconnect_attempts += 1
        cap = min(RECONNECT_CAP_SECONDS, RECONNECT_BASE_SECONDS * 2**self._reconnect_attempts)
        time.sleep(random.uniform(cap / 2, cap))

    def database_is_back(self) -> None:
        if self._outage_since is not None:
            logger.warning("database reachable again after %.1f s", time.monotonic() - self._outage_since)
            self._outage_since, self._reconnect_attempts = None, 0

    def start_housekeeping(self) -> threading.Thread:
        thread = threading.Thread(target=self._housekeeping_loop, name="import-housekeeping", daemon=True)
        thread.start()
        return thread

    def _housekeeping_loop(self) -> None:
        while self.running:
            time.sleep(self.housekeeping_seconds * random.uniform(0.8, 1.2))
            try:
                housekeeping()
            except Exception as exc:  # noqa: BLE001 - a failed round is retried next round
                if not isinstance(exc, DatabaseError):
                    logger.exception("import housekeeping failed")
                else:
                    logger.warning("import housekeeping skipped a round (%s)", exc)
                drop_connections()


def housekeeping() -> list[int]:
    """One round: orphaned task rows cleaned, abandoned imports queued again (their ids), deltas
    folded, batches a crash left between the phases of their commit finished (services.batch_parts)."""
    stale_after = dt.timedelta(seconds=settings.CDP_IMPORT_STALE_SECONDS)
    clean_orphaned_import_tasks(stale_after=stale_after)
    requeued = services.requeue_stale_imports(stale_after=stale_after)
    if requeued:
        logger.warning("queued again the imports nobody was running: %s", ", ".join(map(str, requeued)))
    services.fold_summary_deltas()
    batch_parts.recover_prepared_parts()
    batch_parts.prune_committed_batches(older_than=dt.timedelta(days=1))
    return requeued


class Command(BaseCommand):
    help = (
        "Run a background worker for file imports: queue again any import whose worker died, "
        "then process tasks, surviving lost claims and lost database connections. "
        "Start several (on several app servers) for more throughput."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", action="store_true", help="Process what is queued, then exit.")
        parser.add_argument("--interval", type=float, default=1.0, help="Seconds between polls for new tasks.")
        parser.add_argument(
            "--housekeeping", type=float, default=5.0,
            help="Seconds between rounds of requeueing abandoned imports and folding totals (not with --batch).",
        )

    def handle(self, *args, batch, interval, housekeeping: float, **options):
        configure_logging(self.stdout, options["verbosity"])
        stale_after = dt.timedelta(seconds=settings.CDP_IMPORT_STALE_SECONDS)
        clean_orphaned_import_tasks(stale_after=stale_after)
        requeued = services.requeue_stale_imports(stale_after=stale_after)
        if requeued:
            self.stdout.write(f"Resuming interrupted imports: {', '.join(map(str, requeued))}")
        worker = ClusterWorker(
            queue_names=[DEFAULT_TASK_QUEUE_NAME],
            interval=interval,
            batch=batch,
            backend_name=DEFAULT_TASK_BACKEND_ALIAS,
            startup_delay=False,
            max_tasks=None,
            worker_id=get_random_string(32),
            excluded_queue_names=[],
            housekeeping_seconds=housekeeping,
        )
        worker.configure_signals()
        if not batch:
            worker.start_housekeeping()
        worker.run()
        if batch:
            services.fold_summary_deltas()


def configure_logging(stream, verbosity: int) -> None:
    """The worker's and django-tasks' messages at the verbosity's level, as db_worker sets them;
    to the project's log (LOGGING), or to the command's output if there is none."""
    level = logging.CRITICAL if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    for name in ("django_tasks", "django_tasks_db", "transactions.import_worker"):
        named = logging.getLogger(name)
        named.setLevel(level)
        if not named.hasHandlers():
            named.addHandler(logging.StreamHandler(stream))
