"""The first request after a restart beside warm ones, through a real gunicorn (gunicorn.conf.py).

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench_reports .venv/bin/python bench/cold_start.py [--rounds 3]

Each round starts gunicorn with one worker (`-c gunicorn.conf.py`, its hooks included), waits
until the worker says it has booted (and the warm-up hook, if any, has run) plus a second, then
times over HTTP, one new connection each:

1. the first request the worker serves: POST /api/query-transaction-range, a window holding
   half the rows, `limit` 100;
2. the same request again (warm: the window's sums are kept), median of 5;
3. the same kind of request in the warm worker for another window (its sums not kept yet:
   what the first request had to compute too), median of 3;

then stops the server. The target of #16: (1) <= 2x (3). With CACHE_URL=redis://... the kept
sums outlive the restart (the first request is then measured against (2) as well).
Prints each round and the load average.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("COLD_START_PORT", "8131"))


def api_token() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from transactions import services

    user, _ = User.objects.get_or_create(username="bench-cold-start")
    services.assign_role(user=user, role="api-client")
    return Token.objects.get_or_create(user=user)[0].key


def post(token: str, body: dict) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    started = time.perf_counter()
    connection.request("POST", "/api/query-transaction-range", json.dumps(body),
                       {"Authorization": f"Token {token}", "Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    connection.close()
    assert response.status == 200, response.status
    return elapsed


def start_server(log_path: Path) -> subprocess.Popen:
    env = {**os.environ, "GUNICORN_BIND": f"127.0.0.1:{PORT}", "GUNICORN_WORKERS": "1", "CDP_REQUEST_LOG": "off",
           "CDP_THROTTLE_USER": "none", "GUNICORN_LOG_LEVEL": "info"}
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "cdp_site.wsgi"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = log_path.read_text()
        # gunicorn logs "Booting worker" at the fork; the warm-up hook logs when it is done.
        if "Booting worker" in text and ("warm-up" in text or time.monotonic() > deadline - 55):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    token = api_token()
    log_path = ROOT / "bench" / "out" / "cold-start-gunicorn.log"
    log_path.parent.mkdir(exist_ok=True)
    window = {"min_amount": 10000, "max_amount": 200000, "start": "2023-01-01T00:00:00Z",
              "time_period": "2024-06-30T23:59:59Z", "limit": 100}
    print("load before", os.getloadavg(), flush=True)
    rows = []
    for round_number in range(1, args.rounds + 1):
        server = start_server(log_path)
        try:
            first = post(token, window)
            warm = statistics.median(post(token, window) for _ in range(5))
            # Other windows (a day later each round and each time): their sums are not kept yet.
            fresh = statistics.median(
                post(token, {**window, "time_period": f"2024-07-{3 * round_number + i:02d}T00:00:00Z"}) for i in range(3)
            )
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        rows.append((first, warm, fresh))
        print(f"round {round_number}: first request {first:.0f} ms; again (kept sums) {warm:.1f} ms; "
              f"another window in the warm worker {fresh:.0f} ms; first / another window {first / fresh:.2f}x",
              flush=True)
    print("load after", os.getloadavg())
    print("hook lines:", [line for line in log_path.read_text().splitlines() if "warm-up" in line][-1:])


if __name__ == "__main__":
    main()
