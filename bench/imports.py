"""Import benchmark: a generated CSV through the real upload path and a real worker process.

    .venv/bin/python bench/imports.py --rows 1000000        (MariaDB at 127.0.0.1:3306, root)
    .venv/bin/python bench/imports.py --rows 1000000 --breakdown 1000000   (and where the time goes)

Creates a fresh database `cdp_bench_import`, queues the import of the file as the API does,
runs `manage.py import_worker --batch` as a child process and reports its wall time, rows/s and
peak RSS. As the reference it then times MariaDB's own `LOAD DATA LOCAL INFILE` of the same file
into a table with the same columns and indexes, and prints the ratio of the two.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--server", default="mysql://root@127.0.0.1:3306", help="MariaDB/MySQL server URL.")
    parser.add_argument("--database", default="cdp_bench_import")
    parser.add_argument("--breakdown", type=int, default=0, metavar="ROWS",
                        help="Afterwards, time reading and writing the first ROWS rows one after the other.")
    args = parser.parse_args()

    OUT.mkdir(exist_ok=True)
    csv_path = OUT / f"import-{args.rows}.csv"
    if not csv_path.exists():
        print(f"generating {csv_path.name} ...", flush=True)
        subprocess.run(
            [sys.executable, "manage.py", "generate_transactions", "--rows", str(args.rows),
             "--customers", str(max(1, args.rows // 10)), "--output", str(csv_path)],
            cwd=ROOT, check=True,
        )
    database_url = f"{args.server}/{args.database}"
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "cdp_site.settings"
    os.environ.setdefault("CDP_IMPORT_DIR", str(OUT / "uploads"))
    sys.path.insert(0, str(ROOT))

    import MySQLdb

    import dj_database_url

    server = dj_database_url.parse(database_url)
    admin = MySQLdb.connect(host=server["HOST"], port=int(server["PORT"] or 3306), user=server["USER"],
                            passwd=server["PASSWORD"] or "", local_infile=1)
    cursor = admin.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS `{args.database}`")
    cursor.execute(f"CREATE DATABASE `{args.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.files import File
    from django.core.management import call_command
    from django.db import connection

    from transactions import services
    from transactions.models import ImportJob, Transaction

    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("bench-import")
    with open(csv_path, "rb") as upload:
        job = services.start_import(owner=owner, uploaded_file=File(upload, name=csv_path.name), file_format="csv")
    connection.close()

    print(f"importing {args.rows} rows with one worker process ...", flush=True)
    server_cpu_before = server_cpu_seconds()
    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "manage.py", "import_worker", "--batch", "-v0"], cwd=ROOT)
    _, status, usage = os.wait4(worker.pid, 0)
    elapsed = time.perf_counter() - started
    server_cpu = server_cpu_seconds() - server_cpu_before
    job.refresh_from_db()
    peak_rss_mb = usage.ru_maxrss / 1024
    print(f"import: status {job.status} {job.error}".rstrip())
    print(f"import: {job.rows_processed} rows in {elapsed:.1f} s = {job.rows_processed / elapsed:,.0f} rows/s; "
          f"created {job.created}, duplicates {job.duplicates}, conflicts {job.conflicts}, rejected {job.rejected}; "
          f"worker peak RSS {peak_rss_mb:.0f} MB")
    print(f"import: CPU time of the worker {usage.ru_utime:.1f} s user + {usage.ru_stime:.1f} s system; "
          f"of the database server {server_cpu:.1f} s" if server_cpu >= 0 else "")
    assert job.created + job.duplicates + job.conflicts + job.rejected == job.rows_processed
    assert Transaction.objects.count() == job.created

    # The reference: the server's own bulk loader, same columns and indexes, no validation.
    cursor.execute(f"USE `{args.database}`")
    cursor.execute("DROP TABLE IF EXISTS load_data_reference")
    cursor.execute("CREATE TABLE load_data_reference LIKE transactions_transaction")
    started = time.perf_counter()
    cursor.execute(
        f"LOAD DATA LOCAL INFILE '{csv_path}' IGNORE INTO TABLE load_data_reference "
        "CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' IGNORE 1 LINES "
        "(customer_id, name, transaction_amount, mob_no, @moment, pincode, state) "
        "SET transaction_datetime = STR_TO_DATE(@moment, '%Y-%m-%dT%H:%i:%sZ'), "
        "state_key = LOWER(state), created_at = UTC_TIMESTAMP(6)"
    )
    admin.commit()
    reference = time.perf_counter() - started
    cursor.execute("SELECT COUNT(*) FROM load_data_reference")
    (loaded,) = cursor.fetchone()
    print(f"LOAD DATA LOCAL INFILE: {loaded} rows in {reference:.1f} s = {args.rows / reference:,.0f} rows/s")
    print(f"ratio: the import takes {elapsed / reference:.1f}x the time of LOAD DATA")
    if args.breakdown:
        breakdown(csv_path, rows=args.breakdown, database=args.database, owner=owner)


def server_cpu_seconds() -> float:
    """CPU time the local MariaDB/MySQL server has used so far (-1 when it is not on this machine)."""
    for name in ("mariadbd", "mysqld"):
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split()
        if found:
            fields = Path(f"/proc/{found[0]}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return -1.0


def breakdown(csv_path: Path, *, rows: int, database: str, owner) -> None:
    """Where an import's time goes: the same steps as the worker, one after the other, in-process.

    Reads and validates the first `rows` rows (the worker's reading thread), then writes them
    chunk by chunk (its writer thread) into an emptied database, timing the server's answers
    to the writer's queries (MySQLdb's Connection.query) apart from the rest.
    """
    from itertools import islice

    import MySQLdb.connections
    from django.conf import settings
    from django.core.files import File
    from django.db import connection

    from transactions import import_files, services
    from transactions.models import ImportJob, Transaction

    query_seconds: dict[str, float] = {}
    real_query = MySQLdb.connections.Connection.query

    def timed_query(self, sql):
        started = time.perf_counter()
        try:
            return real_query(self, sql)
        finally:
            kind = statement_kind(sql)
            query_seconds[kind] = query_seconds.get(kind, 0.0) + time.perf_counter() - started

    # Empty every table the import writes (the stored rows and all running totals).
    cursor = connection.cursor()
    cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
    for table in connection.introspection.table_names():
        if table.startswith("transactions_") and table not in ("transactions_importjob", "transactions_rejectedrow"):
            cursor.execute(f"TRUNCATE TABLE `{table}`")
    cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
    with open(csv_path, "rb") as upload:
        job = services.start_import(owner=owner, uploaded_file=File(upload, name=csv_path.name), file_format="csv")
    ImportJob.objects.filter(pk=job.pk).update(runner="breakdown", status="running")
    started = time.perf_counter()
    with open(csv_path, "rb") as file:
        layout = import_files.read_csv_layout(file)
        file_rows = islice(import_files.csv_rows(file, layout, offset=0, line_number=0), rows)
        chunks = []
        while chunk := list(islice(file_rows, settings.CDP_IMPORT_CHUNK_ROWS)):
            chunks.append(services._validated_chunk(job_id=job.pk, chunk=chunk, file_format="csv"))
    reading = time.perf_counter() - started
    MySQLdb.connections.Connection.query = timed_query
    started = time.perf_counter()
    for chunk in chunks:
        services._import_chunk(job_id=job.pk, runner="breakdown", chunk=chunk)
    writing = time.perf_counter() - started
    MySQLdb.connections.Connection.query = real_query
    count = Transaction.objects.count()
    print(f"breakdown of {rows} rows ({count} stored), one step after the other:")
    print(f"  read + validate + write as SQL: {reading:.1f} s ({reading / rows * 1e6:.1f} us/row)")
    server = sum(query_seconds.values())
    print(f"  write chunks: {writing:.1f} s ({writing / rows * 1e6:.1f} us/row), of which waiting for the "
          f"server {server:.1f} s ({server / rows * 1e6:.1f} us/row):")
    for kind, seconds in sorted(query_seconds.items(), key=lambda item: -item[1]):
        print(f"    {seconds / rows * 1e6:6.1f} us/row  {kind}")


def statement_kind(sql: bytes | str) -> str:
    """A statement's verb and table, e.g. "INSERT transactions_customer ... ON DUPLICATE KEY"."""
    text = sql.decode("utf-8", "replace") if isinstance(sql, bytes) else sql
    words = text[:200].replace("`", "").split()
    verb = " ".join(words[:2]) if words[:1] == ["INSERT"] and words[1:2] == ["IGNORE"] else words[0] if words else ""
    table = next((w for w in words if w.startswith("transactions_") or w.startswith("django_")), "")
    upsert = " ON DUPLICATE KEY" if "ON DUPLICATE KEY" in text[-1000:] else ""
    locking = " FOR UPDATE" if text.rstrip().endswith("FOR UPDATE") else ""
    return f"{verb} {table}{upsert}{locking}".strip()


if __name__ == "__main__":
    main()
