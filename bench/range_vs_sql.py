"""The range report through the API (and the dashboard's export) beside SQL on the same tables, same run.

    DATABASE_URL=mysql://root@127.0.0.1:3306/cdp_bench_reports .venv/bin/python bench/range_vs_sql.py [--rounds 5]

In-process (Django's test client, full middleware), on the data set of bench/report_data.py
(or bench/imports.py). Each round times, interleaved, the best SQL for an answer and ours:

* window, limit 100: POST /api/query-transaction-range for a window holding about half of the
  rows, `limit` 100 (X-Total-Count included), cold (the report cache cleared) and warm (median
  of 5), beside one SQL statement that sums the window per customer, joins the names, filters
  and orders (the whole answer: the count needs it).
* whole answers, streamed (no `limit`): all time (beside the running totals read by SQL) and
  the same window (beside the same statement), the window cold; and the dashboard's CSV export
  of each (`/reports/range/export.csv`), the same floors.

Checks first that each answer equals the SQL's (ids, names and totals). Prints each round, the
ratio ours/SQL, and the load average before and after.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
os.environ.setdefault("CDP_REQUEST_LOG", "off")
os.environ.setdefault("CDP_THROTTLE_USER", "none")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.cache import caches  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from cdp_site.workers import freeze_what_start_up_made  # noqa: E402
from transactions import services  # noqa: E402

MIN, MAX = 10000, 200000
START, END = "2023-01-01T00:00:00Z", "2024-06-30T23:59:59Z"
WINDOW_SQL = f"""SELECT s.customer_id, c.name, s.total FROM (SELECT customer_id, SUM(transaction_amount) AS total
  FROM transactions_transaction WHERE transaction_datetime >= '2023-01-01 00:00:00' AND transaction_datetime <= '2024-06-30 23:59:59'
  GROUP BY customer_id) s JOIN transactions_customer c ON c.customer_id = s.customer_id
  WHERE s.total BETWEEN {MIN} AND {MAX} ORDER BY s.total DESC, s.customer_id"""
ALL_TIME_SQL = (f"SELECT customer_id, name, total_amount FROM transactions_customer WHERE transaction_count > 0 "
                f"AND total_amount BETWEEN {MIN} AND {MAX} ORDER BY total_amount DESC, customer_id")


def ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def sql(statement: str) -> tuple[float, list]:
    # MariaDB plans the join as a "lateral derived" table (the window summed again for each of
    # the 100,000 customers, 2-3 s here); the best plan sums once and joins, so that is the
    # floor (a session setting, only around the statement).
    lateral = statement is WINDOW_SQL and connection.vendor == "mysql" and connection.mysql_is_mariadb
    with connection.cursor() as cursor:
        if lateral:
            cursor.execute("SET SESSION optimizer_switch = 'split_materialized=off'")
        started = time.perf_counter()
        cursor.execute(statement)
        rows = cursor.fetchall()
        elapsed = ms(started)
        if lateral:
            cursor.execute("SET SESSION optimizer_switch = 'split_materialized=default'")
    return elapsed, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-freeze", action="store_true", help="leave the garbage collector as a process starts")
    args = parser.parse_args()
    user, _ = User.objects.get_or_create(username="bench-range")
    services.assign_role(user=user, role="api-client")
    services.assign_role(user=user, role="analyst")
    api = Client(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}", HTTP_HOST="127.0.0.1")
    dashboard = Client(HTTP_HOST="127.0.0.1")
    dashboard.force_login(user)
    report_cache = caches["dashboard"]

    def post(body: dict, *, cold: bool) -> tuple[float, object]:
        if cold:
            report_cache.clear()
        started = time.perf_counter()
        response = api.post("/api/query-transaction-range", json.dumps(body), content_type="application/json")
        content = b"".join(response.streaming_content) if response.streaming else response.content
        elapsed = ms(started)
        assert response.status_code == 200, content[:200]
        return elapsed, (int(response["X-Total-Count"]), json.loads(content, parse_float=Decimal))

    def export(query: dict, *, cold: bool) -> tuple[float, list]:
        if cold:
            report_cache.clear()
        started = time.perf_counter()
        response = dashboard.get("/reports/range/export.csv", query)
        content = b"".join(response.streaming_content)
        elapsed = ms(started)
        assert response.status_code == 200, response.status_code
        return elapsed, list(csv.reader(io.StringIO(content.decode())))[1:]

    page = {"min_amount": MIN, "max_amount": MAX, "start": START, "time_period": END, "limit": 100}
    whole_window = {key: value for key, value in page.items() if key != "limit"}
    whole_all_time = {"min_amount": MIN, "max_amount": MAX}
    export_window = {"min_amount": MIN, "max_amount": MAX, "start": START, "time_period": END}

    def as_tuples(rows) -> list[tuple]:
        return [(row["customer_id"], row["name"], row["total_transaction_amount"]) for row in rows]

    # The same answers first.
    _, window_rows = sql(WINDOW_SQL)
    _, all_time_rows = sql(ALL_TIME_SQL)
    count, first_page = post(page, cold=True)[1]
    assert count == len(window_rows) and as_tuples(first_page) == list(window_rows[:100]), "window page differs"
    assert post(whole_window, cold=True)[1] == (len(window_rows), [
        {"customer_id": c, "name": n, "total_transaction_amount": t} for c, n, t in window_rows
    ]), "whole window differs"
    count, everything = post(whole_all_time, cold=False)[1]
    assert count == len(all_time_rows) and as_tuples(everything) == list(all_time_rows), "whole all time differs"
    for query, rows in ((whole_all_time, all_time_rows), (export_window, window_rows)):
        exported = export(query, cold=True)[1]
        assert exported == [[str(c), n, str(t)] for c, n, t in rows], "export differs"
    print(f"same answers: window {len(window_rows)} customers, all time {len(all_time_rows)}")
    # As a gunicorn worker does after its warm-up (gunicorn.conf.py): what start-up made is
    # kept out of the garbage collector's full passes. --no-freeze times the process without.
    del window_rows, all_time_rows, everything, first_page
    if not args.no_freeze:
        freeze_what_start_up_made()
    print("load before", os.getloadavg())

    results: dict[str, list[tuple[float, float]]] = {}

    def record(name: str, floor: float, ours: float) -> str:
        results.setdefault(name, []).append((floor, ours))
        return f"{name}: SQL {floor:.0f} ms, ours {ours:.0f} ms ({ours / floor:.2f}x)"

    for round_number in range(1, args.rounds + 1):
        lines = []
        floor = sql(WINDOW_SQL)[0]
        lines.append(record("window limit 100, cold", floor, post(page, cold=True)[0]))
        warm = statistics.median(post(page, cold=False)[0] for _ in range(5))
        lines.append(f"window limit 100, warm median of 5: {warm:.1f} ms ({warm / floor:.3f}x)")
        floor = sql(WINDOW_SQL)[0]
        lines.append(record("window whole, cold", floor, post(whole_window, cold=True)[0]))
        floor = sql(ALL_TIME_SQL)[0]
        lines.append(record("all time whole", floor, post(whole_all_time, cold=False)[0]))
        floor = sql(WINDOW_SQL)[0]
        lines.append(record("window CSV export, cold", floor, export(export_window, cold=True)[0]))
        floor = sql(ALL_TIME_SQL)[0]
        lines.append(record("all time CSV export", floor, export(whole_all_time, cold=False)[0]))
        print(f"round {round_number}:\n  " + "\n  ".join(lines), flush=True)
    print("load after", os.getloadavg())
    print("medians of the rounds:")
    for name, pairs in results.items():
        floor, ours = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
        ratios = sorted(o / f for f, o in pairs)
        print(f"  {name}: SQL {floor:.0f} ms, ours {ours:.0f} ms; ratios {ratios[0]:.2f}-{ratios[-1]:.2f}, "
              f"median {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
