"""Settings for the CDP project.

Everything machine-specific or secret comes from the environment, with defaults that let a
newcomer run the project on SQLite with nothing else installed. See README.md for the list.
"""

import os
import warnings
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

# An unset SECRET_KEY falls back to a key that `manage.py check --deploy` flags as insecure,
# so tests and a first `make run` work, while a production deploy cannot pass unnoticed.
SECRET_KEY = os.environ.get("SECRET_KEY") or "django-insecure-development-only-key-set-SECRET_KEY"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "simple_history",
    "django_tasks",
    "django_tasks_db",
    "transactions",
]

MIDDLEWARE = [
    "cdp_site.request_logging.RequestIdMiddleware",
    "transactions.api.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "cdp_site.csp.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "cdp_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "cdp_site.wsgi.application"


# Database: DATABASE_URL picks it; unset means the embedded SQLite file. How the test runs name
# their databases is in settings_test.py.
def database_from_environment() -> dict:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
    database = dj_database_url.parse(url, conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")))
    database["CONN_HEALTH_CHECKS"] = True  # skipped while a connection is busy: cdp_site/backends/health.py
    options = database.setdefault("OPTIONS", {})
    connect_timeout = int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5"))
    vendor = database["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "mysql":
        options.setdefault("charset", "utf8mb4")
        # Strict mode makes MySQL refuse bad data instead of truncating it silently.
        options.setdefault("init_command", "SET sql_mode='STRICT_ALL_TABLES'")
        options.setdefault("connect_timeout", connect_timeout)
        # Django's own FOUND_ROWS, and MULTI_STATEMENTS: a single ingest's writes go to the
        # server in two round trips instead of five (transactions/services/rows.py). Not on a
        # Galera cluster: there a transaction aborted by a replicated write (a "BF abort")
        # between two statements of one packet was seen to let the packet's later statements
        # run and commit outside it (tests/cluster: a write answered 201 but not stored, a
        # per-pincode delta stored without its transaction), so each statement goes alone and
        # learns of the abort.
        from MySQLdb.constants import CLIENT

        cluster = cluster_settings()
        options.setdefault("client_flag", CLIENT.FOUND_ROWS | (0 if cluster else CLIENT.MULTI_STATEMENTS))
        # LOAD DATA LOCAL INFILE: big batches and file imports load their rows through it
        # (transactions/services/bulk.py). The app names only files it wrote itself.
        options.setdefault("local_infile", 1)
        database["ENGINE"] = "cdp_site.backends.mysql"
        database.update(cluster)
    elif vendor == "postgresql":
        database["ENGINE"] = "cdp_site.backends.postgresql"
        options.setdefault("connect_timeout", connect_timeout)
    elif vendor == "sqlite3":
        # IMMEDIATE transactions take the write lock up front, so two writers queue on the
        # busy timeout instead of one failing with "database is locked" half-way through.
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 20)
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    return database


def cluster_settings() -> dict:
    """A Galera cluster's nodes (``CDP_DATABASE_HOSTS``) and read-your-writes across them
    (``CDP_WSREP_SYNC_WAIT``), served by ``cdp_site.backends.mysql``; with neither set, that
    backend serves the one server as Django's own does."""
    hosts = []
    for entry in env_list("CDP_DATABASE_HOSTS", ""):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(f"CDP_DATABASE_HOSTS takes host:port,host:port, not {entry!r}")
        hosts.append((host, int(port)))
    sync_wait = os.environ.get("CDP_WSREP_SYNC_WAIT", "")
    if not hosts and not sync_wait:
        return {}
    if sync_wait and not sync_wait.isdigit():
        raise ImproperlyConfigured(f"CDP_WSREP_SYNC_WAIT must be a number (wsrep_sync_wait), not {sync_wait!r}")
    return {
        "HOSTS": hosts,
        # 1: reads wait for the writes the cluster committed before them.
        "WSREP_SYNC_WAIT": int(sync_wait or 1),
    }


DATABASES = {"default": database_from_environment()}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Serving straight from the finders spares a newcomer `collectstatic`; production collects.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)
# Before the first collectstatic there is no STATIC_ROOT; the finders serve everything then.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# JSON bodies of the API: a batch of 10,000 records fits in 10 MB.
CDP_MAX_JSON_BODY_BYTES = int(os.environ.get("CDP_MAX_JSON_BODY_BYTES", str(10 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = CDP_MAX_JSON_BODY_BYTES
CDP_MAX_BATCH_RECORDS = 10_000

# File imports (POST /api/imports/): stored outside the static and media folders, processed by
# the background worker (`manage.py import_worker`), deleted after the retention period by
# `manage.py prune_imports`.
CDP_IMPORT_DIR = Path(os.environ.get("CDP_IMPORT_DIR", BASE_DIR / "var" / "imports"))
CDP_MAX_UPLOAD_BYTES = int(os.environ.get("CDP_MAX_UPLOAD_BYTES", str(2 * 1024**3)))
CDP_IMPORT_RETENTION_DAYS = int(os.environ.get("CDP_IMPORT_RETENTION_DAYS", "7"))
# Rows a chunk commits at once. Set-based (MariaDB/MySQL, services.bulk), a chunk costs a few
# statements whatever its size, and bigger ones meet each customer fewer times; 50,000 keeps the
# worker under 250 MB with two chunks in flight and one being read (226 MB peak at a million rows;
# docs/PERFORMANCE.md, "Set-based import" and the fifth session of 7 Dec).
CDP_IMPORT_CHUNK_ROWS = int(os.environ.get("CDP_IMPORT_CHUNK_ROWS", "50000"))
# Each chunk is written in this many parts at once, split by customer (so that no two parts
# wait for each other's row locks), each on a connection of its own, where the database has
# row locks (MySQL/MariaDB, PostgreSQL; SQLite writes one at a time). With one writer the
# server worked on one core while the worker's validation used the other only half the time
# (docs/PERFORMANCE.md, "File import in parts"). 1 turns it off.
CDP_IMPORT_WRITERS = int(os.environ.get("CDP_IMPORT_WRITERS", "2"))
# A JSON batch of services.batch_parts.MIN_RECORDS or more is written in this many parts at
# once, split as an import's chunk is, and committed as one by two-phase commit (XA), where the
# database has both (a single MariaDB/MySQL server). 1 turns it off.
CDP_BATCH_WRITERS = int(os.environ.get("CDP_BATCH_WRITERS", "2"))
# A window's sums (the range report of a window not asked before; the top customers of a state
# in a window) are read in this many parts at once, each on a connection of its own, where that
# is faster than one statement (MySQL/MariaDB, PostgreSQL: sql reads_faster_in_parts). 1 turns it off.
CDP_REPORT_PARTS = int(os.environ.get("CDP_REPORT_PARTS", str(min(4, os.cpu_count() or 1))))
# A running import whose worker has not reported for this long is taken to have died.
CDP_IMPORT_STALE_SECONDS = int(os.environ.get("CDP_IMPORT_STALE_SECONDS", "60"))
# Uploads over this size are spooled to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

TASKS = {
    "default": {
        # The database backend needs no broker; CDP_TASKS_BACKEND=immediate runs tasks inline.
        "BACKEND": {
            "database": "django_tasks_db.DatabaseBackend",
            "immediate": "django_tasks.backends.immediate.ImmediateBackend",
        }[os.environ.get("CDP_TASKS_BACKEND", "database")],
        "QUEUES": ["default"],
    }
}


def throttle_rate(name: str, default: str) -> str | None:
    """A DRF rate such as ``100/minute``; ``none`` switches that throttle off."""
    raw = os.environ.get(name, default).strip()
    return None if raw.lower() in {"", "none", "off"} else raw


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first, so a request without credentials gets 401 with WWW-Authenticate. DRF's
        # TokenAuthentication, with the token, its user and the permissions kept per process.
        "transactions.api.authentication.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["transactions.api.renderers.ExactDecimalJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["transactions.api.parsers.ExactDecimalJSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "transactions.api.negotiation.ContentNegotiation",
    "DEFAULT_THROTTLE_CLASSES": [
        "transactions.api.throttling.AnonRateThrottle",
        "transactions.api.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": throttle_rate("CDP_THROTTLE_ANON", "60/minute"),
        "user": throttle_rate("CDP_THROTTLE_USER", "6000/minute"),
    },
    "EXCEPTION_HANDLER": "transactions.api.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CDP API",
    "DESCRIPTION": "Customer data platform: ingest transactions, query spend ranges and top customers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "IngestStatusEnum": "transactions.api.serializers.INGEST_STATUS_CHOICES",
        "ImportStatusEnum": "transactions.models.ImportJob.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "transactions.api.schema.use_contract_paths",
        "transactions.api.schema.document_error_responses",
    ],
}

# Two caches. "default" holds what every process must see alike: the API's throttle counters and
# the failed-login counts (a per-process cache would give a client N times the limit with N
# gunicorn workers). It is a table of the database itself unless CACHE_URL (or REDIS_URL) names a
# Redis server, so a newcomer needs no other server. "dashboard" keeps computed report figures
# under keys that carry a data version, so a per-process copy is never stale; with Redis it is
# shared too. The cache table is made by `migrate` (transactions/apps.py).
CACHE_TABLE = "cdp_cache"


def caches_from_environment() -> dict:
    url = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL")
    prefix = os.environ.get("CACHE_KEY_PREFIX", "cdp")
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ImproperlyConfigured(f"CACHE_URL must be a redis://, rediss:// or unix:// URL, not {url!r}")
        redis = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "KEY_PREFIX": prefix}
        return {"default": redis, "dashboard": {**redis, "KEY_PREFIX": f"{prefix}-dashboard"}}
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            "KEY_PREFIX": prefix,
            # Throttle counters are one entry per user and per address. Django's database cache
            # counts its rows on every write and culls past this, so it bounds that count's cost
            # too (an active client's counter may be culled early beyond 10,000 clients a minute:
            # use Redis there).
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        },
        "dashboard": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "cdp-dashboard"},
    }


