import datetime as dt

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from transactions import services


class Command(BaseCommand):
    help = (
        "Run a background worker for file imports: first queue again any import whose worker "
        "died, then process tasks (django-tasks' db_worker). Start several for more throughput."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch", action="store_true", help="Process what is queued, then exit.")
        parser.add_argument("--interval", default="1", help="Seconds between polls for new tasks.")

    def handle(self, *args, batch, interval, **options):
        requeued = services.requeue_stale_imports(stale_after=dt.timedelta(seconds=settings.CDP_IMPORT_STALE_SECONDS))
        if requeued:
            self.stdout.write(f"Resuming interrupted imports: {', '.join(map(str, requeued))}")
        worker_args = ["--interval", interval, "--no-startup-delay"]
        if batch:
            worker_args.append("--batch")
        call_command("db_worker", *worker_args, verbosity=options["verbosity"])
