"""CDP on a real 3-node MariaDB Galera cluster (scripts/galera.sh), with real gunicorns and
real import workers, each on a node of its own and falling back to the others
(CDP_DATABASE_HOSTS).

One cluster serves every scenario (started in setUpClass, about 20 s; each scenario leaves it
as it found it: every node up and Synced), and each scenario writes customers of its own, so the
checks of whole tables (totals equal sums, CHECKSUM TABLE alike on every node) hold across
them. The scenarios are the subtests of one test, so that pytest-xdist cannot spread them over
two processes, each starting a cluster (two would not fit the machine; ``--dist loadgroup``
grouped nothing with pytest 9 and xdist 3.8 here); pytest reports each subtest, and a failed one does not
stop the next.

They need mariadbd, galera-4 and rsync (CI installs them) and fail, not skip, without them.
Slow, so they run once, in the MariaDB pass of ``make test``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import MySQLdb
from django.conf import settings
from django.test import SimpleTestCase

from tests.api.test_imports import csv_file, expected_import, ndjson_file, sample_records
from tests.hardening.support import Gunicorn, HttpAnswer, http_call
from tests.hardening.test_outage import multipart
from tests.support import record, slow

GALERA_SCRIPT = Path(settings.BASE_DIR) / "scripts" / "galera.sh"
REQUIREMENTS = ("/usr/sbin/mariadbd", "/usr/lib/galera/libgalera_smm.so", "/usr/bin/rsync")
# Ports of the test's cluster, away from scripts/galera.sh's defaults (a developer's cluster).
CLIENT_PORT, GCOMM_PORT = 23311, 24567
DATABASE = "cdp_cluster"
STALE_SECONDS = 6
WAIT_SECONDS = 240
STREAM_START = dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc)  # the generated files end sooner

# Runs in a child process on one node, through the project's own summary helpers: the running
# totals (per customer, per customer and pincode, per month, per pincode) against sums over
# the stored transactions.
TOTALS_CHECK = """
import json
from django.db.models import Count, Sum
from tests.support import (monthly_totals, monthly_totals_grouped_from_transactions, pincode_totals,
                           pincode_totals_grouped_from_transactions)
from transactions.models import Customer, CustomerPincodeTotal, Transaction

def text(rows):
    return sorted([str(value) for value in row] for row in rows)

by_customer = Transaction.objects.values_list("customer_id").annotate(Sum("transaction_amount"), Count("pk"))
by_pincode = Transaction.objects.values_list("customer_id", "state_key", "pincode").annotate(
    Sum("transaction_amount"), Count("pk"))
