"""Dashboard pages: server time of each page on the benchmark database.

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench .venv/bin/python bench/pages.py

Uses the data set `bench/run.py` loaded. Each page is requested in-process through Django's
test client (full middleware, templates and queries; no network): --cold times with an empty
cache ("cold", each right after clearing it; prints the median and the slowest), then
--repeat times more without clearing it ("warm"; prints p50/p95). Every page is requested
once before the measurements, so that "cold" is a cold cache in a process that has compiled
its templates and holds its database connection, as a worker serving traffic does, and not
the first request a process ever serves.
"""

from __future__ import annotations

import argparse
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

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from transactions import services  # noqa: E402
from transactions.models import Customer, CustomerPincodeTotal  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    user, _ = User.objects.get_or_create(username="bench-analyst")
    services.assign_role(user=user, role="operator")
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)

    busiest_customer = Customer.objects.order_by("-transaction_count").values_list("pk", flat=True).first()
    state = CustomerPincodeTotal.objects.values_list("state_key", flat=True).order_by("state_key").first()
    pages = [
        ("overview", "/"),
        ("upload", "/upload/"),
        ("range report, all time", "/reports/range/?min_amount=50000&max_amount=200000"),
        ("range report, window to 2024-06-30",
         "/reports/range/?min_amount=50000&max_amount=200000&time_period=2024-06-30T23:59:59"),
        ("range report, page 20", "/reports/range/?min_amount=50000&max_amount=200000&page=20"),
        ("range report, window, page 20",
         "/reports/range/?min_amount=50000&max_amount=200000&time_period=2024-06-30T23:59:59&page=20"),
        ("range report, window, every customer",
         "/reports/range/?min_amount=0&max_amount=999999999999&time_period=2024-06-30T23:59:59"),
        ("top customers, state picker", "/reports/top-customers/"),
        ("top customers, one state", f"/reports/top-customers/?state={state}"),
        ("customer (busiest)", f"/customers/{busiest_customer}/"),
    ]
    for _, path in pages:
        assert client.get(path).status_code == 200, path
    print(f"{'page':<40} {'cold p50':>9} {'cold max':>9} {'warm p50':>9} {'warm p95':>9}")
    for name, path in pages:
        cold = []
        for _ in range(args.cold):
            cache.clear()
            started = time.perf_counter()
            response = client.get(path)
            cold.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        warm = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            client.get(path)
            warm.append((time.perf_counter() - started) * 1000)
        warm.sort()
        p95 = warm[max(0, math.ceil(len(warm) * 0.95) - 1)]
        print(
            f"{name:<40} {statistics.median(cold):>9.1f} {max(cold):>9.1f} {statistics.median(warm):>9.1f} {p95:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
