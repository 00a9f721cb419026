"""Database outages, for real: the test starts its own MariaDB server (own data directory and
port), serves the app from gunicorn on it, kills the server mid-import, and starts it again.

While the database is down, every endpoint must answer 503 within a few seconds (the connect
timeout is 2 s), /api/health/ must say so, and the dashboard must show its outage page. Once
the database is back, the same gunicorn (not restarted) must serve again, and the import the
outage interrupted must resume from its last committed chunk and end with the right counts.
A second server on a non-routable address covers "unreachable" rather than "refused".

It needs only mariadb-install-db and mariadbd (CI installs MariaDB), not the database of the
test run, so it runs in every backend's run: SQLite, MariaDB and PostgreSQL alike.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import MySQLdb
from django.conf import settings
from django.test import SimpleTestCase

from cdp_site.backends.health import DEFAULT_GRACE_SECONDS
from tests.api.test_imports import COUNT_FIELDS as COUNTS, committed_records, expected_import, ndjson_file, sample_records
from tests.hardening.support import Gunicorn, free_port, http_call
from tests.support import record, slow

MARIADBD = "/usr/sbin/mariadbd"
CONNECT_TIMEOUT = 2
QUICK = 5.0  # seconds within which an outage must be answered
CHUNK_ROWS = 100
IMPORT_ROWS = 20_000
PASSWORD = "outage-test-password"


class MariaDBServer:
    """A throwaway MariaDB: its own data directory, port and socket; root without password."""

    def __init__(self, base: Path):
        self.base = base
        self.data_dir = base / "data"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.data_dir}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=120,
        )

    def start(self) -> None:
        # A temporary directory of its own: mariadbd deletes every "#sql*" file in its tmpdir
        # when it starts, so a server restarted here with /tmp removed the temporary tables of
        # the other servers' running queries (another test's, in parallel: "Error on delete of
        # '/tmp/#sql-temptable-...'").
        (self.base / "tmp").mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={self.data_dir}", f"--port={self.port}",
             f"--tmpdir={self.base / 'tmp'}",
             f"--socket={self.base / 'mysqld.sock'}", f"--pid-file={self.base / 'mysqld.pid'}",
             "--bind-address=127.0.0.1", "--user=root", "--skip-log-bin", "--innodb-buffer-pool-size=64M",
             f"--log-error={self.base / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.connect().close()
                return
            except MySQLdb.OperationalError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mariadbd exited:\n{self.error_log()}") from None
                time.sleep(0.2)
        raise RuntimeError(f"mariadbd did not accept connections:\n{self.error_log()}")

    def kill(self) -> None:
        """A crash, not a shutdown: nothing is flushed, open transactions are lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()

    def connect(self, database: str | None = None):
        return MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", passwd="", connect_timeout=2,
                               charset="utf8mb4", **({"database": database} if database else {}))

    def scalar(self, database: str, sql: str):
        return self.row(database, sql)[0]

    def row(self, database: str, sql: str) -> tuple:
        connection = self.connect(database)
        try:
            cursor = connection.cursor()
            cursor.execute(sql)
            return cursor.fetchone()
        finally:
            connection.close()

    def error_log(self) -> str:
        path = self.base / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def multipart(file_name: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{file_name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@slow
class DatabaseOutageTests(SimpleTestCase):
    """One scenario, in order: serve, crash the database mid-import, answer 503s, recover, resume."""

    def setUp(self):
        if not Path(MARIADBD).exists() or not shutil.which("mariadb-install-db"):
            self.fail("this test needs MariaDB's server (mariadbd, mariadb-install-db); CI installs it")
        self.base = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-outage-")))
        self.database = MariaDBServer(self.base)
        self.addCleanup(self.database.stop)
        self.database.start()
        connection = self.database.connect()
        connection.cursor().execute("CREATE DATABASE cdp_outage CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        connection.close()
        self.environment = {
            **os.environ,
            "DATABASE_URL": f"mysql://root@127.0.0.1:{self.database.port}/cdp_outage",
            "DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
            "CDP_IMPORT_DIR": str(self.base / "imports"),
            "CDP_IMPORT_CHUNK_ROWS": str(CHUNK_ROWS),
            "CDP_REQUEST_LOG": "off",
        }
        self.environment.pop("CDP_TASKS_BACKEND", None)
        self.manage("migrate", "--noinput", "-v0")
        self.token = self.manage("create_api_client", "outage", "--password", PASSWORD).strip().splitlines()[-1]
        self.server = Gunicorn(
            database_url=self.environment["DATABASE_URL"], workers=2,
            environment={key: self.environment[key] for key in ("DATABASE_CONNECT_TIMEOUT", "CDP_IMPORT_DIR")},
        )
        self.addCleanup(self.server.stop)

    def manage(self, *args: str) -> str:
        finished = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=self.environment,
            capture_output=True, text=True, timeout=300,
        )
        self.assertEqual(finished.returncode, 0, finished.stdout + finished.stderr)
        return finished.stdout

    def start_worker(self, *args: str, **environment: str) -> subprocess.Popen:
        log = open(self.base / f"worker-{time.monotonic_ns()}.log", "wb")
        self.addCleanup(log.close)
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "import_worker", *args], cwd=settings.BASE_DIR,
            env={**self.environment, **environment}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.addCleanup(self.stop_process, worker)
        worker.log_path = Path(log.name)
        return worker

    @staticmethod
    def stop_process(process: subprocess.Popen) -> None:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)

    def call(self, method: str, path: str, **kwargs):
        kwargs.setdefault("token", self.token)
        return self.server.call(method, path, timeout=30, **kwargs)

    def log_in(self) -> str:
        """Log in through the login form, as a browser does; the session cookie."""
        page = self.call("GET", "/accounts/login/", token=None)
        csrf_cookie = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"]).group(1)
        self.assertIn(b'name="csrfmiddlewaretoken"', page.body)
        answer = self.call(
            "POST", "/accounts/login/", token=None,
            # The cookie's value is accepted as the form's token too (Django unmasks either).
            raw_body=f"username=outage&password={PASSWORD}&csrfmiddlewaretoken={csrf_cookie}".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={csrf_cookie}"},
        )
        self.assertEqual(answer.status, 302, answer.body[:300])
        return "; ".join(re.findall(r"(sessionid=[^;]+)", answer.headers["Set-Cookie"]))

    def every_endpoint(self, job_id: int, session: str) -> dict[str, tuple]:
        upload, upload_type = multipart("more.ndjson", ndjson_file([record(customer_id=7)]))
        return {
            "GET /api/health/": ("GET", "/api/health/", {"token": None}),
            "POST /api/ingest-data": ("POST", "/api/ingest-data", {"body": record(customer_id=10**12)}),
            "POST /api/query-transaction-range": (
                "POST", "/api/query-transaction-range", {"body": {"min_amount": 0, "max_amount": 10**9, "limit": 5}}),
            "POST /api/top-customers": ("POST", "/api/top-customers", {"body": {"state": "Delhi"}}),
            "GET /api/imports/": ("GET", "/api/imports/", {}),
            "POST /api/imports/": ("POST", "/api/imports/", {"raw_body": upload, "headers": {"Content-Type": upload_type}}),
            "GET /api/imports/<id>/": ("GET", f"/api/imports/{job_id}/", {}),
            "GET /api/imports/<id>/rejected.csv": ("GET", f"/api/imports/{job_id}/rejected.csv", {}),
            "GET /api/imports/ (browser session)": ("GET", "/api/imports/", {"token": None, "headers": {"Cookie": session}}),
            "GET / (dashboard, logged in)": ("GET", "/", {"token": None, "headers": {"Cookie": session}}),
        }

    def test_every_endpoint_is_503_during_an_outage_and_all_recovers_without_a_restart(self):
        # 1. Serving normally.
        session = self.log_in()
        self.assertEqual(self.call("GET", "/api/health/", token=None).json(), {"status": "ok", "database": "ok"})
        created = self.call("POST", "/api/ingest-data", body=record(customer_id=10**12))
        self.assertEqual(created.status, 201, created.body)
        records = sample_records(rows=IMPORT_ROWS, seed=41)
        body, content_type = multipart("outage.ndjson", ndjson_file(records))
        uploaded = self.call("POST", "/api/imports/", raw_body=body, headers={"Content-Type": content_type})
        self.assertEqual(uploaded.status, 202, uploaded.body)
        job_id = uploaded.json()["id"]
        before = {name: self.call(method, path, **kwargs).status
                  for name, (method, path, kwargs) in self.every_endpoint(job_id, session).items()}
        self.assertEqual(set(before.values()) - {200, 201, 202}, set(), before)
        self.assertEqual(self.call("GET", "/api/imports/").status, 200)

        # 2. The worker is part-way through the file when the database crashes.
        # No housekeeping rounds: this worker would otherwise resume the import by itself once
        # the database is back (tests/cluster covers that); here a second worker resumes it.
        worker = self.start_worker("--housekeeping", "3600")
        deadline = time.monotonic() + 120
        while (job := self.call("GET", f"/api/imports/{job_id}/").json())["rows_processed"] < 10 * CHUNK_ROWS:
            self.assertIsNone(worker.poll(), worker.log_path.read_text(errors="replace"))
            self.assertLess(time.monotonic(), deadline, job)
            time.sleep(0.05)
        self.database.kill()
        killed_at = time.monotonic()
        self.assertEqual(job["status"], "running")

        # 3. Down: every endpoint answers 503 quickly; health says why; the dashboard explains.
        timings = {}
        for name, (method, path, kwargs) in self.every_endpoint(job_id, session).items():
            with self.subTest(endpoint=name):
                answer = self.call(method, path, **kwargs)
                timings[name] = answer.seconds
                self.assertEqual(answer.status, 503, (name, answer.body[:300], self.server.log()))
                self.assertLess(answer.seconds, QUICK, name)
                self.assertEqual(answer.headers.get("Retry-After"), "5", name)
                if path == "/":
                    self.assertEqual(answer.headers["Content-Type"], "text/html; charset=utf-8")
                    self.assertIn(b"The dashboard is unavailable for a moment", answer.body)
                    self.assertIn(b'<link rel="stylesheet" href="/static/css/dashboard.css">', answer.body)
                elif path == "/api/health/":
                    self.assertEqual(answer.json()["database"], "unreachable")
                else:
                    self.assertEqual(answer.json(), {"detail": "The database is unavailable; try again shortly."})
        down_for = time.monotonic() - killed_at

        # 4. Back: the same gunicorn master serves again, through its persistent connections.
        master = self.server.process.pid
        self.database.start()
        restarted_at = time.monotonic()
        while (health := self.call("GET", "/api/health/", token=None)).status != 200:
            self.assertLess(time.monotonic() - restarted_at, 30, health.body)
            time.sleep(0.1)
        recovered_in = time.monotonic() - restarted_at
        self.assertEqual(health.json(), {"status": "ok", "database": "ok"})
        self.assertEqual((self.server.process.pid, self.server.process.poll()), (master, None))
        # A connection that served a request well within the last HEALTH_CHECK_GRACE_SECONDS is
        # reused unchecked, so one that did so just before the kill answers its next request
        # with one 503 when the server is back that fast (docs/DEPLOYMENT.md). Past the grace,
        # every connection is checked first: then nothing may fail.
        time.sleep(max(0.0, DEFAULT_GRACE_SECONDS + 0.1 - (time.monotonic() - killed_at)))
        after = {name: self.call(method, path, **kwargs).status
                 for name, (method, path, kwargs) in self.every_endpoint(job_id, session).items()}
        self.assertEqual(set(after.values()) - {200, 201, 202}, set(), (after, self.server.log()))
        self.assertEqual(after["POST /api/ingest-data"], 200)  # stored once, before the outage: a duplicate

        # 5. The interrupted import resumes from its last committed chunk and ends right.
        self.stop_process(worker)
        interrupted = self.call("GET", f"/api/imports/{job_id}/").json()
        self.assertEqual(interrupted["status"], "running")
        # What the killed worker left is exactly its committed chunks and parts of a chunk.
        line_number, progress = self.database.row(
            "cdp_outage", f"SELECT line_number, chunk_in_progress FROM transactions_importjob WHERE id = {int(job_id)}")
        committed = committed_records(records, line_number=line_number, progress=progress and json.loads(progress), first_line=1)
        self.assertEqual(interrupted["rows_processed"], len(committed))
        self.assertEqual({name: interrupted[name] for name in COUNTS}, expected_import(committed)[0])
        self.assertLess(interrupted["rows_processed"], len(records))
        resumed = self.start_worker("--batch", CDP_IMPORT_STALE_SECONDS="0")
        self.assertEqual(resumed.wait(timeout=300), 0, resumed.log_path.read_text(errors="replace"))
        # With it, any small upload (of "every endpoint") that the killed worker had taken up meanwhile.
        resumed_ids = re.search(r"Resuming interrupted imports: ([\d, ]+)", resumed.log_path.read_text())
        self.assertIsNotNone(resumed_ids, resumed.log_path.read_text())
        self.assertIn(str(job_id), resumed_ids.group(1).split(", "))
        final = self.call("GET", f"/api/imports/{job_id}/").json()
        counts, _ = expected_import(records)
        self.assertEqual({name: final[name] for name in counts}, counts)
        self.assertEqual(final["status"], "done")
        # The rows agree with the counts: the customer 10**12 of step 1, the import's rows,
        # and one record of each of the two small uploads of "every endpoint" (a customer 7).
        stored = self.database.scalar("cdp_outage", "SELECT COUNT(*) FROM transactions_transaction")
        customer_total = self.database.scalar("cdp_outage", "SELECT SUM(total_amount) FROM transactions_customer")
        transaction_total = self.database.scalar(
            "cdp_outage", "SELECT SUM(transaction_amount) FROM transactions_transaction")
        self.assertEqual(stored, 1 + counts["created"] + self.stored_customer_7())
        self.assertEqual(customer_total, transaction_total)

        print(
            f"\noutage: import at {interrupted['rows_processed']}/{len(records)} rows when mariadbd was killed; "
            f"503 answers in {', '.join(f'{name} {seconds:.2f}s' for name, seconds in timings.items())}; "
            f"all endpoints checked within {down_for:.1f} s of the crash; health 200 again {recovered_in:.2f} s "
            f"after mariadbd was restarted (gunicorn not restarted); import resumed and done: "
            f"{json.dumps({name: final[name] for name in counts})}"
        )

    def stored_customer_7(self) -> int:
        return self.database.scalar("cdp_outage", "SELECT COUNT(*) FROM transactions_transaction WHERE customer_id = 7")


