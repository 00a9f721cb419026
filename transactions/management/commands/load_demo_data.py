from itertools import islice

from django.core.management.base import BaseCommand

from transactions import services
from transactions.generation import generate_records
from transactions.validation import parse_transaction_record

BATCH_SIZE = 5000


class Command(BaseCommand):
    help = "Load generated demo transactions into the database (safe to run again: repeats are duplicates)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=20000)
        parser.add_argument("--customers", type=int, default=None, help="Default: rows/10.")
        parser.add_argument("--seed", type=int, default=1)

    def handle(self, *args, rows, customers, seed, **options):
        records = generate_records(rows=rows, customers=customers or max(1, rows // 10), seed=seed)
        counts = {"created": 0, "duplicate": 0, "conflict": 0}
        while batch := list(islice(records, BATCH_SIZE)):
            outcomes = services.ingest_transactions(records=[parse_transaction_record(raw) for raw in batch])
            for outcome in outcomes:
                counts[outcome.status] += 1
        services.fold_summary_deltas()
        self.stdout.write(
            f"Demo data: {rows} records: {counts['created']} created, "
            f"{counts['duplicate']} duplicates, {counts['conflict']} conflicts."
        )
