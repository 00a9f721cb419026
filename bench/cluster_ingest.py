"""Single-record ingest on one MariaDB server and on a 3-node Galera cluster, same run.

    .venv/bin/python bench/cluster_ingest.py [--rounds 2] [--records 4000] [--concurrency 8]

Generates the records with ../shared/bench/gen_transactions.py (seed 11), starts a cluster with
scripts/galera.sh (its own directory and ports: CDP_GALERA_DIR=bench/out/galera, 3321-3323),
and measures with ../shared/bench/http_ingest.py (keep-alive) three set-ups in turn, each round
storing the same new records (tables emptied before every round):

- single:    one gunicorn (4 processes x 2 threads) on the single server (127.0.0.1:3306);
- cluster-1: the same gunicorn on node 1 (CDP_DATABASE_HOSTS node 1, 2, 3);
- cluster-2: two gunicorns of 2 processes x 2 threads, on nodes 1 and 2, each sent half the
  records by its own client at half the concurrency, at the same time (rows/s: all records over
  the longer of the two walls).

Same number of app processes and client threads in all three. Prints each round and the
medians; stops the cluster at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ingest_vs_peer import write_records  # bench/ingest_vs_peer.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OUT = ROOT / "bench" / "out"
DATABASE = "cdp_cluster_bench"
CLUSTER_PORT, GCOMM_PORT = 3321, 4667
SINGLE_PORT = 3306
TABLES = ["transactions_transaction", "transactions_customerpincodetotal", "transactions_customer",
          "transactions_monthlytotaldelta", "transactions_pincodetotaldelta", "transactions_monthlytotal",
          "transactions_pincodetotal"]


def mariadb(port: int, sql: str, database: str | None = None) -> str:
    command = ["mariadb", "--no-defaults", "--protocol=tcp", "-uroot", "-h127.0.0.1", f"-P{port}", "-N", "-e", sql]
    if database:
        command.append(database)
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def galera(*args: str) -> str:
    env = {**os.environ, "CDP_GALERA_DIR": str(OUT / "galera"), "CDP_GALERA_PORT": str(CLUSTER_PORT),
           "CDP_GALERA_GCOMM_PORT": str(GCOMM_PORT)}
    return subprocess.run(["bash", str(ROOT / "scripts" / "galera.sh"), *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def hosts(first: int) -> str:
    order = [first] + [node for node in (1, 2, 3) if node != first]
    return ",".join(f"127.0.0.1:{CLUSTER_PORT + node - 1}" for node in order)


def environment(port: int, **extra: str) -> dict:
    return {**os.environ, "DATABASE_URL": f"mysql://root@127.0.0.1:{port}/{DATABASE}",
            "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-only-secret-key-" + "x" * 40),
            "CDP_THROTTLE_USER": "none", "CDP_THROTTLE_ANON": "none", "CDP_REQUEST_LOG": "off", **extra}


def prepare(env: dict, port: int) -> str:
    """Create and migrate the database; the API token of a bench client."""
    mariadb(port, f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    return subprocess.run(
        [sys.executable, "manage.py", "create_api_client", "bench-cluster"], cwd=ROOT, env=env, check=True,
        capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]


def start_gunicorn(env: dict, http_port: int, workers: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "cdp_site.wsgi"], cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{http_port}", "GUNICORN_WORKERS": str(workers),
             "GUNICORN_THREADS": "2", "GUNICORN_WORKER_CLASS": "gthread", "GUNICORN_LOG_LEVEL": "warning"},
        stdout=subprocess.DEVNULL, stderr=open(OUT / f"cluster-gunicorn-{http_port}.log", "w"),
    )
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{http_port}/api/health/", timeout=2).close()
            return server
        except OSError:
            if time.time() > deadline:
                raise RuntimeError(f"gunicorn on {http_port} did not come up")
            time.sleep(0.3)


def client(file: Path, http_port: int, concurrency: int, token: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SHARED / "bench" / "http_ingest.py"), str(file), "--url",
         f"http://127.0.0.1:{http_port}/api/ingest-data", "--concurrency", str(concurrency), "--json",
         "--header", f"Authorization: Token {token}"],
        stdout=subprocess.PIPE, text=True,
    )


def summary_of(process: subprocess.Popen) -> dict:
    output, _ = process.communicate()
    return json.loads(next(line for line in output.splitlines() if line.startswith("JSON "))[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    records = write_records(OUT / f"cluster-ingest-{args.records}.jsonl", args.records)
    lines = records.read_text().splitlines(keepends=True)
    halves = [OUT / f"cluster-ingest-{args.records}-half{n}.jsonl" for n in (0, 1)]
    for n, half in enumerate(halves):
        half.write_text("".join(lines[n::2]))

    galera("start")
    servers: list[subprocess.Popen] = []
    try:
        single_env = environment(SINGLE_PORT)
        node_env = {node: environment(CLUSTER_PORT, CDP_DATABASE_HOSTS=hosts(node)) for node in (1, 2)}
        tokens = {"single": prepare(single_env, SINGLE_PORT), "cluster": prepare(node_env[1], CLUSTER_PORT)}
        servers += [start_gunicorn(single_env, 8111, 4), start_gunicorn(node_env[1], 8112, 4),
                    start_gunicorn(node_env[1], 8113, 2), start_gunicorn(node_env[2], 8114, 2)]
        results: dict[str, list[float]] = {"single": [], "cluster-1": [], "cluster-2": []}
        for round_number in range(1, args.rounds + 1):
            for setup in results:
                port = SINGLE_PORT if setup == "single" else CLUSTER_PORT
                mariadb(port, "SET FOREIGN_KEY_CHECKS=0; " + " ".join(f"DELETE FROM `{t}`;" for t in TABLES), DATABASE)
                if setup == "cluster-2":
                    clients = [client(halves[0], 8113, args.concurrency // 2, tokens["cluster"]),
                               client(halves[1], 8114, args.concurrency // 2, tokens["cluster"])]
                else:
                    clients = [client(records, 8111 if setup == "single" else 8112, args.concurrency,
                                      tokens["single" if setup == "single" else "cluster"])]
                summaries = [summary_of(process) for process in clients]
                rows = sum(summary["rows"] for summary in summaries)
                wall = max(summary["wall_s"] for summary in summaries)
                stored = int(mariadb(port, "SELECT COUNT(*) FROM transactions_transaction", DATABASE))
                statuses = [summary["statuses"] for summary in summaries]
                print(f"round {round_number} {setup:>9}: {rows / wall:8.1f} rows/s  p50 "
                      f"{'/'.join(str(summary['p50_ms']) for summary in summaries)} ms  statuses {statuses}  "
                      f"stored {stored}  load {os.getloadavg()[0]:.2f}", flush=True)
                results[setup].append(rows / wall)
        medians = {setup: statistics.median(values) for setup, values in results.items()}
        print("medians: " + ", ".join(f"{setup} {value:.1f} rows/s" for setup, value in medians.items())
              + f"; cluster-1/single {medians['cluster-1'] / medians['single']:.2f}, "
              f"cluster-2/single {medians['cluster-2'] / medians['single']:.2f}", flush=True)
        (OUT / "cluster_ingest.json").write_text(json.dumps(results, indent=1))
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
        galera("stop")


if __name__ == "__main__":
    main()
