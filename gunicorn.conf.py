"""gunicorn settings for production: `gunicorn -c gunicorn.conf.py cdp_site.wsgi`.

Everything can be overridden from the environment (GUNICORN_*), see docs/DEPLOYMENT.md.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Sync workers: the views are short and database-bound; two per core plus one is the usual rule.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
# A 10,000-record batch takes about a second; a request still running after this is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = 30
# Restart workers now and then so that a slow leak never grows into an outage.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = 500
# Large uploads and batches are buffered by the reverse proxy, not by gunicorn.
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Django writes one JSON line per request (with its request id); gunicorn's own access log
# would repeat it, so it is off unless asked for.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