print(json.dumps({
    "customers": [text(Customer.objects.filter(transaction_count__gt=0).values_list(
        "customer_id", "total_amount", "transaction_count")), text(by_customer)],
    "customer_pincodes": [text(CustomerPincodeTotal.objects.filter(transaction_count__gt=0).values_list(
        "customer_id", "state_key", "pincode", "total_amount", "transaction_count")), text(by_pincode)],
    "months": [text(monthly_totals()), text(monthly_totals_grouped_from_transactions())],
    "pincodes": [text(pincode_totals()), text(pincode_totals_grouped_from_transactions())],
}))
"""


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed connection's TIME_WAIT is no owner
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Cluster:
    """scripts/galera.sh on a directory and ports of the test's own, and SQL on each node."""

    nodes = (1, 2, 3)

    def __init__(self, base: Path):
        self.environment = {
            **os.environ,
            "CDP_GALERA_DIR": str(base / "galera"),
            "CDP_GALERA_PORT": str(CLIENT_PORT),
            "CDP_GALERA_GCOMM_PORT": str(GCOMM_PORT),
        }

    def script(self, *args: str) -> str:
        finished = subprocess.run(
            ["bash", str(GALERA_SCRIPT), *args], env=self.environment, capture_output=True, text=True, timeout=300,
        )
        if finished.returncode != 0:
            raise AssertionError(f"galera.sh {' '.join(args)} failed:\n{finished.stdout}{finished.stderr}")
        return finished.stdout

    @staticmethod
    def port(node: int) -> int:
        return CLIENT_PORT + node - 1

    def hosts(self, *order: int) -> str:
        """CDP_DATABASE_HOSTS trying these nodes first, then the others."""
        ordered = list(order) + [node for node in self.nodes if node not in order]
        return ",".join(f"127.0.0.1:{self.port(node)}" for node in ordered)

    def connect(self, node: int, database: str | None = DATABASE):
        connection = MySQLdb.connect(
            host="127.0.0.1", port=self.port(node), user="root", passwd="", charset="utf8mb4", connect_timeout=5,
            **({"database": database} if database else {}),
        )
        connection.cursor().execute("SET SESSION wsrep_sync_wait = 1")  # read what the cluster committed
        return connection

    def rows(self, node: int, sql: str, params=None) -> list[tuple]:
        connection = self.connect(node)
        try:
            cursor = connection.cursor()
            cursor.execute(sql, params)
            return list(cursor.fetchall())
        finally:
            connection.close()

    def checksums(self, node: int) -> dict[str, int]:
        """CHECKSUM TABLE of every table, read once the node has applied all it was sent."""
        connection = self.connect(node)
        try:
            cursor = connection.cursor()
            cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [DATABASE])
            tables = sorted(name for (name,) in cursor.fetchall())
            cursor.execute("CHECKSUM TABLE " + ", ".join(f"`{name}`" for name in tables))
            return {name.split(".", 1)[1]: checksum for name, checksum in cursor.fetchall()}
        finally:
            connection.close()


