"""Acknowledged means stored: crashes while several clients ingest, and what survives them.

Each scenario runs on a MariaDB server of its own (the outage test's ``MariaDBServer``: its
own data directory and port, not the test run's database) behind a real gunicorn, with client
threads that each send their requests on fresh HTTP connections.

1. ``mariadbd`` is SIGKILLed three times during a stream of single records and batches from
   six clients, each time while a batch is part-way through its database transaction, and
   started again on the same data directory two seconds later.
2. A gunicorn worker is SIGKILLed (the master starts another) while it serves a batch of 8,000
   records: three times while the database is executing one of the batch's INSERTs, once just
   after the batch's commit, before the answer is sent (an acknowledgement lost on the way).

The moment is chosen by watching the server's process list: which of the app's connections is
executing which INSERT right now, and (through /proc) which worker holds that connection.

A request is acknowledged by 201 or 200 (a single record) or 200 (a batch). Requests that
failed (503, a dropped connection) are set aside. Once the stream is over, and before anything
is resent, the server's database is read directly (one consistent snapshot):

- every acknowledged record is stored, once, with the values sent;
- every failed request is stored whole or not at all (the requests have disjoint keys, so a
  batch found in part can only be a half-written batch);
- nothing else is stored, and the running totals (per customer, per customer and pincode, per
  month, per pincode) equal sums over the stored rows and over the records sent.

Then every client resends its failed requests until each is acknowledged, the answers must say
"created" exactly for the records that were not stored and "duplicate" for those that were, and
the same checks must find every record stored exactly once.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import MySQLdb
from django.conf import settings
from django.test import SimpleTestCase

from tests.hardening.support import Gunicorn, http_call
from tests.hardening.test_outage import MARIADBD, MariaDBServer
from tests.support import slow
from transactions.services.bulk import STAGING_TABLE
from transactions.validation import state_key_for

DATABASE = "cdp_crash"
CONNECT_TIMEOUT = 2
REQUEST_TIMEOUT = 60
STATES = ("Punjab", "PUNJAB", "Delhi", "delhi", "Kerala", "Tamil Nadu")
PINCODES = ("110001", "110002", "141001", "682001", "600001", "600002")
FIRST_MOMENT = dt.datetime(2023, 1, 1)  # naive UTC, as MariaDB returns DATETIME columns
SECONDS_BETWEEN_RECORDS = 937  # distinct datetimes, so distinct keys, spread over many months
BACKOFF = 0.5  # a client's pause after a failed request, before its next one
RESEND_ATTEMPTS = 40
RESEND_PAUSE = 0.5
# An INSERT this long is a batch's (~100 bytes a row); a single record's are short, parametrised.
# A batch stored set-based (services.bulk) inserts from its staging table in short statements.
BATCH_STATEMENT_BYTES = 10_000
# Where in a batch's database transaction a crash is aimed, in turn: while its transaction rows
# are inserted (its customers locked and new ones written), while the customers' running totals
# are added to (every transaction row in), while the per-pincode totals are (customers done).
CRASH_TARGETS = ("transactions_transaction", "transactions_customer", "transactions_customerpincodetotal")
CHECK_TIMEOUT = 60  # seconds for the server to finish rolling back what a crash left open

Key = tuple[int, dt.datetime]


# --- The clients' side -----------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    started: float
    ended: float
    outcome: str  # the HTTP status, or the name of the exception the connection raised
    answer: object  # the JSON body, if any
    resend: bool


@dataclass
class IngestRequest:
    """One request as a client means it: a single record or a batch, sent until acknowledged."""

    number: int
    records: list[dict]
    batch: bool
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def body(self) -> object:
        return self.records if self.batch else self.records[0]

    @cached_property
    def keys(self) -> list[Key]:
        return [record_key(r) for r in self.records]

    def acknowledges(self, attempt: Attempt) -> bool:
        return attempt.outcome in (("200",) if self.batch else ("200", "201"))

    @property
    def acknowledged(self) -> bool:
        return any(self.acknowledges(attempt) for attempt in self.attempts)

    @property
    def first_attempt_acknowledged(self) -> bool:
        return bool(self.attempts) and self.acknowledges(self.attempts[0])


def record_key(record: dict) -> Key:
    moment = dt.datetime.fromisoformat(record["transaction_datetime"])
    return record["customer_id"], moment.astimezone(dt.timezone.utc).replace(tzinfo=None)


class RecordMaker:
    """Records with keys no other record shares (each its own datetime), customers shared."""

    def __init__(self, *, seed: int, customers: int):
        self.rng = random.Random(seed)
        self.customers = customers
        self.made = 0

    def records(self, count: int) -> list[dict]:
        made = []
        for _ in range(count):
            customer_id = self.rng.randint(1, self.customers)
            moment = FIRST_MOMENT + dt.timedelta(seconds=SECONDS_BETWEEN_RECORDS * self.made)
            self.made += 1
            made.append({
                "customer_id": customer_id,
                "name": f"customer {customer_id} v{self.made % 7}",
                "transaction_amount": f"{self.rng.randint(1, 5_000_000) / 100:.2f}",
                "mob_no": f"9{customer_id:09d}",
                "transaction_datetime": moment.isoformat() + "Z",
                "pincode": self.rng.choice(PINCODES),
                "state": self.rng.choice(STATES),
            })
        return made


class Clients:
    """Client threads posting their requests in order; a failed request is set aside, not retried.

    ``resend_failed`` then has each client send its failed requests again until acknowledged.
    """

    def __init__(self, *, port: int, token: str, requests_per_client: list[list[IngestRequest]]):
        self.port = port
        self.token = token
        self.requests_per_client = requests_per_client
        self.lock = threading.Lock()
        self.attempted = 0
        self.in_flight: dict[int, float] = {}  # request number -> when it was sent
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    @property
    def requests(self) -> list[IngestRequest]:
        return [request for requests in self.requests_per_client for request in requests]

    def send(self, request: IngestRequest, *, resend: bool) -> Attempt:
        with self.lock:
            self.in_flight[request.number] = time.monotonic()
        started = time.monotonic()
        try:
            answer = http_call(
                self.port, "POST", "/api/ingest-data", body=request.body, token=self.token, timeout=REQUEST_TIMEOUT
            )
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, closed mid-answer
            attempt = Attempt(started, time.monotonic(), type(exc).__name__, None, resend)
        else:
            is_json = answer.headers.get("Content-Type", "").startswith("application/json")
            attempt = Attempt(
                started, time.monotonic(), str(answer.status), answer.json() if is_json else answer.body[:300], resend
            )
        request.attempts.append(attempt)
        with self.lock:
            del self.in_flight[request.number]
            self.attempted += 1
        return attempt

    def start(self, work) -> None:
        def run(requests: list[IngestRequest]) -> None:
            try:
                work(requests)
            except BaseException as exc:  # reported by join()
                self.errors.append(exc)

        self.threads = [threading.Thread(target=run, args=(requests,)) for requests in self.requests_per_client]
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self.threads):
            raise AssertionError(f"clients still sending after {timeout} s")
        if self.errors:
            raise self.errors[0]

    def stream(self) -> None:
        def work(requests: list[IngestRequest]) -> None:
            for request in requests:
                attempt = self.send(request, resend=False)
                if not request.acknowledges(attempt):
                    time.sleep(BACKOFF)

        self.start(work)

    def resend_failed(self) -> None:
        def work(requests: list[IngestRequest]) -> None:
            for request in requests:
                for _ in range(RESEND_ATTEMPTS):
                    if request.acknowledged or request.acknowledges(self.send(request, resend=True)):
                        break
                    time.sleep(RESEND_PAUSE)

        self.start(work)

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)

    def wait_for_progress(self, share: float, timeout: float = 120) -> None:
        """Until this share of the stream's requests is answered (or the stream is over)."""
        deadline = time.monotonic() + timeout
        while self.running():
            with self.lock:
                if self.attempted >= share * len(self.requests):
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the clients sent less than {share:.0%} of their requests in {timeout} s")
            time.sleep(0.01)


