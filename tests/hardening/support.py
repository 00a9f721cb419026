"""What the hardening tests share: free ports, a real gunicorn, plain HTTP calls.

The servers started here are separate processes on the test run's own database (or on a
database the test starts), so they see only what a real client would: HTTP status, headers
and body.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from tests.test_import_worker import worker_database_url

__all__ = ["Gunicorn", "HttpAnswer", "free_port", "http_call", "database_url_of_test_run"]

database_url_of_test_run = worker_database_url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float

    def json(self) -> object:
        return json.loads(self.body)


def http_call(
    port: int,
    method: str,
    path: str,
    *,
    body: object = None,
    raw_body: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
) -> HttpAnswer:
    """One request on a fresh connection; the body is sent as JSON unless raw_body is given."""
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    if token:
        sent_headers["Authorization"] = f"Token {token}"
    payload = raw_body if raw_body is not None else (None if body is None else json.dumps(body).encode())
    started = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=sent_headers)
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()
    return HttpAnswer(response.status, dict(response.getheaders()), content, time.monotonic() - started)


class Gunicorn:
    """`gunicorn cdp_site.wsgi` with its gunicorn.conf.py (gthread workers), as production runs it.

    The log goes to a temporary file that `log()` returns, for assertion messages.
    """

    def __init__(
        self,
        *,
        database_url: str,
        workers: int,
        environment: dict[str, str] | None = None,
        ready_statuses: tuple[int, ...] = (200,),
    ):
        self.port = free_port()
        self.ready_statuses = ready_statuses
        self._log = tempfile.NamedTemporaryFile(prefix="cdp-gunicorn-", suffix=".log", delete=False)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "CDP_THROTTLE_USER": "none",
            "CDP_THROTTLE_ANON": "none",
            "CDP_REQUEST_LOG": "off",
            "GUNICORN_BIND": f"127.0.0.1:{self.port}",
            "GUNICORN_WORKERS": str(workers),
            "GUNICORN_LOG_LEVEL": "warning",
            **(environment or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "cdp_site.wsgi"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches every worker
        )
        try:
            self._wait_until_serving()
        except BaseException:
            self.stop()
            raise

    def _wait_until_serving(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.log()}")
            try:
                if http_call(self.port, "GET", "/api/health/", timeout=15).status in self.ready_statuses:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer /api/health/ within {timeout} s:\n{self.log()}")

    def call(self, method: str, path: str, **kwargs) -> HttpAnswer:
        return http_call(self.port, method, path, **kwargs)

    def log_text(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def log(self) -> str:
        """The end of the server's log, for assertion messages."""
        return "\n--- gunicorn log (end) ---\n" + self.log_text()[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
