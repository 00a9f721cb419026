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

from gunicorn_server import start_gunicorn, stop_gunicorn

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--server", default="mysql://root@127.0.0.1:3306", help="MariaDB/MySQL server URL.")
    parser.add_argument("--database", default="cdp_bench_import")
    parser.add_argument("--rounds", type=int, default=1,
                        help="Import and LOAD DATA this many times, interleaved (import, LOAD DATA, import, ...).")
    parser.add_argument("--chunk-rows", type=int, default=0, metavar="ROWS",
                        help="CDP_IMPORT_CHUNK_ROWS of the worker (default: the setting's).")
    parser.add_argument("--batches", type=int, default=0, metavar="N",
                        help="After each round, store the file's first N x 10,000 rows as API batches: as JSON "
                             "over HTTP (POST /api/ingest-data to a gunicorn with gunicorn.conf.py, one client "
                             "on one kept-alive connection), and through the service alone "
                             "(services.ingest_batch, validation included), in parts and on one connection, "
                             "each into an emptied database, in turn (with --rounds 0: also row by row).")
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
    if args.chunk_rows:
        os.environ["CDP_IMPORT_CHUNK_ROWS"] = str(args.chunk_rows)
    sys.path.insert(0, str(ROOT))

    import MySQLdb

    import dj_database_url

    server = dj_database_url.parse(database_url)
    port = int(server["PORT"] or 3306)
    admin = MySQLdb.connect(host=server["HOST"], port=port, user=server["USER"],
                            passwd=server["PASSWORD"] or "", local_infile=1)
    cursor = admin.cursor()
    global SERVER_PORT
    SERVER_PORT = port
    cursor.execute("SELECT @@innodb_buffer_pool_size, VERSION()")
    pool, version = cursor.fetchone()
    print(f"server {server['HOST']}:{port} ({version}), buffer pool {pool / 2**20:.0f} MB; "
          f"chunks of {os.environ.get('CDP_IMPORT_CHUNK_ROWS', 'the default')} rows", flush=True)

    import django

    django.setup()
    from django.conf import settings

    rounds = []
    owner = None
    for round_number in range(1, args.rounds + 1):
        owner = fresh_database(cursor, args.database)
        load = os.getloadavg()
        elapsed, job, usage, server_cpu = import_file(csv_path, owner=owner, port=port)
        reference = load_data(cursor, admin, args.database, csv_path, rows=args.rows)
        load_after = os.getloadavg()
        rounds.append((elapsed, reference, usage.ru_maxrss / 1024))
        print(f"round {round_number}: import {elapsed:.1f} s, LOAD DATA {reference:.1f} s: "
              f"LOAD DATA / import = {reference / elapsed:.2f}x; load average {load[0]:.2f} before, "
              f"{load_after[0]:.2f} after", flush=True)
        if args.batches:  # interleaved with the imports: import, batches, import, batches
            # Each round begins with another writer: the first one after LOAD DATA shares the
            # server with its background work (the dropped tables' purge, page flushing).
            writers = ("JSON over HTTP", "set-based in parts", "set-based on one connection")
            first = (round_number - 1) % len(writers)
            batch_rates = api_batches(csv_path, cursor, database=args.database, batches=args.batches,
                                      writers=writers[first:] + writers[:first])
            import_rate = args.rows / elapsed
            print(f"round {round_number}: rows/s against the import's {import_rate:,.0f}: " + ", ".join(
                f"{writer} {rate / import_rate:.2f}x" for writer, rate in batch_rates), flush=True)
    if len(rounds) > 1:
        imports, references, rss = zip(*rounds)
        print(f"all rounds ({settings.CDP_IMPORT_CHUNK_ROWS}-row chunks): import "
              + ", ".join(f"{t:.1f}" for t in imports) + " s; LOAD DATA " + ", ".join(f"{t:.1f}" for t in references)
              + " s; ratio (LOAD DATA / import) " + ", ".join(f"{r / t:.2f}" for t, r in zip(imports, references))
              + f"; overall {sum(references) / sum(imports):.2f}x; peak RSS {max(rss):.0f} MB")
    if args.batches and not args.rounds:
        api_batches(csv_path, cursor, database=args.database, batches=args.batches)
    if args.breakdown:
        owner = owner or fresh_database(cursor, args.database)  # --rounds 0: the breakdown alone
        breakdown(csv_path, rows=args.breakdown, database=args.database, owner=owner)


