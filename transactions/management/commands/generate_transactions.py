import sys

from django.core.management.base import BaseCommand

from transactions.generation import generate_records, write_csv, write_ndjson


class Command(BaseCommand):
    help = (
        "Write realistic, deterministic transactions (Indian states and pincodes, skewed amounts, "
        "about 1% repeated keys) as CSV or NDJSON, to stdout or a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1000, help="How many records (default 1000).")
        parser.add_argument("--customers", type=int, default=None, help="How many customers (default rows/10).")
        parser.add_argument("--seed", type=int, default=1, help="Same seed, same records (default 1).")
        parser.add_argument("--format", choices=["csv", "ndjson"], default="csv")
        parser.add_argument("--output", "-o", default="-", help="File to write; - (default) is stdout.")

    def handle(self, *args, rows, customers, seed, format, output, **options):
        if rows < 0:
            self.stderr.write("--rows must not be negative")
            sys.exit(2)
        records = generate_records(rows=rows, customers=customers or max(1, rows // 10), seed=seed)
        write = write_csv if format == "csv" else write_ndjson
        if output == "-":
            write(records, self.stdout)
            return
        with open(output, "w", encoding="utf-8", newline="") as out:
            count = write(records, out)
        self.stderr.write(f"wrote {count} records to {output}")