# --- The server's side: what the database holds ----------------------------------------------


@dataclass(frozen=True)
class StoredState:
    """One consistent snapshot of the transactions and of every running total."""

    rows: dict[Key, tuple[Decimal, str, str]]  # key -> amount, pincode, state
    row_count: int
    customers: dict[int, tuple[Decimal, int]]
    customer_pincodes: dict[tuple[int, str, str], tuple[Decimal, int]]
    months: dict[str, tuple[Decimal, int]]
    pincodes: dict[tuple[str, str], tuple[Decimal, int]]
    # The same totals as GROUP BYs over the stored transactions, in the same snapshot.
    customers_from_rows: dict[int, tuple[Decimal, int]]
    customer_pincodes_from_rows: dict[tuple[int, str, str], tuple[Decimal, int]]
    months_from_rows: dict[str, tuple[Decimal, int]]
    pincodes_from_rows: dict[tuple[str, str], tuple[Decimal, int]]


SNAPSHOT_QUERIES = {
    "rows": "SELECT customer_id, transaction_datetime, transaction_amount, pincode, state FROM transactions_transaction",
    "customers": "SELECT customer_id, total_amount, transaction_count FROM transactions_customer",
    "customer_pincodes": (
        "SELECT customer_id, state_key, pincode, total_amount, transaction_count FROM transactions_customerpincodetotal "
        "WHERE transaction_count <> 0 OR total_amount <> 0"
    ),
    # The month and pincode figures are the folded totals plus the deltas not folded yet.
    "months": (
        "SELECT DATE_FORMAT(month, '%Y-%m') AS m, SUM(total_amount) AS amount, SUM(transaction_count) AS n FROM ("
        "SELECT month, total_amount, transaction_count FROM transactions_monthlytotal UNION ALL "
        "SELECT month, total_amount, transaction_count FROM transactions_monthlytotaldelta) AS figures "
        "GROUP BY m HAVING n <> 0 OR amount <> 0"
    ),
    "pincodes": (
        "SELECT state_key, pincode, SUM(total_amount) AS amount, SUM(transaction_count) AS n FROM ("
        "SELECT state_key, pincode, total_amount, transaction_count FROM transactions_pincodetotal UNION ALL "
        "SELECT state_key, pincode, total_amount, transaction_count FROM transactions_pincodetotaldelta) AS figures "
        "GROUP BY state_key, pincode HAVING n <> 0 OR amount <> 0"
    ),
    "customers_from_rows": (
        "SELECT customer_id, SUM(transaction_amount), COUNT(*) FROM transactions_transaction GROUP BY customer_id"
    ),
    "customer_pincodes_from_rows": (
        "SELECT customer_id, state_key, pincode, SUM(transaction_amount), COUNT(*) FROM transactions_transaction "
        "GROUP BY customer_id, state_key, pincode"
    ),
    "months_from_rows": (
        "SELECT DATE_FORMAT(transaction_datetime, '%Y-%m') AS month, SUM(transaction_amount), COUNT(*) "
        "FROM transactions_transaction GROUP BY month"
    ),
    "pincodes_from_rows": (
        "SELECT state_key, pincode, SUM(transaction_amount), COUNT(*) FROM transactions_transaction "
        "GROUP BY state_key, pincode"
    ),
}


