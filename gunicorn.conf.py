"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py cdp_site.wsgi`.

Everything can be overridden from the environment (GUNICORN_*), see docs/DEPLOYMENT.md.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# The views are short and database-bound; two processes per core plus one is the usual rule.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# gthread workers keep clients' connections alive (sync workers close each one after its
# request) and let a process answer a second request while the first waits for the database.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "2"))  # more than 1 makes a "sync" class gthread
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# A 10,000-record batch takes about a second; a request still running after this is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Restart workers now and then so that a slow leak never grows into an outage. Not too often:
# a new worker costs about a second of CPU (imports, connections, the warm-up below), which
# every 5,000 requests was 0.2 ms of CPU a request on a 2-core machine under load.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
# Large uploads and batches are buffered by the reverse proxy, not by gunicorn.
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Django writes one JSON line per request (with its request id); gunicorn's own access log
# would repeat it, so it is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


# Requests a worker serves in-process before its first real one (issue #16: the first request
# after a restart took 1.2 s where a warm one takes a few ms). They import and build what every
# request needs once per process: the URLconf and the views it names, DRF's settings, renderers
# and exception handling, the template engine and the dashboard's base templates, a database
# connection and its first queries, the caches' clients. Neither reads nor writes data: the health check, an
# unauthenticated report query (401, before any throttle counts it) and the login page. Each
# carries X-Request-ID "warm-up", so the request log tells them apart.
WARM_UP_REQUESTS = [
    ("GET", "/api/health/", b""),
    ("POST", "/api/query-transaction-range", b'{"min_amount": 0, "max_amount": 1}'),
    ("POST", "/api/top-customers", b'{"state": "x"}'),
    ("GET", "/accounts/login/", b""),
]


def post_worker_init(worker):
    import io
    import time
    from wsgiref.util import setup_testing_defaults

    from django.conf import settings
    from django.db import connections

    from cdp_site.workers import freeze_what_start_up_made

    started = time.perf_counter()
    statuses = []
    # A host name the site answers to ("*" and ".example.com" are patterns, not names).
    host = next((name.lstrip(".") for name in settings.ALLOWED_HOSTS if name != "*"), "localhost")
    for method, path, body in WARM_UP_REQUESTS:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SERVER_NAME": host,
            "HTTP_HOST": host,
            "HTTP_X_REQUEST_ID": "warm-up",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            # Where HTTPS is required, a plain request would only be redirected.
            "wsgi.url_scheme": "https" if settings.SECURE_SSL_REDIRECT else "http",
        }
        setup_testing_defaults(environ)
        try:
            response = worker.wsgi(environ, lambda status, headers, exc_info=None: statuses.append(status.split()[0]))
            for _ in response:
                pass
            getattr(response, "close", lambda: None)()
        except Exception as exc:  # a warm-up must never keep the worker from serving
            worker.log.warning("warm-up request %s %s failed: %r", method, path, exc)
    if statuses[:1] != ["200"]:
        # The database is not answering (the health check says so): no more waiting on it here,
        # the worker serves (503s) at once and connects when the database is back.
        connections.close_all()
        freeze_what_start_up_made()
        worker.log.info("warm-up cut short in %.0f ms (%s)", (time.perf_counter() - started) * 1000, " ".join(statuses))
        return
    # The caches are imported and connected on first use (the Redis client alone takes ~170 ms
    # to import): one read of each.
    from django.core.cache import caches

    for alias in settings.CACHES:
        try:
            caches[alias].get("warm-up")
        except Exception as exc:
            worker.log.warning("warm-up read of cache %s failed: %r", alias, exc)
    # A sync worker serves in this thread and keeps the connection. A gthread worker serves in
    # its pool's threads, and database connections belong to their thread: close this one and
    # open one in each of the pool's threads (each keeps it for CONN_MAX_AGE), all at once, so
    # that each task gets a thread of its own.
    pool = getattr(worker, "tpool", None)
    if pool is not None:
        connections.close_all()
        import threading
        from concurrent.futures import wait

        threads = max(1, worker.cfg.threads)
        all_started = threading.Barrier(threads)

        def connect() -> None:
            all_started.wait(timeout=5)
            connections["default"].ensure_connection()

        for future in wait([pool.submit(connect) for _ in range(threads)], timeout=10).done:
            if future.exception() is not None:
                worker.log.warning("warm-up connection failed: %r", future.exception())
    freeze_what_start_up_made()
    worker.log.info("warm-up done in %.0f ms (%s)", (time.perf_counter() - started) * 1000, " ".join(statuses))

