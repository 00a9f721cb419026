"""Benchmark: load generated transactions, then measure every endpoint over HTTP.

Runs against the database DATABASE_URL names (SQLite by default) and a real gunicorn process:

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench .venv/bin/python bench/run.py --rows 1000000

The data set is kept between runs (loading a million rows takes a while); the rows the ingest
measurements add are deleted again at the end, so every run measures the same table.
Prints one line per workload and writes the figures to bench/out/results.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from itertools import islice
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from transactions import services  # noqa: E402
from transactions.generation import generate_records  # noqa: E402
from transactions.models import Customer, CustomerPincodeTotal, Transaction  # noqa: E402
from transactions.validation import parse_transaction_record  # noqa: E402

# Customers the ingest measurements create live above this id, so they can be removed after.
BENCH_CUSTOMER_OFFSET = 10**12
LOAD_BATCH = 10_000


def load_data_set(rows: int, customers: int) -> None:
    stored = Transaction.objects.filter(customer_id__lt=BENCH_CUSTOMER_OFFSET).count()
    if stored >= rows * 0.98:  # about 1% of generated records are repeats, never stored
        print(f"data set: {stored} transactions already stored; reusing them")
        return
    print(f"data set: loading {rows} generated records ({customers} customers) ...", flush=True)
    started = time.perf_counter()
    records = generate_records(rows=rows, customers=customers, seed=1)
    while batch := list(islice(records, LOAD_BATCH)):
        services.ingest_transactions(records=[parse_transaction_record(raw) for raw in batch])
    services.fold_summary_deltas()
    elapsed = time.perf_counter() - started
    print(f"data set: loaded in {elapsed:.1f} s ({rows / elapsed:,.0f} records/s through the service)")


def remove_bench_rows() -> None:
    # Plain DELETEs: the ORM's delete() would write an audit-history row for each one.
    deleted = 0
    with connection.cursor() as cursor:
        for model in (Transaction, CustomerPincodeTotal, Customer):
            cursor.execute(
                f"DELETE FROM {connection.ops.quote_name(model._meta.db_table)} WHERE customer_id >= %s",
                [BENCH_CUSTOMER_OFFSET],
            )
            deleted += cursor.rowcount
    if deleted:
        # The month and pincode totals still count the deleted rows: rebuild them (under a second).
        services.recompute_summary_totals()


def fresh_records(count: int, seed: int) -> list[dict]:
    """Records no stored row has: their customers live above BENCH_CUSTOMER_OFFSET."""
    records = []
    for record in generate_records(rows=count, customers=max(1, count // 10), seed=seed):
        records.append({**record, "customer_id": BENCH_CUSTOMER_OFFSET + int(record["customer_id"])})
    return records


class Server:
    def __init__(self, port: int, workers: int):
        env = {**os.environ, "CDP_THROTTLE_USER": "none", "CDP_THROTTLE_ANON": "none"}
        self.port = port
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "cdp_site.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT, env=env, stderr=open(ROOT / "bench" / "out" / "gunicorn.log", "w"),
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                status, _ = self.request("GET", "/api/health/", None, token=None)
                if status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not come up")

    def request(self, method: str, path: str, body, *, token: str | None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Token {token}"
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        return response.status, payload

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def measure(name: str, server: Server, token: str, requests: list[tuple[str, object]], *,
            concurrency: int = 1, expect=(200,), rows_per_request: int | None = None) -> dict:
    """Send the requests from `concurrency` threads; report requests/s and latency percentiles."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    pending = iter(requests)

    def client() -> None:
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                return
            path, body = item
            started = time.perf_counter()
            status, payload = server.request("POST", path, body, token=token)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                if status not in expect:
                    failures.append(f"{status} {payload[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    result = {
        "workload": name,
        "requests": len(latencies),
        "concurrency": concurrency,
        "requests_per_s": round(len(latencies) / wall, 1),
        "rows_per_s": round(len(latencies) * rows_per_request / wall) if rows_per_request else None,
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p95_ms": round(latencies[max(0, math.ceil(len(latencies) * 0.95) - 1)] * 1000, 1),  # nearest rank
        "failures": len(failures),
    }
    print(
        f"{name:<44} {result['requests']:>6} req  c={concurrency}  {result['requests_per_s']:>8.1f} req/s  "
        + (f"{result['rows_per_s']:>8} rows/s" if rows_per_request else " " * 15)
        + f"  p50 {result['p50_ms']:>8.1f} ms  p95 {result['p95_ms']:>8.1f} ms"
        + (f"  FAILURES {len(failures)}: {failures[0]}" if failures else ""),
        flush=True,
    )
    return result


