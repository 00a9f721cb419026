"""The import worker's housekeeping (transactions/services/imports.py): imports nobody runs are
queued again, once, and task rows left RUNNING by a dead worker are cleaned up. On the database
task queue, as the workers run it; the cluster tests (tests/cluster) run it for real."""

from __future__ import annotations

import datetime as dt

from django.test import TestCase, override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from tests.support import make_user
from transactions import tasks
from transactions.models import ImportJob
from transactions.services.imports import clean_orphaned_import_tasks, requeue_stale_imports

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
HOUR = dt.timedelta(hours=1)


@override_settings(TASKS=DATABASE_TASKS)
class HousekeepingTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.owner = make_user("importer")

    def job(self, *, status: str, heartbeat_age: dt.timedelta, task_status: str | None) -> ImportJob:
        now = timezone.now()
        job = ImportJob.objects.create(owner=self.owner, original_name="file.csv", format="csv", status=status,
                                       runner="run-1", heartbeat_at=now - heartbeat_age)
        if task_status is not None:
            task = tasks.run_import.enqueue(job_id=job.pk)
            DBTaskResult.objects.filter(pk=task.id).update(status=task_status, started_at=now - heartbeat_age)
        return job

    def task_statuses(self, job: ImportJob) -> list[str]:
        return sorted(
            DBTaskResult.objects.filter(args_kwargs__kwargs__job_id=job.pk).values_list("status", flat=True)
        )

    def test_an_import_whose_task_failed_is_queued_again_at_once_and_only_once(self):
        job = self.job(status="running", heartbeat_age=dt.timedelta(seconds=1), task_status="FAILED")

        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [job.pk])
        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [])  # a task is waiting now

        self.assertEqual(self.task_statuses(job), ["FAILED", "READY"])

    def test_an_import_run_by_a_live_worker_is_left_alone(self):
        job = self.job(status="running", heartbeat_age=dt.timedelta(seconds=1), task_status="RUNNING")

        self.assertEqual(clean_orphaned_import_tasks(stale_after=HOUR), 0)
        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [])

        self.assertEqual(self.task_statuses(job), ["RUNNING"])

    def test_the_task_of_a_dead_worker_is_failed_and_its_import_queued_again(self):
        job = self.job(status="running", heartbeat_age=2 * HOUR, task_status="RUNNING")

        self.assertEqual(clean_orphaned_import_tasks(stale_after=HOUR), 1)
        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [job.pk])

        self.assertEqual(self.task_statuses(job), ["FAILED", "READY"])
        failed = DBTaskResult.objects.get(args_kwargs__kwargs__job_id=job.pk, status="FAILED")
        self.assertEqual(failed.exception_class_path, "transactions.services.imports.WorkerLost")
        job.refresh_from_db()
        self.assertGreater(job.heartbeat_at, timezone.now() - dt.timedelta(minutes=1))  # claimed by the requeue

    def test_a_task_left_running_on_a_finished_import_is_cleaned_and_nothing_queued(self):
        job = self.job(status="done", heartbeat_age=dt.timedelta(seconds=1), task_status="RUNNING")

        self.assertEqual(clean_orphaned_import_tasks(stale_after=HOUR), 1)
        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [])

        self.assertEqual(self.task_statuses(job), ["FAILED"])

    def test_a_queued_import_whose_task_is_gone_is_queued_again_after_the_stale_time(self):
        job = self.job(status="queued", heartbeat_age=dt.timedelta(0), task_status=None)
        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [])  # its task may be on its way

        ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - 2 * HOUR)

        self.assertEqual(requeue_stale_imports(stale_after=HOUR), [job.pk])
        self.assertEqual(self.task_statuses(job), ["READY"])