def read_stored_state(database: MariaDBServer) -> StoredState:
    connection = database.connect(DATABASE)
    try:
        cursor = connection.cursor()
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        results = {}
        for name, sql in SNAPSHOT_QUERIES.items():
            cursor.execute(sql)
            results[name] = cursor.fetchall()
        connection.rollback()
    finally:
        connection.close()
    rows = results.pop("rows")

    def totals(fetched) -> dict:
        return {
            (row[0] if len(row) == 3 else tuple(row[:-2])): (Decimal(row[-2]), int(row[-1])) for row in fetched
        }

    return StoredState(
        rows={(customer_id, moment): (amount, pincode, state) for customer_id, moment, amount, pincode, state in rows},
        row_count=len(rows),
        **{name: totals(fetched) for name, fetched in results.items()},
    )


def totals_of_records(records: list[dict]) -> dict[str, dict]:
    """The running totals the records must add up to, worked out from the records as sent."""
    sums: dict[str, dict] = {name: defaultdict(lambda: [Decimal("0"), 0]) for name in
                             ("customers", "customer_pincodes", "months", "pincodes")}
    for r in records:
        amount = Decimal(r["transaction_amount"])
        state_key = state_key_for(r["state"])
        for name, key in (
            ("customers", r["customer_id"]),
            ("customer_pincodes", (r["customer_id"], state_key, r["pincode"])),
            ("months", record_key(r)[1].strftime("%Y-%m")),
            ("pincodes", (state_key, r["pincode"])),
        ):
            sums[name][key][0] += amount
            sums[name][key][1] += 1
    return {name: {key: tuple(value) for key, value in by_key.items()} for name, by_key in sums.items()}


# --- Processes: the database's open transactions, gunicorn's workers ---------------------------


@dataclass(frozen=True)
class BatchWrite:
    """A connection of the app caught executing one of a batch's INSERTs."""

    connection_id: int
    client_port: int
    statement: str  # its start
    statement_bytes: int  # at most 65,535: the process list cuts the text there


