"""The reports over HTTP beside the peer (../shared/peer), same machine, same rows, same client.

    .venv/bin/python bench/report_data.py --peer peer_reports        # the peer's table, once
    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench_reports .venv/bin/python bench/reports_vs_peer.py

Starts the peer (../shared/peer/start.sh on database --peer-db, 2 workers) and our gunicorn
(gunicorn.conf.py, 2 workers, throttles off), then runs rounds A (peer), B (ours), A, B...:
each request is sent --repeat times (a new connection each) and the median kept. "cold" for
ours means a query it has not answered before (each request moves min_amount by a cent or the
window's end by a second: its sums are not kept yet); the peer keeps nothing, so every request
of its is cold. The queries:

* range, a window holding half the rows (up to 2024-06-30), 10,000-200,000: the whole answer
  (the peer always sends it whole; it sums single rows filtered by amount, a wrong answer),
  and ours with `limit` 100;
* range, all time, whole answer;
* top customers of the largest state (Uttar Pradesh), default limit; ours also with `limit`
  100 and a window (up to 2024-06-30).

Prints each round, the medians and the ratios ours/peer, and the load average.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from gunicorn_server import start_gunicorn, stop_gunicorn

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
PEER_PORT, OUR_PORT = 8102, 8132


def call(port: int, path: str, body: dict, token: str | None = None) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    started = time.perf_counter()
    connection.request("POST", path, json.dumps(body), headers)
    response = connection.getresponse()
    response.read()
    elapsed = (time.perf_counter() - started) * 1000
    connection.close()
    assert response.status == 200, (port, path, response.status)
    return elapsed


def our_token() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from transactions import services

    user, _ = User.objects.get_or_create(username="bench-vs-peer")
    services.assign_role(user=user, role="api-client")
    return Token.objects.get_or_create(user=user)[0].key


def start_ours() -> subprocess.Popen:
    return start_gunicorn(port=OUR_PORT, log_path=ROOT / "bench" / "out" / "reports-vs-peer-gunicorn.log",
                          GUNICORN_WORKERS="2", CDP_REQUEST_LOG="off", CDP_THROTTLE_USER="none", CDP_THROTTLE_ANON="none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--peer-db", default="peer_reports")
    args = parser.parse_args()
    (ROOT / "bench" / "out").mkdir(exist_ok=True)
    token = our_token()
    peer_pid = int(subprocess.run(["bash", str(SHARED / "peer" / "start.sh"), args.peer_db, str(PEER_PORT), "2"],
                                  capture_output=True, text=True, check=True).stdout.split()[-1])
    ours = start_ours()
    window_end, far = "2024-06-30T23:59:59", "2038-01-01T00:00:00"
    fresh = iter(range(1, 10**6))  # a new cent or second for each cold request

    def range_body(end: str, cold: bool, **extra) -> dict:
        minimum = f"10000.{next(fresh) % 100:02d}" if cold else "10000"
        return {"min_amount": minimum, "max_amount": 200000, "time_period": end, **extra}

    def top_body(cold: bool, **extra) -> dict:
        if "time_period" in extra and cold:
            extra["time_period"] = f"2024-06-30T23:{next(fresh) // 60 % 60:02d}:{next(fresh) % 60:02d}"
        return {"state": "Uttar Pradesh", **extra}

    # name -> (peer's request or None, our request maker(cold))
    cases = {
        "range window, whole answer": (lambda: range_body(window_end, False), lambda cold: range_body(window_end, cold)),
        "range window, limit 100": (None, lambda cold: range_body(window_end, cold, limit=100)),
        "range all time, whole answer": (lambda: range_body(far, False), lambda cold: range_body(far, cold)),
        "top customers, largest state": (lambda: top_body(False), lambda cold: top_body(cold)),
        "top customers, limit 100 and a window": (
            None, lambda cold: top_body(cold, limit=100, time_period=window_end)),
    }
    # A request the peer cannot answer (it has no window and no limit) beside the peer's nearest
    # one in the same round: #16's target for the windowed top customers is against the peer's
    # top customers of the same state.
    compared_with = {"top customers, limit 100 and a window": "top customers, largest state"}
    try:
        for _, (peer_request, our_request) in cases.items():  # each query once, unmeasured
            if peer_request:
                call(PEER_PORT, "/" + ("top-customers" if "state" in peer_request() else "query-transaction-range"), peer_request())
            body = our_request(False)
            call(OUR_PORT, "/api/" + ("top-customers" if "state" in body else "query-transaction-range"), body, token)
        print("load before", os.getloadavg(), flush=True)
        results: dict[str, dict[str, list[float]]] = {name: {"peer": [], "warm": [], "cold": []} for name in cases}
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}:", flush=True)
            for name, (peer_request, our_request) in cases.items():
                line = f"  {name}:"
                if peer_request:
                    body = peer_request()
                    path = "/" + ("top-customers" if "state" in body else "query-transaction-range")
                    peer = statistics.median(call(PEER_PORT, path, body) for _ in range(args.repeat))
                    results[name]["peer"].append(peer)
                    line += f" peer {peer:.0f} ms;"
                path = "/api/" + ("top-customers" if "state" in our_request(False) else "query-transaction-range")
                warm = statistics.median(call(OUR_PORT, path, our_request(False), token) for _ in range(args.repeat))
                cold = statistics.median(call(OUR_PORT, path, our_request(True), token) for _ in range(args.repeat))
                results[name]["warm"].append(warm)
                results[name]["cold"].append(cold)
                line += f" ours warm {warm:.1f} ms, cold {cold:.0f} ms"
                if peer_request:
                    line += f" (warm {warm / peer:.3f}x, cold {cold / peer:.2f}x the peer)"
                elif name in compared_with:
                    peer = results[compared_with[name]]["peer"][-1]
                    line += f" (warm {warm / peer:.3f}x, cold {cold / peer:.2f}x the peer's {compared_with[name]})"
                print(line, flush=True)
        print("load after", os.getloadavg())
        print("medians of the rounds:")
        for name, sides in results.items():
            line = f"  {name}:"
            if sides["peer"]:
                line += f" peer {statistics.median(sides['peer']):.0f} ms;"
            line += f" ours warm {statistics.median(sides['warm']):.1f} ms, cold {statistics.median(sides['cold']):.0f} ms"
            peers = sides["peer"] or (results[compared_with[name]]["peer"] if name in compared_with else [])
            if peers:
                ratios = sorted(c / p for c, p in zip(sides["cold"], peers))
                warm_ratios = sorted(w / p for w, p in zip(sides["warm"], peers))
                line += (f"; cold/peer {ratios[0]:.2f}-{ratios[-1]:.2f}, "
                         f"warm/peer {warm_ratios[0]:.3f}-{warm_ratios[-1]:.3f}")
                if not sides["peer"]:
                    line += f" (the peer's {compared_with[name]})"
            print(line)
    finally:
        stop_gunicorn(ours)
        subprocess.run(["kill", str(peer_pid)])


if __name__ == "__main__":
    main()
