"""The reports' benchmark data set, loaded into a database of one's own (and the peer's table).

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench_reports .venv/bin/python bench/report_data.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cdp_bench_reports .venv/bin/python bench/report_data.py
    .venv/bin/python bench/report_data.py --peer peer_reports          (the peer's table, same rows)

The same 1,000,000 generated records as bench/imports.py (`manage.py generate_transactions
--rows 1000000`: 100,000 customers, seed 1; 989,878 distinct transactions), written once to
--csv, then imported through the real path (``services.start_import`` and one
``manage.py import_worker --batch`` process) into an empty DATABASE_URL, which must exist and
hold no transactions. With --peer it instead fills the peer's ``transactions`` table (the
reference implementation's own schema, ``../shared/peer/app/modules.py``) in the MariaDB
database named, with MariaDB's LOAD DATA: the peer stores every row, repeats included, as its
own ingest does.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_TABLE = """CREATE TABLE IF NOT EXISTS transactions (
  id INTEGER NOT NULL AUTO_INCREMENT, customer_id INTEGER, name VARCHAR(100), transaction_amount FLOAT,
  mob_no VARCHAR(15), transaction_datetime DATETIME, pincode VARCHAR(10), state VARCHAR(50),
  PRIMARY KEY (id), KEY ix_transactions_id (id), KEY ix_transactions_customer_id (customer_id))"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--csv", type=Path, default=Path("/tmp/cdp-bench-reports/import-1000000.csv"))
    parser.add_argument("--peer", metavar="DBNAME", help="Fill the peer's table in this MariaDB database instead.")
    args = parser.parse_args()
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    if not args.csv.exists():
        print(f"generating {args.csv} ...", flush=True)
        subprocess.run(
            [sys.executable, "manage.py", "generate_transactions", "--rows", str(args.rows),
             "--customers", str(max(1, args.rows // 10)), "--output", str(args.csv)],
            cwd=ROOT, check=True,
        )
    if args.peer:
        load_peer(args.csv, args.peer)
    else:
        import_ours(args.csv)


def load_peer(csv_path: Path, database: str) -> None:
    import MySQLdb

    admin = MySQLdb.connect(host="127.0.0.1", port=3306, user="root", passwd="", local_infile=1)
    cursor = admin.cursor()
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
    cursor.execute(f"USE `{database}`")
    cursor.execute(PEER_TABLE)
    cursor.execute("DELETE FROM transactions")
    started = time.perf_counter()
    cursor.execute(
        f"LOAD DATA LOCAL INFILE '{csv_path}' INTO TABLE transactions "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES "
        "(customer_id, name, transaction_amount, mob_no, @moment, pincode, state) "
        "SET transaction_datetime = STR_TO_DATE(@moment, '%Y-%m-%dT%H:%i:%sZ')"
    )
    admin.commit()
    cursor.execute("SELECT COUNT(*) FROM transactions")
    print(f"peer table {database}.transactions: {cursor.fetchone()[0]} rows in {time.perf_counter() - started:.1f} s")


def import_ours(csv_path: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    os.environ.setdefault("CDP_IMPORT_DIR", str(csv_path.parent / "uploads"))
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.files import File
    from django.core.management import call_command
    from django.db import connection

    from transactions import services
    from transactions.models import Transaction

    call_command("migrate", verbosity=0)
    if Transaction.objects.exists():
        sys.exit("DATABASE_URL already holds transactions; give an empty database.")
    owner, _ = User.objects.get_or_create(username="bench-reports")
    with open(csv_path, "rb") as upload:
        job = services.start_import(owner=owner, uploaded_file=File(upload, name=csv_path.name), file_format="csv")
    connection.close()
    started = time.perf_counter()
    subprocess.run([sys.executable, "manage.py", "import_worker", "--batch", "-v0"], cwd=ROOT, check=True)
    job.refresh_from_db()
    print(f"import {job.status}: {job.created} created, {job.duplicates} duplicates, {job.rejected} rejected "
          f"in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
