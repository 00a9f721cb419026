"""Background tasks (Django's tasks API, run by `manage.py import_worker`)."""

from django_tasks import task

from . import services


@task()
def run_import(*, job_id: int) -> None:
    services.run_import(job_id=job_id)