class ServerWatch:
    """A connection of its own to the server, to see what the app's connections are doing.

    It reads the process list, which is live. (INFORMATION_SCHEMA.INNODB_TRX would say how many
    rows a transaction has written, but InnoDB refreshes it only when it has not been read for
    0.1 s, so polled any faster it never changes.)
    """

    def __init__(self, database: MariaDBServer):
        self.database = database
        self.connection = None

    def batch_writes(self, *, table: str) -> list[BatchWrite]:
        """The connections executing a batch's INSERT into this table right now: each is
        part-way through its database transaction. None while the server is down."""
        try:
            cursor = self.cursor()
            cursor.execute(
                "SELECT id, host, LEFT(info, 60), LENGTH(info) FROM information_schema.processlist "
                "WHERE command = 'Query' AND info LIKE %s AND (LENGTH(info) >= %s OR info LIKE %s) "
                "AND id <> CONNECTION_ID()",
                # (The set-based INSERT ... SELECT may come behind MariaDB's SET STATEMENT ... FOR.)
                [f"%INSERT%INTO `{table}` (%", BATCH_STATEMENT_BYTES, f"%FROM `{STAGING_TABLE}`%"],
            )
            return [BatchWrite(connection_id, int(host.rsplit(":", 1)[-1]), statement, size)
                    for connection_id, host, statement, size in cursor.fetchall()]
        except MySQLdb.Error:
            self.close()
            return []

    def stored_keys(self, keys) -> set[Key]:
        """Those of these keys stored and committed, as another connection sees them now."""
        keys = list(keys)
        if not keys:
            return set()
        cursor = self.cursor()
        cursor.execute(
            f"SELECT customer_id, transaction_datetime FROM {DATABASE}.transactions_transaction "
            f"WHERE (customer_id, transaction_datetime) IN ({', '.join(['(%s, %s)'] * len(keys))})",
            [value for key in keys for value in key],
        )
        return set(cursor.fetchall())

    def cursor(self):
        if self.connection is None:
            self.connection = self.database.connect()
            self.connection.autocommit(True)  # each query sees what is committed by then
        return self.connection.cursor()

    def close(self) -> None:
        if self.connection is not None:
            try:
                self.connection.close()
            except MySQLdb.Error:
                pass
            self.connection = None


def open_transaction_count(database: MariaDBServer) -> int:
    return database.scalar(
        DATABASE, "SELECT COUNT(*) FROM information_schema.innodb_trx WHERE trx_mysql_thread_id <> CONNECTION_ID()"
    )


def worker_pids(master: int) -> set[int]:
    """The gunicorn master's children: its workers."""
    children = set()
    for task in Path(f"/proc/{master}/task").glob("*/children"):
        children.update(int(pid) for pid in task.read_text().split())
    return children