BATCH_WRITERS = ("JSON over HTTP", "set-based in parts", "set-based on one connection", "row by row")
HTTP_PORT = 8133


def api_batches(csv_path: Path, cursor, *, database: str, batches: int, batch_records: int = 10_000,
                writers: tuple[str, ...] = BATCH_WRITERS * 2) -> list[tuple[str, float]]:
    """A JSON batch's service path per row (``services.ingest_batch``, validation included): the
    set-based writer in parts at once (``services.batch_parts``), on one connection, and the
    row-by-row one in turn, each into an emptied database."""
    from itertools import islice

    from django.db import connection

    from transactions import import_files, services
    from transactions.sql import operations

    with open(csv_path, "rb") as file:
        layout = import_files.read_csv_layout(file)
        raw = [row.values for row in islice(import_files.csv_rows(file, layout, offset=0, line_number=0),
                                            batches * batch_records)]
    from django.conf import settings

    has_bulk_loader, batch_writers = operations().has_bulk_loader, settings.CDP_BATCH_WRITERS
    rates = []
    for writer in writers:
        owner = fresh_database(cursor, database)
        if writer == "JSON over HTTP":
            elapsed = http_batches(raw, owner=owner, batch_records=batch_records)
            print(f"API batches of {batch_records:,}, {writer}: {len(raw):,} rows in {elapsed:.1f} s = "
                  f"{len(raw) / elapsed:,.0f} rows/s ({elapsed / len(raw) * 1e6:.0f} us/row); load average "
                  f"{os.getloadavg()[0]:.2f}", flush=True)
            rates.append((writer, len(raw) / elapsed))
            continue
        operations().has_bulk_loader = writer.startswith("set-based") and has_bulk_loader
        settings.CDP_BATCH_WRITERS = batch_writers if writer.endswith("in parts") else 1
        started = time.perf_counter()
        for first in range(0, len(raw), batch_records):
            errors, _ = services.ingest_batch(raw[first : first + batch_records])
            assert not errors, errors
        elapsed = time.perf_counter() - started
        print(f"API batches of {batch_records:,}, {writer}: {len(raw):,} rows in {elapsed:.1f} s = "
              f"{len(raw) / elapsed:,.0f} rows/s ({elapsed / len(raw) * 1e6:.0f} us/row); load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        rates.append((writer, len(raw) / elapsed))
        connection.close()
    operations().has_bulk_loader, settings.CDP_BATCH_WRITERS = has_bulk_loader, batch_writers
    return rates


def http_batches(raw: list[dict], *, owner, batch_records: int) -> float:
    """The records as JSON batches, POSTed one after the other on one kept-alive connection to a
    gunicorn started for it (``gunicorn_server``: every worker warmed up; throttles and the
    request log off) on the emptied database; the seconds from the first request sent to the
    last answer read. Each answer is checked: every record created or a repeat."""
    import http.client
    import json

    from django.db import connection
    from rest_framework.authtoken.models import Token

    from transactions import services

    services.assign_role(user=owner, role="api-client")
    token = Token.objects.create(user=owner).key
    connection.close()
    bodies = [json.dumps(raw[first : first + batch_records]).encode() for first in range(0, len(raw), batch_records)]
    server = start_gunicorn(port=HTTP_PORT, log_path=OUT / "imports-gunicorn.log", CDP_REQUEST_LOG="off",
                            CDP_THROTTLE_USER="none", CDP_THROTTLE_ANON="none")
    try:
        client = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=120)
        headers = {"Content-Type": "application/json", "Authorization": f"Token {token}"}
        started = time.perf_counter()
        for body in bodies:
            client.request("POST", "/api/ingest-data", body, headers)
            response = client.getresponse()
            answer = json.loads(response.read())
            assert response.status == 200, (response.status, answer)
            assert answer["created"] + answer["duplicates"] + answer["conflicts"] == answer["received"], answer
        elapsed = time.perf_counter() - started
        client.close()
        return elapsed
    finally:
        stop_gunicorn(server)


SERVER_PORT = 3306  # main() sets the server's


