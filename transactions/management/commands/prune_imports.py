import datetime as dt

from django.conf import settings
from django.core.management.base import BaseCommand

from transactions import services


class Command(BaseCommand):
    help = "Delete uploaded import files older than the retention period (CDP_IMPORT_RETENTION_DAYS)."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Override the retention in days.")

    def handle(self, *args, days, **options):
        retention = settings.CDP_IMPORT_RETENTION_DAYS if days is None else days
        pruned = services.prune_imports(older_than=dt.timedelta(days=retention))
        self.stdout.write(f"Deleted the files of {pruned} import(s) older than {retention} day(s).")
