"""Background tasks (Django's tasks API, run by `manage.py import_worker`)."""

from django_tasks import task


@task()
def run_import(*, job_id: int) -> None:
    # Imported here: the services enqueue this task, so a module-level import would be a circle.
    from .services import imports

    imports.run_import(job_id=job_id)