def pid_of_connection(pids: set[int], *, local_port: int, remote_port: int) -> int | None:
    """Which of these processes holds the TCP connection from 127.0.0.1:local_port to remote_port."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if int(local.split(":")[1], 16) == local_port and int(remote.split(":")[1], 16) == remote_port:
            inodes.add(f"socket:[{inode}]")
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:  # gone meanwhile
            continue
        for descriptor in descriptors:
            try:
                if os.readlink(descriptor) in inodes:
                    return pid
            except OSError:
                continue
    return None


# --- The scenarios' common set-up and checks ---------------------------------------------------


class CrashConsistencyTestCase(SimpleTestCase):
    """A migrated MariaDB of the test's own, an API client's token, and gunicorn on them."""

    WORKERS = 4
    SERVER_ENVIRONMENT: dict[str, str] = {}  # more of gunicorn's environment

    def setUp(self):
        if not Path(MARIADBD).exists() or not shutil.which("mariadb-install-db"):
            self.fail("this test needs MariaDB's server (mariadbd, mariadb-install-db); CI installs it")
        self.base = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-crash-")))
        self.database = MariaDBServer(self.base)
        self.addCleanup(self.database.stop)
        self.database.start()
        connection = self.database.connect()
        connection.cursor().execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        connection.close()
        database_url = f"mysql://root@127.0.0.1:{self.database.port}/{DATABASE}"
        environment = {**os.environ, "DATABASE_URL": database_url, "CDP_REQUEST_LOG": "off"}
        self.manage(environment, "migrate", "--noinput", "-v0")
        self.token = self.manage(environment, "create_api_client", "crash").strip().splitlines()[-1]
        self.server = Gunicorn(
            database_url=database_url, workers=self.WORKERS,
            # Sync workers: one request per process, none queued behind it, so each kill cuts
            # exactly one request and the checks can name it. A gthread worker (the default)
            # killed cuts every request it holds alike: their transactions roll back the same way.
            environment={"DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
                         "GUNICORN_WORKER_CLASS": "sync", "GUNICORN_THREADS": "1", **self.SERVER_ENVIRONMENT},
        )
        self.addCleanup(self.server.stop)

    def manage(self, environment: dict[str, str], *args: str) -> str:
        finished = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=environment,
            capture_output=True, text=True, timeout=300,
        )
        self.assertEqual(finished.returncode, 0, finished.stdout + finished.stderr)
        return finished.stdout

    def wait_until_serving(self, timeout: float = 60) -> float:
        """Seconds until /api/health/ answers 200 again."""
        started = time.monotonic()
        while True:
            try:
                if self.server.call("GET", "/api/health/", timeout=10).status == 200:
                    return time.monotonic() - started
            except (OSError, http.client.HTTPException):
                pass
            self.assertLess(time.monotonic() - started, timeout, self.server.log())
            time.sleep(0.1)

    def settled_state(self) -> StoredState:
        """The stored state once the server has finished every transaction a crash left open."""
        deadline = time.monotonic() + CHECK_TIMEOUT
        while (still_open := open_transaction_count(self.database)) and time.monotonic() < deadline:
            time.sleep(0.2)  # INNODB_TRX is refreshed only when it has not been read for 0.1 s
        self.assertEqual(still_open, 0, "transactions still open on the server")
        return read_stored_state(self.database)

    def assertAcknowledgedMeansStored(self, clients: Clients) -> dict:
        """Once the stream is over: check, resend what failed, check again (the module's
        docstring); the figures, and a summary of them for the scenario's line."""
        outcomes = self.assertStreamAnswers(clients)
        stored_before = self.assertConsistent(clients, self.settled_state())
        failed = [request for request in clients.requests if not request.acknowledged]
        self.assertGreater(len(failed), 0, "no request failed: the crashes missed the stream")
        failed_but_stored = [request for request in failed if stored_before[request.number]]

        clients.resend_failed()
        clients.join(timeout=240)
        self.assertEqual([r.number for r in clients.requests if not r.acknowledged], [], "never acknowledged")
        resends = self.assertResendsAnsweredAsStored(clients, stored_before)
        final = self.settled_state()
        self.assertConsistent(clients, final)
        records = sum(len(request.records) for request in clients.requests)
        self.assertEqual(final.row_count, records)

        first_time = [request for request in clients.requests if request.first_attempt_acknowledged]
        summary = (
            f"acknowledged at once {len(first_time):,} requests ({sum(len(r.records) for r in first_time):,} records); "
            f"failed {len(failed)} ({sum(r.batch for r in failed)} batches; stream answers {counted(outcomes)}), "
            f"of which stored whole {len(failed_but_stored)}, in part 0; "
            f"resent {resends['resent requests']} ({resends['resend attempts']} attempts): "
            f"{resends['resent records created']:,} records created, {resends['resent records found stored']:,} "
            f"found stored; stored {final.row_count:,} rows = records sent, each once; running totals = sums "
            f"({len(final.customers):,} customers, {len(final.customer_pincodes):,} customer-pincodes, "
            f"{len(final.months)} months, {len(final.pincodes)} pincodes)"
        )
        return {"records": records, "failed": failed, "outcomes": outcomes, "stored_before": stored_before,
                "summary": summary}

    def assertConsistent(self, clients: Clients, state: StoredState) -> dict[int, int]:
        """The checks of the module's docstring; the number of records stored of each request."""
        sent = {key: record for request in clients.requests for key, record in zip(request.keys, request.records)}
        self.assertEqual(len(sent), sum(len(request.records) for request in clients.requests))  # keys are distinct
        self.assertEqual(len(state.rows), state.row_count)
        self.assertEqual(set(state.rows) - set(sent), set(), "rows stored that no client sent")
        for key, (amount, pincode, state_name) in state.rows.items():
            record = sent[key]
            self.assertEqual((amount, pincode, state_name),
                             (Decimal(record["transaction_amount"]), record["pincode"], record["state"]), key)

        stored_of_request = {
            request.number: sum(key in state.rows for key in request.keys) for request in clients.requests
        }
        for request in clients.requests:
            stored = stored_of_request[request.number]
            if request.acknowledged:
                self.assertEqual(stored, len(request.records), f"acknowledged request {request.number} not all stored")
            else:
                self.assertIn(stored, (0, len(request.records)),
                              f"request {request.number}, which failed, is stored in part: {stored} of "
                              f"{len(request.records)} records ({[a.outcome for a in request.attempts]})")

        stored_records = [sent[key] for key in state.rows]
        expected = totals_of_records(stored_records)
        for name in ("customers", "customer_pincodes", "months", "pincodes"):
            self.assertSameTotals(getattr(state, name), getattr(state, f"{name}_from_rows"),
                                  f"{name}: running totals differ from sums over the stored rows")
            self.assertSameTotals(getattr(state, name), expected[name],
                                  f"{name}: running totals differ from sums over the records sent")
        return stored_of_request

    def assertSameTotals(self, kept: dict, summed: dict, message: str) -> None:
        """Equal (amount, count) per key; else the first few keys that differ, not 100,000 of them."""
        differing = sorted((key for key in kept.keys() | summed.keys() if kept.get(key) != summed.get(key)), key=str)
        if differing:
            self.fail(f"{message} for {len(differing)} of {len(summed)} keys, e.g. "
                      + "; ".join(f"{key}: kept {kept.get(key)}, summed {summed.get(key)}" for key in differing[:5]))

    def assertResendsAnsweredAsStored(self, clients: Clients, stored_before: dict[int, int]) -> Counter:
        """A resend finds its records created if the failed attempt stored none, duplicates if it
        stored them all; the figures of the resends' answers."""
        figures = Counter()
        for request in clients.requests:
            resends = [attempt for attempt in request.attempts if attempt.resend]
            if not resends:
                continue
            figures["resent requests"] += 1
            figures["resend attempts"] += len(resends)
            final = resends[-1]
            self.assertTrue(request.acknowledges(final), (request.number, [a.outcome for a in request.attempts]))
            already = stored_before[request.number] == len(request.records)
            if request.batch:
                answer = final.answer
                self.assertEqual(
                    (answer["created"], answer["duplicates"], answer["conflicts"]),
                    (0, len(request.records), 0) if already else (len(request.records), 0, 0),
                    request.number,
                )
                figures["resent records created" if not already else "resent records found stored"] += len(request.records)
            else:
                self.assertEqual(final.answer["status"], "duplicate" if already else "created", request.number)
                figures["resent records created" if not already else "resent records found stored"] += 1
        return figures

    def assertStreamAnswers(self, clients: Clients) -> Counter:
        """Every answer of the stream (first attempts: the stream resends nothing) is an
        acknowledgement that created every record, a 503, or a dropped connection."""
        outcomes = Counter()
        for request in clients.requests:
            attempt = request.attempts[0]
            outcomes[attempt.outcome] += 1
            if request.acknowledges(attempt):
                if request.batch:
                    self.assertEqual(
                        (attempt.answer["created"], attempt.answer["duplicates"], attempt.answer["conflicts"]),
                        (len(request.records), 0, 0), request.number,
                    )
                else:
                    self.assertEqual((attempt.outcome, attempt.answer["status"]), ("201", "created"), request.number)
            else:
                self.assertTrue(attempt.outcome == "503" or not attempt.outcome.isdigit(),
                                (request.number, attempt.outcome, attempt.answer, self.server.log()))
        return outcomes


