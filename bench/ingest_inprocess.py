"""Single-record ingest in-process: the app's own CPU a request, without a server or a client.

    .venv/bin/python bench/ingest_inprocess.py [--requests 3000] [--rounds 3] [--profile]

Uses the database of bench/ingest_vs_peer.py (cdp_ingest_bench on MariaDB, its bench-ingest
user and token: run that once first) and its 5,000 records. Each round empties our tables and
sends --requests records, one a request, through Django's WSGI handler with the token, as
gunicorn would hand them over (full middleware, DRF, the service, the database); prints the
process's CPU time and the wall time a request. --profile prints cProfile's top functions of
one more round instead.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp_site.settings")
os.environ.setdefault("DATABASE_URL", "mysql://root@127.0.0.1:3306/cdp_ingest_bench")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-" + "x" * 40)
os.environ.update(CDP_THROTTLE_USER="none", CDP_THROTTLE_ANON="none", CDP_REQUEST_LOG="off")

import django  # noqa: E402

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

try:
    from cdp_site.workers import freeze_what_start_up_made  # noqa: E402
except ImportError:  # a tree from before 7 Dec 2026, timed for comparison
    def freeze_what_start_up_made() -> None:
        pass

TABLES = ["transactions_transaction", "transactions_customerpincodetotal", "transactions_customer",
          "transactions_monthlytotaldelta", "transactions_pincodetotaldelta"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    app = WSGIHandler()
    token = Token.objects.get(user__username="bench-ingest").key
    lines = (ROOT / "bench" / "out" / "ingest-5000.jsonl").read_bytes().splitlines()[: args.requests + 1]

    def call(body: bytes) -> str:
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/ingest-data", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1", "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json", "HTTP_ACCEPT": "*/*",
            "HTTP_AUTHORIZATION": f"Token {token}", "wsgi.url_scheme": "http", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.errors": sys.stderr, "REMOTE_ADDR": "127.0.0.1",
        }
        statuses = []
        b"".join(app(environ, lambda status, headers: statuses.append(status)))
        return statuses[0]

    def one_round() -> tuple[float, float, dict]:
        with connection.cursor() as cursor:
            cursor.execute("SET FOREIGN_KEY_CHECKS=0")
            for table in TABLES:
                cursor.execute(f"TRUNCATE TABLE {table}")
            cursor.execute("SET FOREIGN_KEY_CHECKS=1")
        call(lines[0])
        statuses: dict[str, int] = {}
        cpu, wall = time.process_time(), time.perf_counter()
        for body in lines[1:]:
            status = call(body)
            statuses[status] = statuses.get(status, 0) + 1
        count = len(lines) - 1
        return (time.process_time() - cpu) / count * 1000, (time.perf_counter() - wall) / count * 1000, statuses

    one_round()  # warm: imports, the URLconf, the kept credentials
    freeze_what_start_up_made()  # as a gunicorn worker does after its warm-up
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.enable()
        one_round()
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        return
    for number in range(1, args.rounds + 1):
        cpu, wall, statuses = one_round()
        print(f"round {number}: {cpu:.3f} ms CPU, {wall:.3f} ms wall a request; {statuses}; "
              f"load {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
