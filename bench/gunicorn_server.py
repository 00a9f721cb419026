"""Our gunicorn for the benchmarks that time it over HTTP: gunicorn.conf.py as deployed (its
hooks included), started, and waited for until every worker has warmed up.

A worker's start-up and warm-up take about a second of CPU each (gunicorn.conf.py). Waiting only
for the first answer left the other workers starting while the first measurement ran: on two
cores, a JSON batch benchmark read 0.84-0.89 of the import where it reads 1.0 once they are up
(docs/PERFORMANCE.md, ninth session).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What gunicorn.conf.py logs when a worker's warm-up ends, whether it went through or not.
WARM_UP_ENDS = ("warm-up done", "warm-up cut short")


def start_gunicorn(*, port: int, log_path: Path, env: Mapping[str, str] | None = None, timeout: float = 60,
                   **settings: str) -> subprocess.Popen:
    """gunicorn on 127.0.0.1:``port`` with ``env`` (default: this process's) and the GUNICORN_* /
    CDP_* ``settings`` given, logging to ``log_path``; returned once every worker has warmed up.
    Stop it with ``stop_gunicorn``."""
    env = {**(os.environ if env is None else env), **settings}
    workers = int(env.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))  # as gunicorn.conf.py
    env.update(GUNICORN_BIND=f"127.0.0.1:{port}", GUNICORN_WORKERS=str(workers), GUNICORN_LOG_LEVEL="info")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "cdp_site.wsgi"],
                              cwd=ROOT, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if sum(text.count(end) for end in WARM_UP_ENDS) >= workers:
            return server
        if server.poll() is not None:
            break
        time.sleep(0.05)
    stop_gunicorn(server)
    raise RuntimeError(f"gunicorn's {workers} workers did not all warm up: see {log_path}")


def stop_gunicorn(server: subprocess.Popen) -> None:
    """Stop the server and its workers (its own process group)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    server.wait(timeout=30)