def was_in_flight(request: IngestRequest, moments: list[float]) -> bool:
    """Whether the request's first attempt was under way at one of these moments."""
    first = request.attempts[0]
    return any(first.started < moment < first.ended for moment in moments)


def counted(outcomes: Counter) -> str:
    return ", ".join(f"{outcome} {count:,}" for outcome, count in sorted(outcomes.items()))


# --- 1. The database server crashes -------------------------------------------------------------


@slow
class DatabaseCrashTests(CrashConsistencyTestCase):
    """mariadbd is SIGKILLed three times during a stream of singles and batches from six clients."""

    CLIENTS = 6
    # When mariadbd is killed: once this share of the stream's requests is answered, at the next
    # moment a batch executes an INSERT into the crash's target table (CRASH_TARGETS, in turn).
    CRASH_POINTS = (0.15, 0.4, 0.65)
    DOWN_SECONDS = 2.0
    CUSTOMERS = 300
    # Each client's requests, in order: batches of these sizes (3,000 takes two INSERTs of
    # transaction rows), each followed by SINGLES_BETWEEN single records; ROUNDS times.
    BATCH_SIZES = (200, 1_000, 3_000, 500)
    SINGLES_BETWEEN = 12
    ROUNDS = 2

    def requests_per_client(self) -> list[list[IngestRequest]]:
        maker = RecordMaker(seed=8, customers=self.CUSTOMERS)
        numbers = iter(range(1, 1_000_000))
        per_client = []
        for client in range(self.CLIENTS):
            requests = []
            for _ in range(self.ROUNDS):
                for size in self.BATCH_SIZES[client % 2:] + self.BATCH_SIZES[:client % 2]:
                    requests.append(IngestRequest(next(numbers), maker.records(size), batch=True))
                    requests += [IngestRequest(next(numbers), maker.records(1), batch=False)
                                 for _ in range(self.SINGLES_BETWEEN)]
            per_client.append(requests)
        return per_client

    def crash_mid_batch(self, clients: Clients, watch: ServerWatch, *, table: str) -> dict:
        deadline = time.monotonic() + 30
        while not (writes := watch.batch_writes(table=table)) and clients.running():
            self.assertLess(time.monotonic(), deadline, f"no batch seen writing to {table} within 30 s")
            time.sleep(0.001)
        self.assertTrue(writes, f"the stream ended before a batch was seen writing to {table}")
        with clients.lock:
            in_flight = len(clients.in_flight)
        killed_at = time.monotonic()
        self.database.kill()
        watch.close()
        time.sleep(self.DOWN_SECONDS)
        self.database.start()
        serving_again = time.monotonic() - killed_at + self.wait_until_serving()
        return {"table": table, "killed_at": killed_at, "in_flight": in_flight, "writes": len(writes),
                "serving_again": serving_again}

    def test_every_acknowledged_record_survives_a_database_crash_once_and_no_batch_is_stored_in_part(self):
        clients = Clients(port=self.server.port, token=self.token, requests_per_client=self.requests_per_client())
        watch = ServerWatch(self.database)
        self.addCleanup(watch.close)
        started = time.monotonic()
        clients.stream()
        crashes = []
        for point, table in zip(self.CRASH_POINTS, CRASH_TARGETS):
            clients.wait_for_progress(point)
            crashes.append(self.crash_mid_batch(clients, watch, table=table))
        clients.join(timeout=240)
        stream_seconds = time.monotonic() - started

        figures = self.assertAcknowledgedMeansStored(clients)

        failed = figures["failed"]
        in_flight = [request for request in failed if was_in_flight(request, [c["killed_at"] for c in crashes])]
        print(
            f"\ncrash consistency, mariadbd SIGKILLed {len(crashes)}x: {self.CLIENTS} clients, "
            f"{len(clients.requests):,} requests ({sum(r.batch for r in clients.requests)} batches, "
            f"{sum(not r.batch for r in clients.requests):,} singles), {figures['records']:,} records, "
            f"stream {stream_seconds:.1f} s; "
            + "; ".join(f"kill {n}: during a batch's INSERT into {c['table']}, {c['in_flight']} requests in flight, "
                        f"serving again {c['serving_again']:.1f} s after the kill" for n, c in enumerate(crashes, 1))
            + f"; {figures['summary']}; of the failed, {len(in_flight)} were in flight at a kill, the rest sent while down"
        )