CACHES = caches_from_environment()

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cdp_site.request_logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        # One line per request; CDP_REQUEST_LOG=off silences it (the test runs do).
        "cdp.requests": {"level": "INFO" if env_bool("CDP_REQUEST_LOG", True) else "WARNING"},
        # 4xx answers are part of the contract, not warnings worth a second line.
        "django.request": {"level": "ERROR"},
    },
}

# Password guessing: after this many failed logins for a username or from an address within
# the window, logins are refused until the window has passed.
AUTHENTICATION_BACKENDS = ["cdp_site.login_throttle.ThrottledModelBackend"]
CDP_LOGIN_FAILURE_LIMIT = int(os.environ.get("CDP_LOGIN_FAILURE_LIMIT", "5"))
CDP_LOGIN_FAILURE_WINDOW_SECONDS = int(os.environ.get("CDP_LOGIN_FAILURE_WINDOW_SECONDS", "900"))

# Production hardening. CDP_HTTPS=1 for a deployment behind TLS: secure cookies, redirect to
# HTTPS, trust the proxy's X-Forwarded-Proto; HSTS only when CDP_HSTS_SECONDS is set as well.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
CDP_HTTPS = env_bool("CDP_HTTPS", False)
SESSION_COOKIE_SECURE = CDP_HTTPS
CSRF_COOKIE_SECURE = CDP_HTTPS
SECURE_SSL_REDIRECT = CDP_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^api/health/?$"]  # the load balancer's probe speaks plain HTTP
if CDP_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content Security Policy (django-csp): scripts and styles only from this site's own static
# files (no inline script anywhere), which the dashboard, the admin and Swagger UI (its split
# view) all satisfy.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        # Chart.js and Swagger UI set element styles at run time; inline styles cannot run code.
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
SECURE_HSTS_SECONDS = int(os.environ.get("CDP_HSTS_SECONDS", "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CDP_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("CDP_HSTS_PRELOAD", SECURE_HSTS_SECONDS > 0)