@slow
class HungDatabaseTests(SimpleTestCase):
    """A database that accepts the connection but never answers (a hung server, a half-open
    network path): the connect timeout, not the client, decides how long a request waits."""

    def test_every_endpoint_is_503_within_the_connect_timeout(self):
        listener = socket.socket()
        self.addCleanup(listener.close)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)  # the kernel completes the handshake; nothing ever reads or writes
        port = listener.getsockname()[1]
        server = Gunicorn(
            database_url=f"mysql://root@127.0.0.1:{port}/cdp_hung",
            workers=2,
            environment={"DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)},
            ready_statuses=(503,),
        )
        self.addCleanup(server.stop)
        timings = {}
        for method, path, body in (
            ("GET", "/api/health/", None),
            ("POST", "/api/ingest-data", record()),
            ("POST", "/api/query-transaction-range", {"min_amount": 0, "max_amount": 1}),
            ("POST", "/api/top-customers", {"state": "Delhi"}),
            ("GET", "/api/imports/", None),
        ):
            with self.subTest(path=path):
                answer = server.call(method, path, body=body, token="0" * 40, timeout=30)
                timings[path] = answer.seconds
                self.assertEqual(answer.status, 503, answer.body[:300])
                self.assertGreaterEqual(answer.seconds, CONNECT_TIMEOUT * 0.9)  # it did wait for the timeout...
                self.assertLess(answer.seconds, CONNECT_TIMEOUT + QUICK)  # ...and no longer
        print(f"\nhung database: 503 after {', '.join(f'{path} {seconds:.2f}s' for path, seconds in timings.items())}")