# --- 2. A gunicorn worker dies mid-write --------------------------------------------------------


@slow
class WorkerCrashTests(CrashConsistencyTestCase):
    """A gunicorn worker is SIGKILLed four times while it serves a large batch: three times
    part-way through the batch's writes, once between its commit and its answer."""

    WORKERS = 3
    CLIENTS = 3
    BATCHES_PER_CLIENT = 5
    BATCH_RECORDS = 8_000
    # Each batch on one connection (services.batch_parts writes one of 2,000 records or more in
    # parts, on two connections, committed one after the other): the kill after a commit needs
    # one batch at a time to write and commit, as the customers' locks make it on one connection.
    # Batches in parts are crashed by DatabaseCrashTests (3,000 records), and in tests/test_batch_parts.py.
    SERVER_ENVIRONMENT = {"CDP_BATCH_WRITERS": "1"}
    # Few enough customers that every batch has most of them: the batches take the customers'
    # locks in turn, so only one at a time is writing, and the commit seen is the watched one's.
    CUSTOMERS = 2_000
    # Shares of the stream answered before each kill mid-write (see CRASH_TARGETS), then before
    # the kill after a commit.
    KILL_POINTS = (0.0, 0.2, 0.4)
    KILL_AFTER_COMMIT_POINT = 0.6

    def requests_per_client(self) -> list[list[IngestRequest]]:
        maker = RecordMaker(seed=9, customers=self.CUSTOMERS)
        numbers = iter(range(1, 1_000_000))
        return [
            [IngestRequest(next(numbers), maker.records(self.BATCH_RECORDS), batch=True)
             for _ in range(self.BATCHES_PER_CLIENT)]
            for _ in range(self.CLIENTS)
        ]

    def worker_writing(self, clients: Clients, watch: ServerWatch, *, table: str) -> tuple[int, BatchWrite]:
        """The pid of a worker whose database connection is executing a batch's INSERT into table."""
        deadline = time.monotonic() + 30
        while clients.running() and time.monotonic() < deadline:
            for write in watch.batch_writes(table=table):
                # None for a connection whose worker is dead already (the server finishes the
                # statement before it notices).
                pid = pid_of_connection(
                    worker_pids(self.server.process.pid), local_port=write.client_port, remote_port=self.database.port
                )
                if pid is not None:
                    return pid, write
            time.sleep(0.001)
        self.fail(f"no worker was seen writing to {table} before the stream ended or within 30 s")

    def kill(self, pid: int, **details) -> dict:
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        return {"pid": pid, "killed_at": killed_at, "replaced_in": self.wait_for_worker(pid), **details}

    def kill_worker_mid_batch(self, clients: Clients, watch: ServerWatch, *, table: str) -> dict:
        pid, _ = self.worker_writing(clients, watch, table=table)
        return self.kill(pid, moment=f"during a batch's INSERT into {table}")

    def kill_worker_after_commit(self, clients: Clients, watch: ServerWatch) -> dict:
        """SIGKILL a worker as soon as its batch is committed, while it writes the answer.

        The worker is found writing the batch's last large INSERT (the per-pincode totals); its
        commit is the moment the batch's first record becomes visible to another connection.
        """
        for _ in clients.requests:  # each try watches another batch
            pid, _ = self.worker_writing(clients, watch, table="transactions_customerpincodetotal")
            with clients.lock:
                in_flight = set(clients.in_flight)
            first_keys = {request.keys[0]: request for request in clients.requests if request.number in in_flight}
            for key in watch.stored_keys(first_keys):  # committed already, answering now
                del first_keys[key]
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                if committed := watch.stored_keys(first_keys):
                    return self.kill(pid, moment="after a batch's commit", request=first_keys[committed.pop()].number)
            # Not seen (the batch was not among those in flight a moment before): watch the next one.
        self.fail("no batch was seen committing")

    def wait_for_worker(self, killed: int) -> float:
        """Seconds until the master has started a worker in the killed one's place."""
        started = time.monotonic()
        while True:
            pids = worker_pids(self.server.process.pid)
            if killed not in pids and len(pids) == self.WORKERS:
                return time.monotonic() - started
            self.assertLess(time.monotonic() - started, 60, self.server.log())
            time.sleep(0.01)

    def test_a_worker_killed_mid_batch_leaves_no_half_written_batch(self):
        clients = Clients(port=self.server.port, token=self.token, requests_per_client=self.requests_per_client())
        watch = ServerWatch(self.database)
        self.addCleanup(watch.close)
        started = time.monotonic()
        clients.stream()
        kills = []
        for point, table in zip(self.KILL_POINTS, CRASH_TARGETS):
            clients.wait_for_progress(point)
            kills.append(self.kill_worker_mid_batch(clients, watch, table=table))
        clients.wait_for_progress(self.KILL_AFTER_COMMIT_POINT)
        kills.append(self.kill_worker_after_commit(clients, watch))
        clients.join(timeout=240)
        stream_seconds = time.monotonic() - started

        figures = self.assertAcknowledgedMeansStored(clients)

        # A kill mid-write cut the requests its worker was serving (one, or two when both of its
        # threads held a batch), each of which left nothing stored.
        # Each failed request was cut by the last kill during its first attempt: a client sees its
        # connection reset at once, so an attempt spanning two kills was waiting (queued, or on
        # another worker) at the first and was cut by the second.
        stored_before = figures["stored_before"]
        for kill in kills:
            kill["cut"] = []
        for request in figures["failed"]:
            during = [kill for kill in kills if was_in_flight(request, [kill["killed_at"]])]
            if during:
                during[-1]["cut"].append(request)
        for kill in kills[:-1]:
            cut_stored = [stored_before[r.number] for r in kill["cut"]]
            self.assertIn(len(cut_stored), (1, 2), kill)
            self.assertEqual(cut_stored, [0] * len(cut_stored), kill)
        # The kill after a commit cut at most one batch, a committed one (every record stored
        # before any resend), unless its answer was sent first. It is usually the batch the watch
        # saw commit; but the watched worker's own commit can land between finding it writing and
        # the watch's first look, and then the next commit seen is another worker's.
        after_commit = kills[-1]
        self.assertLessEqual(len(after_commit["cut"]), 1, after_commit)
        for request in after_commit["cut"]:
            self.assertEqual(stored_before[request.number], self.BATCH_RECORDS, after_commit)
        self.assertEqual(stored_before[after_commit["request"]], self.BATCH_RECORDS)
        self.assertEqual(sorted(r.number for r in figures["failed"]),
                         sorted(r.number for kill in kills for r in kill["cut"]))

        def outcome(kill: dict) -> str:
            if not kill["cut"]:
                return "its answer was sent before the kill landed"
            [request] = kill["cut"]
            return (f"the request failed ({request.attempts[0].outcome}) with "
                    f"{stored_before[request.number]:,}/{self.BATCH_RECORDS:,} records stored")

        print(
            f"\ncrash consistency, gunicorn worker SIGKILLed {len(kills)}x: {self.CLIENTS} clients, "
            f"{self.WORKERS} workers, {len(clients.requests)} batches of {self.BATCH_RECORDS:,} records, "
            f"stream {stream_seconds:.1f} s; "
            + "; ".join(f"kill {n} {kill['moment']}: {outcome(kill)}, worker replaced in {kill['replaced_in']:.2f} s"
                        for n, kill in enumerate(kills, 1))
            + f"; {figures['summary']}"
        )
