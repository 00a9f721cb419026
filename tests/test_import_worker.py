"""The real background worker: `manage.py import_worker` as its own process, on the test database.

These are TransactionTestCases: the upload must be committed for the worker process to see
it, and the worker's own commits must be visible here while it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import TransactionTestCase, override_settings
from django_tasks_db.models import DBTaskResult

from tests.api.test_imports import (
    COUNT_FIELDS,
    committed_records,
    customer_totals_of,
    csv_file,
    expected_import,
    expected_import_answer,
    ndjson_file,
    sample_records,
    stored_rows,
)
from tests.support import clear_caches, make_user, slow, token_client
from transactions.models import Customer, ImportJob, RejectedRow, Transaction

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
CHUNK_ROWS = 200
WORKER_TIMEOUT = 120


def worker_database_url() -> str:
    """DATABASE_URL of the database this test run uses, for a process started by the test."""
    db = connection.settings_dict
    vendor = connection.vendor
    if vendor == "sqlite":
        return "sqlite:///" + str(Path(db["NAME"]).resolve())
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    scheme = {"mysql": "mysql", "postgresql": "postgres"}[vendor]
    return f"{scheme}://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or ''}/{db['NAME']}"




@slow
@override_settings(TASKS=DATABASE_TASKS)
class ImportWorkerTests(TransactionTestCase):
    def setUp(self):
        clear_caches()
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir))
        self.user = make_user("worker-client")
        self.api = token_client(self.user)

    def upload(self, name: str, content: bytes) -> int:
        response = self.api.post("/api/imports/", {"file": SimpleUploadedFile(name, content)}, format="multipart")
        self.assertEqual(response.status_code, 202, response.content)
        job_id = response.json()["id"]
        # Committed and queued for a worker; nothing read yet.
        self.assertEqual(ImportJob.objects.get(pk=job_id).status, "queued")
        self.assertEqual(DBTaskResult.objects.filter(status="READY").count(), 1)
        return job_id

    def start_worker(self, *args: str, **environment: str) -> tuple[subprocess.Popen, object]:
        env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "CDP_IMPORT_DIR": str(self.import_dir),
            "CDP_IMPORT_CHUNK_ROWS": str(CHUNK_ROWS),
            **environment,
        }
        env.pop("CDP_TASKS_BACKEND", None)  # the worker takes tasks from the database queue
        log = self.enterContext(tempfile.TemporaryFile())
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "import_worker", *args],
            cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.addCleanup(self.stop_worker, worker)
        return worker, log

    @staticmethod
    def stop_worker(worker: subprocess.Popen) -> None:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)

    @staticmethod
    def output_of(log) -> str:
        log.seek(0)
        return log.read().decode("utf-8", errors="replace")

    def wait_for_batch_worker(self, worker: subprocess.Popen, log) -> str:
        try:
            returncode = worker.wait(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"the worker did not finish in {WORKER_TIMEOUT} s:\n{self.output_of(log)}")
        output = self.output_of(log)
        self.assertEqual(returncode, 0, output)
        return output

    def assertImportedAsExpected(self, job_id: int, records: list[dict]) -> None:
        counts, rows = expected_import(records)
        response = self.api.get(f"/api/imports/{job_id}/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), expected_import_answer(job_id, status="done", counts=counts))
        self.assertEqual(Transaction.objects.count(), counts["created"])
        self.assertEqual(RejectedRow.objects.filter(job_id=job_id).count(), counts["rejected"])
        self.assertEqual(stored_rows(), rows)
        self.assertEqual(
            {c.customer_id: (c.total_amount, c.transaction_count) for c in Customer.objects.all()},
            customer_totals_of(rows),
        )

    def test_a_batch_worker_imports_an_uploaded_file_to_the_end(self):
        records = sample_records(rows=3000, seed=31)
        job_id = self.upload("sample.ndjson", ndjson_file(records))

        worker, log = self.start_worker("--batch")
        self.wait_for_batch_worker(worker, log)

        self.assertImportedAsExpected(job_id, records)
        self.assertEqual(list(DBTaskResult.objects.values_list("status", flat=True)), ["SUCCESSFUL"])

    def test_a_worker_killed_mid_import_is_resumed_by_the_next_one_with_the_same_counts(self):
        records = sample_records(rows=30_000, seed=32)
        for position in range(500, len(records), 1000):  # a bad row now and then, all through the file
            records[position] = dict(records[position], pincode="0")
        total = len(records)
        job_id = self.upload("sample.csv", csv_file(records))

        worker, log = self.start_worker()
        deadline = time.monotonic() + WORKER_TIMEOUT
        while True:
            job = ImportJob.objects.get(pk=job_id)
            if job.status == "running" and job.rows_processed > 0:
                break
            self.assertIsNone(worker.poll(), self.output_of(log))
            self.assertLess(time.monotonic(), deadline, f"no progress:\n{self.output_of(log)}")
            time.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        self.assertEqual(worker.wait(timeout=30), -signal.SIGKILL)

        job = ImportJob.objects.get(pk=job_id)
        self.assertEqual(job.status, "running")
        self.assertTrue(0 < job.rows_processed < total, job.rows_processed)
        # What the dead worker left is exactly its committed chunks and parts of a chunk:
        # counts and rows agree.
        committed = committed_records(records, line_number=job.line_number, progress=job.chunk_in_progress, first_line=2)
        self.assertEqual(job.rows_processed, len(committed))
        self.assertEqual({name: getattr(job, name) for name in COUNT_FIELDS}, expected_import(committed)[0])
        self.assertEqual(Transaction.objects.count(), job.created)

        worker, log = self.start_worker("--batch", CDP_IMPORT_STALE_SECONDS="0")
        output = self.wait_for_batch_worker(worker, log)

        self.assertIn(f"Resuming interrupted imports: {job_id}", output)
        self.assertImportedAsExpected(job_id, records)
        self.assertEqual(DBTaskResult.objects.filter(status="SUCCESSFUL").count(), 1)
