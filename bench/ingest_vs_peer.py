"""Single-record ingest, ours beside the reference implementation, same run, same records, same client.

    .venv/bin/python bench/ingest_vs_peer.py [--rounds 2] [--concurrency 1 8] [--records 5000]

Generates the records with ../shared/bench/gen_transactions.py (seed 11, as ../shared/peer/NOTES.md),
starts the peer with ../shared/peer/start.sh (4 workers, its own database) and our gunicorn on
MariaDB (database cdp_ingest_bench, GUNICORN_* settings below), then for each concurrency runs
rounds A (peer), B (ours), A, B... with ../shared/bench/http_ingest.py, emptying both sides'
tables before every round (TRUNCATE: a DELETE leaves the server purging rows into the round) so each round stores the same 5,000 new records. Prints each round,
the load average, and the ratio ours/peer of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from gunicorn_server import start_gunicorn, stop_gunicorn

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OUT = ROOT / "bench" / "out"
PEER_PORT, OUR_PORT = 8101, 8102
PEER_DB, OUR_DB = "peer_bench", "cdp_ingest_bench"
# Ours, chosen for this 2-core machine: gthread workers keep the client's connections alive
# (sync workers close every one), 4 processes x 2 threads overlap the database round trips.
OUR_GUNICORN = {"GUNICORN_WORKERS": "4", "GUNICORN_THREADS": "2", "GUNICORN_WORKER_CLASS": "gthread"}


def write_records(path: Path, count: int) -> Path:
    """`count` records as JSON lines, generated as ../shared/peer/NOTES.md measured (seed 11, count/5 customers)."""
    with open(path, "w") as file:
        subprocess.run([sys.executable, str(SHARED / "bench" / "gen_transactions.py"), "--rows", str(count),
                        "--customers", str(max(1, count // 5)), "--seed", "11", "--format", "jsonl"],
                       check=True, stdout=file)
    return path


def cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) used so far by a process and all its descendants alive now."""
    parents, times = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid], times[pid] = int(fields[1]), int(fields[11]) + int(fields[12])
    total, stack = 0, [root_pid]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0)
        stack.extend(child for child, parent in parents.items() if parent == pid)
    return total / os.sysconf("SC_CLK_TCK")


def mariadb_pid() -> int:
    return int(subprocess.run(["pgrep", "-o", "-x", "mariadbd"], capture_output=True, text=True).stdout.split()[0])


def mariadb(sql: str, database: str | None = None) -> str:
    command = ["mariadb", "-uroot", "-h127.0.0.1", "-N", "-e", sql]
    if database:
        command.insert(1, database)
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def start_ours(env: dict, gunicorn: dict) -> subprocess.Popen:
    return start_gunicorn(port=OUR_PORT, log_path=OUT / "ingest-gunicorn.log", env=env, **gunicorn)


def run_client(file: Path, url: str, concurrency: int, headers: list[str]) -> dict:
    command = [sys.executable, str(SHARED / "bench" / "http_ingest.py"), str(file), "--url", url,
               "--concurrency", str(concurrency), "--json"]
    for header in headers:
        command += ["--header", header]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(next(line for line in output.splitlines() if line.startswith("JSON "))[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--throttle", action="store_true", help="keep our API throttles on (the peer has none)")
    parser.add_argument("--request-log", action="store_true",
                        help="keep our JSON line per request (the peer runs with --no-access-log)")
    parser.add_argument("--workers", default=OUR_GUNICORN["GUNICORN_WORKERS"], help="our gunicorn processes")
    parser.add_argument("--threads", default=OUR_GUNICORN["GUNICORN_THREADS"], help="threads in each")
    args = parser.parse_args()
    gunicorn = {**OUR_GUNICORN, "GUNICORN_WORKERS": str(args.workers), "GUNICORN_THREADS": str(args.threads)}
    print(f"ours: gunicorn {args.workers} x {args.threads} gthread, request log {'on' if args.request_log else 'off'}, "
          f"throttles {'on' if args.throttle else 'off'}; the peer: 4 workers, no access log", flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    records = write_records(OUT / f"ingest-{args.records}.jsonl", args.records)

    env = {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:3306/{OUR_DB}",
           "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)}
    if not args.throttle:
        env.update(CDP_THROTTLE_USER="none", CDP_THROTTLE_ANON="none")
    if not args.request_log:
        env.update(CDP_REQUEST_LOG="off")
    mariadb(f"CREATE DATABASE IF NOT EXISTS `{OUR_DB}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    token = subprocess.run(
        [*manage, "shell", "-c",
         "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
         "from transactions import services; u, _ = User.objects.get_or_create(username='bench-ingest'); "
         "services.assign_role(user=u, role='api-client'); print(Token.objects.get_or_create(user=u)[0].key)"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]

    peer_pid = int(subprocess.run(["bash", str(SHARED / "peer" / "start.sh"), PEER_DB, str(PEER_PORT), "4"],
                                  check=True, capture_output=True, text=True).stdout.split()[-1])
    ours = start_ours(env, gunicorn)
    database_pid = mariadb_pid()
    our_tables = ["transactions_transaction", "transactions_customerpincodetotal", "transactions_customer",
                  "transactions_monthlytotaldelta", "transactions_pincodetotaldelta", "transactions_monthlytotal",
                  "transactions_pincodetotal"]
    results: dict[int, dict[str, list[float]]] = {}
    try:
        peer_table = mariadb("SHOW TABLES", PEER_DB).split()[0]
        for concurrency in args.concurrency:
            results[concurrency] = {"peer": [], "ours": []}
            for round_number in range(1, args.rounds + 1):
                for side in ("peer", "ours"):
                    if side == "peer":
                        mariadb(f"TRUNCATE TABLE `{peer_table}`", PEER_DB)
                        url, headers = f"http://127.0.0.1:{PEER_PORT}/ingest-data", []
                    else:
                        mariadb("SET FOREIGN_KEY_CHECKS=0; " + " ".join(f"TRUNCATE TABLE `{t}`;" for t in our_tables), OUR_DB)
                        url, headers = f"http://127.0.0.1:{OUR_PORT}/api/ingest-data", [f"Authorization: Token {token}"]
                    server_pid = peer_pid if side == "peer" else ours.pid
                    cpu_before = cpu_seconds(server_pid), cpu_seconds(database_pid)
                    summary = run_client(records, url, concurrency, headers)
                    app_cpu, db_cpu = cpu_seconds(server_pid) - cpu_before[0], cpu_seconds(database_pid) - cpu_before[1]
                    load = os.getloadavg()[0]
                    statuses = summary.get("statuses") or summary.get("status_counts")
                    print(f"c={concurrency} round {round_number} {side:>4}: {summary['rows_per_s']:8.1f} rows/s  "
                          f"p50 {summary['p50_ms']:.2f} ms  p99 {summary['p99_ms']:.2f} ms  statuses {statuses}  "
                          f"load {load:.2f}  CPU/request: app {app_cpu / args.records * 1000:.2f} ms, "
                          f"MariaDB {db_cpu / args.records * 1000:.2f} ms", flush=True)
                    results[concurrency][side].append(summary["rows_per_s"])
            peer, our = (statistics.median(results[concurrency][side]) for side in ("peer", "ours"))
            print(f"c={concurrency}: peer {peer:.1f} rows/s, ours {our:.1f} rows/s, ratio {our / peer:.2f}", flush=True)
    finally:
        stop_gunicorn(ours)
        subprocess.run(["kill", str(peer_pid)])
    (OUT / "ingest_vs_peer.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
