"""State every gunicorn worker must share: the API's throttle and the failed-login lock-out hold
across workers, and a credential changed elsewhere is refused by every worker's kept copy.

Both count in the "default" cache. With a per-process cache, N workers would each count on their
own and a client would get N times the limit; the database cache (the default) and Redis (when
CACHE_URL is set) are shared by every process.

Which worker serves a request is normally the kernel's choice; these tests make it theirs. A
sync worker serves one connection at a time, so a request whose head is sent only in part holds
the worker that accepted it (X) while the requests sent meanwhile go to the other one (Y).
Finishing the held request then has X answer it after Y has counted the rest. gunicorn's access
log names the process of every answer, so each test also checks that two workers took part.
"""

from __future__ import annotations

import re
import socket
import time
import uuid

import redis
from urllib.parse import urlencode

from django.core.cache.backends.redis import RedisCache
from django.test import TransactionTestCase
from rest_framework.authtoken.models import Token

from tests.hardening.support import Gunicorn, database_url_of_test_run, http_call
from tests.support import clear_caches, make_user, slow

LIMIT = 3
REDIS_URL = "redis://127.0.0.1:6379/0"  # Debian's redis-server, started by .ci/run
PASSWORD = "a-long-test-password"
# `<pid> status path query` for every answer (gunicorn's access log atoms).
# Sync workers: a held request then occupies its process, so the next one is answered by the
# other process, which is what these tests need (a gthread worker would take it on a thread).
ACCESS_LOG = {
    "GUNICORN_ACCESS_LOG": "-",
    "GUNICORN_CMD_ARGS": "--access-logformat='%(p)s %(s)s %(U)s %(q)s'",
    "GUNICORN_WORKER_CLASS": "sync",
    "GUNICORN_THREADS": "1",  # with more, gunicorn runs gthread whatever the class says
}


class HeldRequest:
    """A request sent up to its last header line: the worker that accepted it waits for the rest."""

    def __init__(self, port: int, head: str, body: bytes = b""):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.body = body
        self.socket.sendall(head.encode())
        time.sleep(1.0)  # for a worker to accept it and block reading the rest

    def finish(self) -> int:
        """Send the rest; the answer's status."""
        self.socket.sendall(b"Connection: close\r\n\r\n" + self.body)
        answer = b""
        while chunk := self.socket.recv(65536):
            answer += chunk
        self.socket.close()
        return int(answer.split(b" ", 2)[1])


class AccessLogMixin:
    """`self.server` is a Gunicorn started with ACCESS_LOG."""

    def worker_of(self, query: str) -> str:
        """The pid of the worker that answered the request whose query string was `query`."""
        deadline = time.monotonic() + 10  # a worker writes its access line just after answering
        while time.monotonic() < deadline:
            for line in self.server.log_text().splitlines():
                match = re.fullmatch(r"<(\d+)> \d{3} \S+ (\S*)", line.strip())
                if match and match.group(2) == query:
                    return match.group(1)
            time.sleep(0.1)
        self.fail(f"no access log line for ?{query}" + self.server.log())