def report_workloads(args) -> list[tuple[str, str, dict]]:
    newest = Transaction.objects.order_by("-transaction_datetime").values_list("transaction_datetime", flat=True).first()
    middle = "2024-06-30T23:59:59Z"
    after_all = "2038-01-01T00:00:00"
    busiest_state = (
        CustomerPincodeTotal.objects.values("state_key").order_by("state_key").first() or {"state_key": "maharashtra"}
    )["state_key"]
    print(f"newest transaction {newest}; state for top-customers: {busiest_state}")
    return [
        ("range, all time, limit 100", "/api/query-transaction-range",
         {"min_amount": 50000, "max_amount": 200000, "time_period": after_all, "limit": 100}),
        ("range, all time, whole answer (streamed)", "/api/query-transaction-range",
         {"min_amount": 50000, "max_amount": 200000, "time_period": after_all}),
        ("range, window to 2024-06-30, limit 100", "/api/query-transaction-range",
         {"min_amount": 50000, "max_amount": 200000, "time_period": middle, "limit": 100}),
        ("top-customers, all time", "/api/top-customers", {"state": busiest_state}),
        ("top-customers, window to 2024-06-30", "/api/top-customers", {"state": busiest_state, "time_period": middle}),
    ]


def main() -> None:
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--report-requests", type=int, default=40, help="Requests per report workload.")
    parser.add_argument("--single-requests", type=int, default=2000, help="Single-record ingests per run.")
    parser.add_argument("--batch-records", type=int, default=100_000, help="Records sent in 10,000-record batches.")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--load-only", action="store_true", help="Load the data set (e.g. for bench/pages.py) and stop.")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    remove_bench_rows()
    load_data_set(args.rows, args.customers)
    if args.load_only:
        return
    from django.contrib.auth.models import User

    call_command("create_api_client", "bench", stdout=open(os.devnull, "w"))
    from rest_framework.authtoken.models import Token

    token = Token.objects.get(user=User.objects.get(username="bench")).key
    connection.close()

    server = Server(args.port, args.workers)
    results = []
    try:
        for name, path, body in report_workloads(args):
            for _ in range(args.workers * 2):  # warm every worker's connection and the caches
                server.request("POST", path, body, token=token)
            results.append(measure(name, server, token, [(path, body)] * args.report_requests))
        singles = fresh_records(args.single_requests * 2, seed=7)
        half = args.single_requests
        results.append(measure("single ingest", server, token,
                               [("/api/ingest-data", r) for r in singles[:half]], expect=(200, 201, 409),
                               rows_per_request=1))
        results.append(measure("single ingest", server, token,
                               [("/api/ingest-data", r) for r in singles[half:]], concurrency=8,
                               expect=(200, 201, 409), rows_per_request=1))
        for concurrency, seed in ((1, 8), (2, 9)):
            batch_records = fresh_records(args.batch_records, seed=seed)
            batches = [("/api/ingest-data", batch_records[i:i + 10_000]) for i in range(0, len(batch_records), 10_000)]
            results.append(measure("batch ingest (10,000 new records a request)", server, token, batches,
                                   concurrency=concurrency, rows_per_request=10_000))
    finally:
        server.stop()
        remove_bench_rows()
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps({"database": connection.vendor, "rows": args.rows, "results": results}, indent=2))


if __name__ == "__main__":
    main()
