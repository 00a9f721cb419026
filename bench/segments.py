"""Customer segments at scale: what a segment costs to count, page, export and compare.

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench .venv/bin/python bench/segments.py --rows 1000000

Uses (or first loads, as bench/run.py does) the generated data set: --rows transactions of
--rows/10 customers over 2023-2025. Saves one segment of each kind (all time, a fixed window,
a relative period, a state, a pincode), then times, in-process through Django's test client
(full middleware, templates and queries; no network):

- the segment's count (``segment_selectors.segment_report``), cold (cache cleared) and warm;
- its dashboard page (members page 1, entered/left against the last export), and page 20;
- ``GET /api/segments/<id>/customers/?limit=100`` and the whole member list;
- its CSV export (a POST: the snapshot is written and every member streamed), and the
  snapshot's size;
- the Segments list (every segment's live count).

Each figure is checked against the range report for the same query before it is timed: a
segment whose count differed would be a bug, not a figure. Prints one line per measurement
and writes bench/out/segments.json; the segments are deleted again at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
os.environ.setdefault("CDP_REQUEST_LOG", "off")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from run import load_data_set  # noqa: E402  (bench/run.py)
from transactions import segment_selectors, selectors, services  # noqa: E402
from transactions.models import CustomerPincodeTotal, Segment  # noqa: E402
from transactions.validation import state_key_for  # noqa: E402

BENCH_PREFIX = "bench: "


def clear_caches() -> None:
    for cache in caches.all():
        cache.clear()


def timed(function, *, cold: int, warm: int) -> dict:
    """Milliseconds of `function()`: `cold` times right after clearing the caches, then `warm`
    times without clearing them."""
    function()  # compiled templates, an open connection: a worker serving traffic
    cold_ms, warm_ms = [], []
    for _ in range(cold):
        clear_caches()
        started = time.perf_counter()
        function()
        cold_ms.append((time.perf_counter() - started) * 1000)
    for _ in range(warm):
        started = time.perf_counter()
        function()
        warm_ms.append((time.perf_counter() - started) * 1000)
    warm_ms.sort()
    return {
        "cold_p50_ms": round(statistics.median(cold_ms), 1),
        "cold_max_ms": round(max(cold_ms), 1),
        "warm_p50_ms": round(statistics.median(warm_ms), 1),
        "warm_p95_ms": round(warm_ms[max(0, math.ceil(len(warm_ms) * 0.95) - 1)], 1),
    }


def segment_definitions() -> list[dict]:
    busiest = (
        CustomerPincodeTotal.objects.values("state_key").order_by("state_key").first() or {"state_key": "maharashtra"}
    )["state_key"]
    state = selectors.state_names().get(busiest, busiest)
    pincode = (
        CustomerPincodeTotal.objects.filter(state_key=state_key_for(state)).order_by("pincode")
        .values_list("pincode", flat=True).first()
    )
    band = {"min_amount": Decimal("50000"), "max_amount": Decimal("200000")}
    return [
        {"name": "all time, 50k-2L", **band},
        {"name": "to 2024-06-30, 50k-2L", **band, "time_period": dt.datetime(2024, 6, 30, 23, 59, 59, tzinfo=dt.timezone.utc)},
        {"name": "last year, 10k-2L", "min_amount": Decimal("10000"), "max_amount": Decimal("200000"), "period": "last-year"},
        {"name": f"{state}, everyone", "min_amount": Decimal("0"), "max_amount": Decimal("999999999999"), "state": state},
        {"name": f"pincode {pincode}, everyone", "min_amount": Decimal("0"), "max_amount": Decimal("999999999999"),
         "pincode": pincode},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=None, help="Default: rows / 10.")
    parser.add_argument("--cold", type=int, default=3)
    parser.add_argument("--warm", type=int, default=10)
    args = parser.parse_args()
    (ROOT / "bench" / "out").mkdir(exist_ok=True)

    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor} {connection.settings_dict['NAME']}")
    load_data_set(args.rows, args.customers or max(1, args.rows // 10))
    user, _ = User.objects.get_or_create(username="bench-analyst")
    services.assign_role(user=user, role="analyst")
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)
    Segment.objects.filter(name__startswith=BENCH_PREFIX).delete()

    results = []

    def report(name: str, figures: dict, **extra) -> None:
        results.append({"measurement": name, **figures, **extra})
        more = "".join(f"  {key} {value}" for key, value in extra.items())
        print(
            f"{name:<58} cold p50 {figures['cold_p50_ms']:>8.1f}  max {figures['cold_max_ms']:>8.1f}"
            f"  warm p50 {figures['warm_p50_ms']:>7.1f}  p95 {figures['warm_p95_ms']:>7.1f} ms{more}",
            flush=True,
        )

    try:
        for definition in segment_definitions():
            query = {key: value for key, value in definition.items() if key != "name"}
            segment = services.create_segment(owner=user, name=BENCH_PREFIX + definition["name"], **query)
            # Equal to the range report for the same query, or the figures mean nothing.
            found = segment_selectors.segment_report(segment)
            expected = selectors.range_report(**segment_selectors.range_report_arguments(**query))
            assert found.summary == expected.summary, definition
            assert list(selectors.customer_ids_of(found.rows)) == list(selectors.customer_ids_of(expected.rows))
            members = found.summary.customers
            label = definition["name"]
            report(f"{label}: count", timed(lambda: segment_selectors.segment_report(segment), cold=args.cold, warm=args.warm),
                   members=members)
            page = f"/segments/{segment.pk}/"
            assert client.get(page).status_code == 200
            report(f"{label}: page", timed(lambda: client.get(page), cold=args.cold, warm=args.warm))
            report(f"{label}: page 20, by name",
                   timed(lambda: client.get(page, {"page": "20", "sort": "name"}), cold=args.cold, warm=args.warm))
            api = f"/api/segments/{segment.pk}/customers/"
            assert client.get(api, {"limit": 100})["X-Total-Count"] == str(members)
            report(f"{label}: API, limit 100", timed(lambda: client.get(api, {"limit": 100}), cold=args.cold, warm=args.warm))
            report(f"{label}: API, every member",
                   timed(lambda: b"".join(client.get(api).streaming_content), cold=args.cold, warm=args.warm))
            export = f"/segments/{segment.pk}/export.csv"
            figures = timed(lambda: b"".join(client.post(export).streaming_content), cold=args.cold, warm=args.warm)
            snapshot = segment.exports.order_by("-id").values_list("member_ids", flat=True).first()
            report(f"{label}: CSV export + snapshot", figures, snapshot_bytes=len(bytes(snapshot)))
        report("Segments list (every live count)", timed(lambda: client.get("/segments/"), cold=args.cold, warm=args.warm),
               segments=Segment.objects.count())
    finally:
        Segment.objects.filter(name__startswith=BENCH_PREFIX).delete()
    (ROOT / "bench" / "out" / "segments.json").write_text(
        json.dumps({"database": connection.vendor, "rows": args.rows, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