def wait_for_quiet_server(*, timeout: float = 30.0) -> None:
    """Wait until the database server's background work is done (the purge of a dropped
    database, page flushing): until it uses under 5% of a core for half a second. What ran
    before must not take CPU from what is timed next (the first of the batch writers after
    LOAD DATA ran 5-10% slower than the same writer later in a round). A server on another
    machine (its CPU time unknown): no wait."""
    deadline = time.monotonic() + timeout
    before = server_cpu_seconds(SERVER_PORT)
    while before >= 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        now = server_cpu_seconds(SERVER_PORT)
        if now - before < 0.025:
            return
        before = now


def fresh_database(cursor, database: str):
    """An empty database with the schema, and the importing user; the connection closed again."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    connection.close()
    cursor.execute(f"DROP DATABASE IF EXISTS `{database}`")
    cursor.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    call_command("migrate", verbosity=0)
    user = User.objects.create_user("bench-import")
    wait_for_quiet_server()
    return user


def import_file(csv_path: Path, *, owner, port: int):
    """Queue the file as the API does and run one worker process over it; its wall time."""
    from django.core.files import File
    from django.db import connection

    from transactions import services
    from transactions.models import Transaction

    with open(csv_path, "rb") as upload:
        job = services.start_import(owner=owner, uploaded_file=File(upload, name=csv_path.name), file_format="csv")
    connection.close()

    print("importing with one worker process ...", flush=True)
    server_cpu_before = server_cpu_seconds(port)
    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "manage.py", "import_worker", "--batch", "-v0"], cwd=ROOT)
    _, status, usage = os.wait4(worker.pid, 0)
    elapsed = time.perf_counter() - started
    server_cpu = server_cpu_seconds(port) - server_cpu_before
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
    return elapsed, job, usage, server_cpu


def load_data(cursor, admin, database: str, csv_path: Path, *, rows: int) -> float:
    """The reference: the server's own bulk loader, same columns and indexes, no validation."""
    cursor.execute(f"USE `{database}`")
    cursor.execute("DROP TABLE IF EXISTS load_data_reference")
    cursor.execute("CREATE TABLE load_data_reference LIKE transactions_transaction")
    wait_for_quiet_server()
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
    print(f"LOAD DATA LOCAL INFILE: {loaded} rows in {reference:.1f} s = {rows / reference:,.0f} rows/s", flush=True)
    cursor.execute("DROP TABLE load_data_reference")
    return reference


def server_cpu_seconds(port: int) -> float:
    """CPU time the local MariaDB/MySQL server on ``port`` has used so far (-1 when it is not on
    this machine). A server started without --port is taken to listen on 3306."""
    for name in ("mariadbd", "mysqld"):
        for pid in subprocess.run(["pgrep", "-x", name], capture_output=True, text=True).stdout.split():
            try:
                arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            ports = [a.split("=", 1)[1] for a in arguments if a.startswith("--port=")]
            if (ports[-1] if ports else "3306") == str(port):
                fields = stat.rsplit(")", 1)[1].split()
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
            validated = services.imports._validated_chunk(job_id=job.pk, chunk=chunk, file_format="csv")
            chunks.append(services.imports._split(validated, ways=1, block=1, done={}))
    reading = time.perf_counter() - started
    MySQLdb.connections.Connection.query = timed_query
    started = time.perf_counter()
    for chunk in chunks:
        for index, part in chunk.parts:
            services.imports._import_chunk(job_id=job.pk, runner="breakdown", chunk=chunk, part_index=index, part=part)
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
    if text.startswith("SET STATEMENT ") and " FOR " in text[:300]:  # MariaDB's per-statement settings
        text = text[text.index(" FOR ") + 5:]
    words = text[:200].replace("`", "").split()
    verb = " ".join(words[:2]) if words[:1] == ["INSERT"] and words[1:2] == ["IGNORE"] else words[0] if words else ""
    table = next((w for w in words if w.startswith("transactions_") or w.startswith("django_")), "")
    upsert = " ON DUPLICATE KEY" if "ON DUPLICATE KEY" in text[-1000:] else ""
    locking = " FOR UPDATE" if text.rstrip().endswith("FOR UPDATE") else ""
    return f"{verb} {table}{upsert}{locking}".strip()


if __name__ == "__main__":
    main()