@slow
class GaleraClusterTests(SimpleTestCase):
    """Three nodes; app servers on nodes 1 and 2 (a third on node 3 for the API checks); import
    workers on nodes 1 and 2."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [path for path in REQUIREMENTS if not Path(path).exists()]
        if missing:
            raise AssertionError(f"the cluster tests need {', '.join(missing)} (apt-get install mariadb-server "
                                 "galera-4 rsync; .ci/run does)")
        taken = [port for port in (*range(CLIENT_PORT, CLIENT_PORT + 3), *range(GCOMM_PORT, GCOMM_PORT + 23))
                 if not port_is_free(port)]
        if taken:
            raise AssertionError(f"ports {taken} are taken: is another cluster test running?")
        cls.base = Path(tempfile.mkdtemp(prefix="cdp-cluster-"))
        cls.addClassCleanup(shutil.rmtree, cls.base, ignore_errors=True)
        cls.cluster = Cluster(cls.base)
        cls.addClassCleanup(cls.cluster.script, "stop")
        started = time.monotonic()
        cls.cluster.script("start")
        cls.cluster.connect(1, None).cursor().execute(
            f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cls.environment = {
            "DATABASE_URL": f"mysql://root@127.0.0.1:{cls.cluster.port(1)}/{DATABASE}",
            "DATABASE_CONNECT_TIMEOUT": "2",
            "CDP_IMPORT_DIR": str(cls.base / "imports"),
            "CDP_IMPORT_STALE_SECONDS": str(STALE_SECONDS),
            "CDP_REQUEST_LOG": "off",
        }
        cls.manage("migrate", "--noinput", "-v0")
        cls.token = cls.manage("create_api_client", "cluster").strip().splitlines()[-1]
        cls.servers = {node: cls.app_server(node, workers=2 if node < 3 else 1) for node in Cluster.nodes}
        print(f"\ncluster: 3 nodes started, migrated and 3 app servers serving in {time.monotonic() - started:.1f} s")

    @classmethod
    def process_environment(cls, node: int, **extra: str) -> dict[str, str]:
        environment = {**os.environ, **cls.environment, "CDP_DATABASE_HOSTS": cls.cluster.hosts(node), **extra}
        environment.pop("CDP_TASKS_BACKEND", None)  # the worker takes tasks from the database queue
        return environment

    @classmethod
    def manage(cls, *args: str) -> str:
        finished = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=cls.process_environment(1),
            capture_output=True, text=True, timeout=300,
        )
        if finished.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{finished.stdout}{finished.stderr}")
        return finished.stdout

    @classmethod
    def app_server(cls, node: int, *, workers: int) -> Gunicorn:
        environment = cls.process_environment(node)
        server = Gunicorn(database_url=environment["DATABASE_URL"], workers=workers, environment=environment)
        cls.addClassCleanup(server.stop)
        return server

    def start_worker(self, node: int, **extra: str) -> subprocess.Popen:
        log = open(self.base / f"worker-node{node}-{time.monotonic_ns()}.log", "wb")
        self.scenario_cleanups.callback(log.close)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "import_worker", "--housekeeping", "2", "--interval", "0.5"],
            cwd=settings.BASE_DIR, env=self.process_environment(node, **extra),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        worker.log_path = Path(log.name)
        self.scenario_cleanups.callback(self.stop_worker, worker)
        return worker

    @staticmethod
    def stop_worker(worker: subprocess.Popen) -> None:
        if worker.poll() is None:
            worker.terminate()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait(timeout=30)

    @staticmethod
    def worker_log(*workers: subprocess.Popen) -> str:
        return "".join(f"\n--- {w.log_path.name} ---\n" + w.log_path.read_text(errors="replace")[-4000:] for w in workers)

    @staticmethod
    def count_in_logs(text: str, *workers: subprocess.Popen) -> int:
        return sum(worker.log_path.read_text(errors="replace").count(text) for worker in workers)

    def call(self, node: int, method: str, path: str, **kwargs) -> HttpAnswer:
        kwargs.setdefault("token", self.token)
        return http_call(self.servers[node].port, method, path, timeout=60, **kwargs)

    def upload(self, node: int, name: str, content: bytes) -> int:
        body, content_type = multipart(name, content)
        answer = self.call(node, "POST", "/api/imports/", raw_body=body, headers={"Content-Type": content_type})
        self.assertEqual(answer.status, 202, answer.body[:500])
        return answer.json()["id"]

    def wait_for_imports(self, node: int, job_ids: list[int], workers: list[subprocess.Popen]) -> dict[int, dict]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            answers = {job_id: self.call(node, "GET", f"/api/imports/{job_id}/").json() for job_id in job_ids}
            if all(answer["status"] in ("done", "failed") for answer in answers.values()):
                return answers
            for worker in workers:
                self.assertIsNone(worker.poll(), f"a worker exited:{self.worker_log(worker)}")
            self.assertLess(time.monotonic(), deadline, f"imports not done: {answers}{self.worker_log(*workers)}")
            time.sleep(0.5)

    # --- whole-cluster checks --------------------------------------------------------------

    def assertTotalsEqualSums(self, node: int) -> None:
        finished = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", TOTALS_CHECK], cwd=settings.BASE_DIR,
            env=self.process_environment(node), capture_output=True, text=True, timeout=120,
        )
        self.assertEqual(finished.returncode, 0, finished.stderr)
        figures = json.loads(finished.stdout.strip().splitlines()[-1])
        for name, (running, summed) in figures.items():
            with self.subTest(totals=name, node=node):
                self.assertTrue(running, name)
                self.assertEqual(running, summed, name)

    def assertNodesIdentical(self) -> dict[str, int]:
        checksums = {node: self.cluster.checksums(node) for node in Cluster.nodes}
        self.assertEqual(checksums[1], checksums[2])
        self.assertEqual(checksums[1], checksums[3])
        self.assertIn("transactions_transaction", checksums[1])
        return checksums[1]

    def stored_keys(self, node: int, first_customer: int, last_customer: int) -> Counter:
        return Counter(self.cluster.rows(
            node, "SELECT customer_id, transaction_datetime FROM transactions_transaction "
                  "WHERE customer_id BETWEEN %s AND %s", [first_customer, last_customer],
        ))

    # --- the scenarios ---------------------------------------------------------------------

    def test_the_cluster_serves_through_any_node_and_outlives_conflicts_and_node_loss(self):
        scenarios = [
            self.the_api_answers_alike_through_every_node,
            self.eight_clients_racing_the_same_records_through_two_nodes_store_each_once,
            self.files_imported_by_workers_on_two_nodes_are_each_imported_once,
            self.an_import_on_one_node_finishes_while_another_takes_writes_for_the_same_customers,
            self.killing_the_node_of_a_worker_and_an_app_server_mid_import_loses_and_doubles_nothing,
        ]
        for scenario in scenarios:
            with self.subTest(scenario=scenario.__name__), contextlib.ExitStack() as self.scenario_cleanups:
                started = time.monotonic()
                scenario()
                print(f"  ({scenario.__name__}: {time.monotonic() - started:.1f} s)")

    def the_api_answers_alike_through_every_node(self) -> None:
        body = record(customer_id=5_000_001, transaction_amount="1200.50", transaction_datetime="2036-03-01T10:00:00Z",
                      pincode="560001", state="Karnataka")
        created = self.call(1, "POST", "/api/ingest-data", body=body)
        self.assertEqual(created.status, 201, created.body)
        self.assertEqual(created.json()["status"], "created")
        # The same record through another node is a duplicate, another amount a conflict.
        repeated = self.call(2, "POST", "/api/ingest-data", body=body)
        self.assertEqual((repeated.status, repeated.json()["status"]), (200, "duplicate"), repeated.body)
        conflicting = self.call(3, "POST", "/api/ingest-data", body=dict(body, transaction_amount="1.00"))
        self.assertEqual((conflicting.status, conflicting.json()["status"]), (409, "conflict"), conflicting.body)
        batch = [dict(body, customer_id=5_000_002, transaction_amount="300.00"),
                 dict(body, customer_id=5_000_002, transaction_datetime="2036-03-02T10:00:00Z", transaction_amount="700.25"),
                 body]
        batched = self.call(3, "POST", "/api/ingest-data", body=batch)
        self.assertEqual(batched.status, 200, batched.body)
        self.assertEqual({key: batched.json()[key] for key in ("received", "created", "duplicates", "conflicts")},
                         {"received": 3, "created": 2, "duplicates": 1, "conflicts": 0})
        self.assertEqual([result["status"] for result in batched.json()["results"]], ["created", "created", "duplicate"])
        invalid = self.call(2, "POST", "/api/ingest-data", body=dict(body, pincode="12"))
        self.assertEqual(invalid.status, 400, invalid.body)

        # Read through each node right after the writes through the others: each sees them all.
        # (March 2036: no other test writes there.)
        window = {"min_amount": 1000, "max_amount": 1200.50, "start": "2036-03-01T00:00:00Z",
                  "time_period": "2036-03-31T00:00:00Z"}
        for node in Cluster.nodes:
            with self.subTest(node=node):
                self.assertEqual(self.call(node, "GET", "/api/health/", token=None).json(),
                                 {"status": "ok", "database": "ok"})
                ranged = self.call(node, "POST", "/api/query-transaction-range", body=window)
                self.assertEqual(ranged.status, 200, ranged.body)
                self.assertEqual(ranged.json(), [
                    {"customer_id": 5_000_001, "name": "amit", "total_transaction_amount": 1200.5},
                    {"customer_id": 5_000_002, "name": "amit", "total_transaction_amount": 1000.25},
                ])
                top = self.call(node, "POST", "/api/top-customers", body={
                    "state": "karnataka", "start": window["start"], "time_period": window["time_period"]})
                self.assertEqual(top.status, 200, top.body)
                self.assertEqual(top.json(), {"pincode_560001": [
                    {"customer_id": 5_000_001, "name": "amit", "total_transaction_amount": 1200.5},
                    {"customer_id": 5_000_002, "name": "amit", "total_transaction_amount": 1000.25},
                ]})
        self.assertTotalsEqualSums(3)
        self.assertNodesIdentical()

    def eight_clients_racing_the_same_records_through_two_nodes_store_each_once(self) -> None:
        first = 6_000_000
        records = [
            record(customer_id=first + customer, name=f"racer {customer}", mob_no=f"98{customer:08d}",
                   transaction_amount=f"{(customer * 37 + n * 11) % 5000 + 1}.{n:02d}",
                   transaction_datetime=f"2025-0{n + 1}-1{customer % 10}T0{n}:{customer % 60:02d}:00Z",
                   pincode=f"{110001 + customer % 7}", state=("Delhi", "Punjab", "Kerala")[customer % 3])
            for customer in range(200) for n in range(5)
        ]
        statuses: list[int] = []
        created: Counter = Counter()
        lock = threading.Lock()

        def client(number: int) -> None:
            order = records[:]
            random.Random(number).shuffle(order)
            node = 1 + number % 2
            if number < 4:  # singles
                answers = [(item, self.call(node, "POST", "/api/ingest-data", body=item)) for item in order]
                with lock:
                    for item, answer in answers:
                        statuses.append(answer.status)
                        if answer.status == 201:
                            created[(item["customer_id"], item["transaction_datetime"])] += 1
                return
            for start in range(0, len(order), 100):  # batches of 100
                batch = order[start:start + 100]
                answer = self.call(node, "POST", "/api/ingest-data", body=batch)
                with lock:
                    statuses.append(answer.status)
                    if answer.status in (200, 201):
                        for item, result in zip(batch, answer.json()["results"]):
                            if result["status"] == "created":
                                created[(item["customer_id"], item["transaction_datetime"])] += 1

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as clients:
            list(clients.map(client, range(8)))
        seconds = time.monotonic() - started

        self.assertEqual(sorted(set(statuses) - {200, 201}), [], Counter(statuses))
        self.assertEqual(len(created), len(records))  # every key created by exactly one client...
        self.assertEqual(set(created.values()), {1})
        stored = self.stored_keys(2, first, first + 199)
        self.assertEqual(len(stored), len(records))  # ...and stored once
        self.assertEqual(set(stored.values()), {1})
        self.assertTotalsEqualSums(1)
        self.assertNodesIdentical()
        print(f"\ncluster race: 8 clients, {len(statuses)} requests through nodes 1 and 2 in {seconds:.1f} s, "
              f"statuses {dict(Counter(statuses))}")

    def files_imported_by_workers_on_two_nodes_are_each_imported_once(self) -> None:
        files = []
        for number in range(4):
            records = offset_records(sample_records(rows=2500, seed=140 + number), offset=7_000_000 + 10_000 * number)
            name = f"file{number}.csv" if number % 2 else f"file{number}.ndjson"
            files.append((name, records, csv_file(records) if number % 2 else ndjson_file(records)))
        job_ids = [self.upload(1 + number % 2, name, content) for number, (name, _, content) in enumerate(files)]
        workers = [self.start_worker(1, CDP_IMPORT_CHUNK_ROWS="500"), self.start_worker(2, CDP_IMPORT_CHUNK_ROWS="500")]

        answers = self.wait_for_imports(2, job_ids, workers)

        for job_id, (name, records, _) in zip(job_ids, files):
            with self.subTest(file=name):
                counts, rows = expected_import(records)
                answer = answers[job_id]
                self.assertEqual(answer["status"], "done", f"{answer}{self.worker_log(*workers)}")
                self.assertEqual({field: answer[field] for field in counts}, counts)
                self.assertEqual(counts["created"] + counts["duplicates"] + counts["conflicts"] + counts["rejected"],
                                 len(records))
                first = min(customer_id for customer_id, _ in rows)
                stored = self.stored_keys(1, first, first + 9_999)
                self.assertEqual(len(stored), counts["created"])
                self.assertEqual(set(stored.values()), {1})
        tasks = self.cluster.rows(3, "SELECT status, JSON_VALUE(args_kwargs, '$.kwargs.job_id') FROM "
                                     "django_tasks_database_dbtaskresult WHERE JSON_VALUE(args_kwargs, '$.kwargs.job_id') "
                                     "IN (%s, %s, %s, %s)", job_ids)
        self.assertEqual(sorted(tasks), sorted(("SUCCESSFUL", str(job_id)) for job_id in job_ids))
        for worker in workers:
            self.assertIsNone(worker.poll(), self.worker_log(worker))
        self.assertTotalsEqualSums(2)
        self.stop_worker(workers[0]), self.stop_worker(workers[1])
        self.assertNodesIdentical()
        claims = self.cluster.rows(1, "SELECT worker_ids FROM django_tasks_database_dbtaskresult WHERE "
                                      "JSON_VALUE(args_kwargs, '$.kwargs.job_id') IN (%s, %s, %s, %s)", job_ids)
        print(f"\ncluster: 4 files imported once each by workers on nodes 1 and 2 "
              f"(tasks per worker: {sorted(Counter(ids for (ids,) in claims).values())}; claims lost to the other "
              f"worker: {self.count_in_logs('task claim lost', *workers)})")

    def an_import_on_one_node_finishes_while_another_takes_writes_for_the_same_customers(self) -> None:
        first = 8_000_000
        records = offset_records(sample_records(rows=6000, seed=150), offset=first)
        counts, rows = expected_import(records)
        customers = sorted({customer_id for customer_id, _ in rows})
        job_id = self.upload(1, "big.csv", csv_file(records))
        stream_statuses: Counter = Counter()
        done = threading.Event()

        def stream(number: int) -> None:
            # The file's customers, at moments the file does not use (2031): no key in common.
            n = 0
            while not done.is_set():
                customer_id = customers[(n * 7 + number) % len(customers)]
                moment = STREAM_START + dt.timedelta(minutes=n, seconds=number)
                body = record(customer_id=customer_id, transaction_datetime=moment.isoformat().replace("+00:00", "Z"),
                              transaction_amount=f"{n % 90 + 10}.00")
                stream_statuses[self.call(2, "POST", "/api/ingest-data", body=body).status] += 1
                n += 1

        worker = self.start_worker(1, CDP_IMPORT_CHUNK_ROWS="5000")
        with ThreadPoolExecutor(max_workers=3) as writers:
            streams = [writers.submit(stream, number) for number in range(3)]
            try:
                answer = self.wait_for_imports(3, [job_id], [worker])[job_id]
            finally:
                done.set()
            for running in streams:
                running.result()

        self.assertEqual(answer["status"], "done", f"{answer}{self.worker_log(worker)}")
        self.assertEqual({field: answer[field] for field in counts}, counts)
        self.assertEqual(sorted(stream_statuses), [201], stream_statuses)
        self.assertGreater(stream_statuses[201], 50)  # the stream ran all along
        stored = self.stored_keys(1, first, first + 10_000)
        self.assertEqual(len(stored), counts["created"] + stream_statuses[201])
        self.assertEqual(set(stored.values()), {1})
        self.assertTotalsEqualSums(2)
        self.stop_worker(worker)
        self.assertNodesIdentical()
        splits = self.count_in_logs("splitting it", worker)
        print(f"\ncluster: 6,000-row import (5,000-row chunks) on node 1 done while node 2 stored "
              f"{stream_statuses[201]} writes for the same customers; chunks split {splits} times")

    def killing_the_node_of_a_worker_and_an_app_server_mid_import_loses_and_doubles_nothing(self) -> None:
        first = 9_000_000
        records = offset_records(sample_records(rows=20_000, seed=160), offset=first)
        counts, _ = expected_import(records)
        job_id = self.upload(2, "kill.ndjson", ndjson_file(records))
        worker = self.start_worker(1, CDP_IMPORT_CHUNK_ROWS="250")
        acknowledged: dict[tuple, int] = {}
        failures: Counter = Counter()
        done = threading.Event()

        def client() -> None:
            """Singles through node 1's app server; each record sent until acknowledged."""
            n = 0
            while not done.is_set() or n < 50:
                moment = STREAM_START + dt.timedelta(minutes=n)
                body = record(customer_id=first + 50_000 + n % 100, transaction_amount=f"{n + 1}.00",
                              transaction_datetime=moment.isoformat().replace("+00:00", "Z"))
                while True:
                    try:
                        answer = self.call(1, "POST", "/api/ingest-data", body=body)
                    except OSError as exc:
                        failures[type(exc).__name__] += 1
                        time.sleep(0.2)
                        continue
                    if answer.status in (200, 201):
                        acknowledged[(body["customer_id"], body["transaction_datetime"])] = answer.status
                        break
                    failures[answer.status] += 1
                    time.sleep(0.2)
                n += 1

        writer = threading.Thread(target=client)
        writer.start()
        try:
            deadline = time.monotonic() + WAIT_SECONDS
            while self.call(3, "GET", f"/api/imports/{job_id}/").json()["rows_processed"] < 2500:
                self.assertIsNone(worker.poll(), self.worker_log(worker))
                self.assertLess(time.monotonic(), deadline, self.worker_log(worker))
                time.sleep(0.1)
            self.cluster.script("kill", "1")
            killed_at, acknowledged_before_kill = time.monotonic(), len(acknowledged)
            at_kill = self.call(3, "GET", f"/api/imports/{job_id}/").json()
            self.assertEqual(at_kill["status"], "running")
            self.assertLess(at_kill["rows_processed"], len(records))

            answer = self.wait_for_imports(3, [job_id], [worker])[job_id]
            recovered_in = time.monotonic() - killed_at
        finally:
            done.set()
            writer.join(timeout=120)
        self.assertFalse(writer.is_alive())
        self.assertGreater(len(acknowledged), acknowledged_before_kill + 10)  # node 1's app server went on serving

        self.assertEqual(answer["status"], "done", f"{answer}{self.worker_log(worker)}")
        self.assertEqual({field: answer[field] for field in counts}, counts)  # as if never interrupted
        self.assertIsNone(worker.poll(), self.worker_log(worker))  # the same worker, never restarted
        self.assertIn("database connection lost", self.worker_log(worker))
        imported = self.stored_keys(2, first, first + 49_999)
        self.assertEqual(len(imported), counts["created"])
        self.assertEqual(set(imported.values()), {1})
        streamed = self.stored_keys(2, first + 50_000, first + 50_099)
        self.assertEqual(set(streamed), {(c, parse_utc(moment)) for c, moment in acknowledged})
        self.assertEqual(set(streamed.values()), {1})
        self.assertTotalsEqualSums(2)
        self.stop_worker(worker)

        # The killed node rejoins by IST and holds what the others took while it was down.
        self.cluster.script("restart", "1")
        self.assertNodesIdentical()
        self.assertEqual(self.call(1, "GET", "/api/health/", token=None).status, 200)
        print(f"\ncluster: node 1 SIGKILLed at {at_kill['rows_processed']}/{len(records)} rows; import done "
              f"{recovered_in:.1f} s later by the same worker (reconnected to node 2); {len(acknowledged)} writes "
              f"acknowledged through node 1's app server, each stored once; refused meanwhile: {dict(failures)}")


def offset_records(records: list[dict], *, offset: int) -> list[dict]:
    """The records with their (valid, numeric) customer ids moved by ``offset``."""
    moved = []
    for item in records:
        customer_id = item["customer_id"]
        if isinstance(customer_id, int) and customer_id > 0:
            item = dict(item, customer_id=customer_id + offset)
        moved.append(item)
    return moved


def parse_utc(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00")).replace(tzinfo=None)