@slow
class SharedLimitTests(AccessLogMixin, TransactionTestCase):
    """Run with the database cache; RedisLimitTests runs the same with Redis."""

    def server_environment(self) -> dict[str, str]:
        return {}

    def setUp(self):
        clear_caches()
        self.user = make_user("limited")
        self.token = Token.objects.create(user=self.user).key
        self.server = Gunicorn(
            database_url=database_url_of_test_run(),
            workers=2,
            environment={
                "CDP_THROTTLE_USER": f"{LIMIT}/minute",
                "CDP_LOGIN_FAILURE_LIMIT": str(LIMIT),
                **ACCESS_LOG,
                **self.server_environment(),
            },
        )
        self.addCleanup(self.server.stop)

    def test_the_api_rate_limit_is_one_limit_across_workers(self):
        held = HeldRequest(
            self.server.port,
            f"GET /api/imports/?n=held HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {self.token}\r\n",
        )
        meanwhile = [
            self.server.call("GET", f"/api/imports/?n={n}", token=self.token).status for n in range(LIMIT)
        ]
        held_status = held.finish()
        after = self.server.call("GET", "/api/imports/?n=after", token=self.token)

        self.assertEqual(meanwhile, [200] * LIMIT, self.server.log())
        # The other worker saw none of those requests itself, yet counts them.
        self.assertEqual(held_status, 429, self.server.log())
        self.assertEqual(after.status, 429)
        self.assertIn("throttled", after.json()["detail"].lower())
        self.assertNotEqual(self.worker_of("n=held"), self.worker_of("n=0"))
        self.assertEqual({self.worker_of(f"n={n}") for n in range(LIMIT)}, {self.worker_of("n=0")})

    def login_form(self) -> tuple[str, str]:
        """The CSRF cookie and form token a browser gets with the login page."""
        page = self.server.call("GET", "/accounts/login/")
        self.assertEqual(page.status, 200)
        cookie = re.search(r"csrftoken=([^;]+)", page.headers["Set-Cookie"]).group(1)
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.body).group(1).decode()
        return cookie, token

    def test_failed_logins_lock_the_account_out_across_workers(self):
        cookie, csrf = self.login_form()

        def form(password: str) -> bytes:
            return urlencode({"username": "limited", "password": password, "csrfmiddlewaretoken": csrf}).encode()

        def head(query: str, body: bytes) -> str:
            return (
                f"POST /accounts/login/?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken={cookie}\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
            )

        def login(query: str, password: str) -> int:
            body = form(password)
            return http_call(
                self.server.port, "POST", f"/accounts/login/?{query}", raw_body=body,
                headers={"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded"},
            ).status

        # Sanity: the right password logs in (302 to the dashboard), and forgets nothing yet.
        self.assertEqual(login("n=right-first", PASSWORD), 302, self.server.log())

        wrong = form("not-the-password")
        held = HeldRequest(self.server.port, head("n=held", wrong), wrong)
        meanwhile = [login(f"n={n}", "not-the-password") for n in range(LIMIT - 1)]
        self.assertEqual(held.finish(), 200)  # the form again, with its error
        self.assertEqual(meanwhile, [200] * (LIMIT - 1))
        # LIMIT failures in all, but no worker saw LIMIT of them itself.
        self.assertNotEqual(self.worker_of("n=held"), self.worker_of("n=0"))

        # Locked out on both workers: the right password is refused (the form again), by the
        # worker holding one attempt and by the other one meanwhile.
        right = form(PASSWORD)
        held = HeldRequest(self.server.port, head("n=right-held", right), right)
        meanwhile = login("n=right-meanwhile", PASSWORD)
        self.assertEqual((held.finish(), meanwhile), (200, 200))
        self.assertNotEqual(self.worker_of("n=right-held"), self.worker_of("n=right-meanwhile"))


class RedisLimitTests(SharedLimitTests):
    """The same limits with CACHE_URL naming a Redis server (its own key prefix per test)."""

    def server_environment(self) -> dict[str, str]:
        prefix = f"cdp-test-{uuid.uuid4().hex}"
        try:
            RedisCache(REDIS_URL, {"KEY_PREFIX": prefix}).get("probe")
        except Exception as error:  # noqa: BLE001 - any failure to reach it is the same finding
            self.fail(f"this test needs Redis at {REDIS_URL} (.ci/run starts redis-server): {error}")
        self.addCleanup(self.delete_keys, prefix)
        return {"CACHE_URL": REDIS_URL, "CACHE_KEY_PREFIX": prefix}

    @staticmethod
    def delete_keys(prefix: str) -> None:
        """Only this test's keys: the server may hold others' (clear() would flush them all)."""
        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


@slow
class KeptCredentialsAcrossWorkersTests(AccessLogMixin, TransactionTestCase):
    """Each worker keeps a token's user and permissions (transactions/api/authentication.py);
    a change made in another process (here, the test's) reaches every worker's copy."""

    def setUp(self):
        clear_caches()
        self.user = make_user("kept-everywhere", permissions=("view_transaction",))
        self.token = Token.objects.create(user=self.user).key
        self.server = Gunicorn(database_url=database_url_of_test_run(), workers=2, environment=ACCESS_LOG)
        self.addCleanup(self.server.stop)

    def on_both_workers(self, name: str) -> list[tuple[int, str]]:
        """POST /api/top-customers on each of the two workers: (status, worker pid) of each."""
        body = b'{"state": "Delhi"}'
        held = HeldRequest(
            self.server.port,
            f"POST /api/top-customers?n={name}-held HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Token {self.token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n",
            body,
        )
        other = self.server.call("POST", f"/api/top-customers?n={name}-other", body={"state": "Delhi"},
                                 token=self.token)
        statuses = [held.finish(), other.status]
        workers = [self.worker_of(f"n={name}-held"), self.worker_of(f"n={name}-other")]
        self.assertNotEqual(workers[0], workers[1], "the two requests went to two workers")
        return list(zip(statuses, workers))

    def test_a_permission_taken_away_in_another_process_is_refused_by_every_worker(self):
        self.assertEqual([status for status, _ in self.on_both_workers("before")], [200, 200])

        self.user.user_permissions.clear()  # this process: the workers only see the shared cache

        after = self.on_both_workers("after")
        self.assertEqual([status for status, _ in after], [403, 403], self.server.log())
