"""Dashboard pages: server time of each page, beside the API's time for the same query.

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench_reports .venv/bin/python bench/pages.py [--cold 3 --repeat 10]

Uses the data set of bench/report_data.py (or bench/run.py, bench/imports.py). Each page is
requested in-process through Django's test client (full middleware, templates and queries; no
network): --cold times right after emptying every cache (the report's kept sums included;
median and slowest), then --repeat times more without ("warm"; p50/p95). A report page is
timed beside the API request asking the same query (the range report's first page is the
API's `limit` 50; a top-customers page is the same POST /api/top-customers), measured the same
way and interleaved with it; the ratio page/API is of the warm medians (cold in brackets). The
HTML size of each page is printed too. Every page and request is made once before the
measurements, so that "cold" is an empty cache in a process that has compiled its templates
and holds its database connection, as a worker serving traffic does; then what start-up made
is frozen out of the garbage collector's full passes, as a gunicorn worker does after its
warm-up (--no-freeze leaves it: a full pass then shows as a 50-70 ms warm p95 on the pages
that make many objects).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
os.environ.setdefault("CDP_REQUEST_LOG", "off")
os.environ.setdefault("CDP_THROTTLE_USER", "none")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from cdp_site.workers import freeze_what_start_up_made  # noqa: E402
from transactions import selectors, services  # noqa: E402
from transactions.models import Customer  # noqa: E402

WINDOW_END = "2024-06-30T23:59:59"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--no-freeze", action="store_true", help="leave the garbage collector as a process starts")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench-analyst")
    services.assign_role(user=user, role="operator")
    services.assign_role(user=user, role="api-client")
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    api = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")

    busiest_customer = Customer.objects.order_by("-transaction_count").values_list("pk", flat=True).first()
    largest = max(selectors.states_with_counts(), key=lambda state: state.transactions)
    state = largest.state
    range_api = {"min_amount": 50000, "max_amount": 200000, "limit": 50}
    # (name, page path, the API's same query or None)
    pages = [
        ("overview", "/", None),
        ("upload", "/upload/", None),
        ("range report, all time", "/reports/range/?min_amount=50000&max_amount=200000", ("range", range_api)),
        ("range report, window to 2024-06-30",
         f"/reports/range/?min_amount=50000&max_amount=200000&time_period={WINDOW_END}",
         ("range", {**range_api, "time_period": WINDOW_END + "Z"})),
        ("range report, page 20", "/reports/range/?min_amount=50000&max_amount=200000&page=20",
         ("range", {**range_api, "offset": 950})),
        ("range report, window, page 20",
         f"/reports/range/?min_amount=50000&max_amount=200000&time_period={WINDOW_END}&page=20",
         ("range", {**range_api, "offset": 950, "time_period": WINDOW_END + "Z"})),
        ("range report, window, every customer",
         f"/reports/range/?min_amount=0&max_amount=999999999999&time_period={WINDOW_END}",
         ("range", {"min_amount": 0, "max_amount": 999999999999, "limit": 50, "time_period": WINDOW_END + "Z"})),
        ("top customers, state picker", "/reports/top-customers/", None),
        (f"top customers, {state} ({largest.pincodes} pincodes)", f"/reports/top-customers/?state={state}",
         ("top", {"state": state})),
        (f"top customers, {state}, limit 100, window", f"/reports/top-customers/?state={state}&limit=100&time_period={WINDOW_END}",
         ("top", {"state": state, "limit": 100, "time_period": WINDOW_END + "Z"})),
        ("customer (busiest)", f"/customers/{busiest_customer}/", None),
    ]

    def get_page(path: str) -> tuple[float, int]:
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code)
        return elapsed, len(response.content)

    def post_api(query: tuple[str, dict]) -> tuple[float, int]:
        kind, body = query
        path = "/api/query-transaction-range" if kind == "range" else "/api/top-customers"
        started = time.perf_counter()
        response = api.post(path, json.dumps(body), content_type="application/json")
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code)
        return elapsed, len(response.content)

    for _, path, query in pages:
        get_page(path)
        if query:
            post_api(query)
    if not args.no_freeze:
        freeze_what_start_up_made()
    print(f"load before {os.getloadavg()}")
    print(f"{'page':<52} {'cold p50':>8} {'cold max':>8} {'warm p50':>8} {'warm p95':>8} {'HTML KB':>8}"
          f" {'API cold':>8} {'API warm':>8} {'page/API':>8}")
    for name, path, query in pages:
        cold, api_cold = [], []
        for _ in range(args.cold):
            for cache in caches.all():
                cache.clear()
            cold.append(get_page(path)[0])
            if query:
                for cache in caches.all():
                    cache.clear()
                api_cold.append(post_api(query)[0])
        # The last cold API request emptied the caches the page had filled: fill them again
        # first, or the first "warm" page would be a cold one.
        get_page(path)
        if query:
            post_api(query)
        warm, api_warm, size = [], [], 0
        for _ in range(args.repeat):
            elapsed, size = get_page(path)
            warm.append(elapsed)
            if query:
                api_warm.append(post_api(query)[0])
        warm.sort()
        p95 = warm[max(0, math.ceil(len(warm) * 0.95) - 1)]
        line = (f"{name:<52} {statistics.median(cold):>8.1f} {max(cold):>8.1f} {statistics.median(warm):>8.1f} "
                f"{p95:>8.1f} {size / 1024:>8.1f}")
        if query:
            api_cold_median, api_warm_median = statistics.median(api_cold), statistics.median(api_warm)
            line += (f" {api_cold_median:>8.1f} {api_warm_median:>8.1f} {statistics.median(warm) / api_warm_median:>5.2f}"
                     f" ({statistics.median(cold) / api_cold_median:.2f})")
        print(line, flush=True)
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
