"""Settings of the test runs: production's, plus what only tests need.

Both runners choose it: pytest-django through pytest.ini, `manage.py test` through manage.py.
Processes a test starts (gunicorn, the import worker) inherit DJANGO_SETTINGS_MODULE, so they
run with these settings too and can check the passwords the tests hashed.
"""

import os

from .settings import *  # noqa: F403
from .settings import BASE_DIR, DATABASES, LOGGING

# Hashing a password with PBKDF2 costs ~0.1 s of CPU per user; tests create hundreds of users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One log line per request would drown the test output (CDP_REQUEST_LOG=on brings it back).
if os.environ.get("CDP_REQUEST_LOG", "off").lower() in {"0", "false", "no", "off"}:
    LOGGING["loggers"]["cdp.requests"]["level"] = "WARNING"
    os.environ.setdefault("CDP_REQUEST_LOG", "off")  # for the servers the tests start


def _test_database(database: dict) -> dict:
    vendor = database["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "mysql":
        # The collation the migrations expect of a production database created as README says.
        return {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    if vendor == "sqlite3":
        # A file, not Django's in-memory default, so that tests with threads and the servers
        # and workers a test starts share one database; named per process so that two runs side
        # by side (or pytest-xdist's workers, which add their own suffix) never share it.
        return {"NAME": str(BASE_DIR / f".test-db-{os.getpid()}.sqlite3")}
    return {}


DATABASES["default"]["TEST"] = _test_database(DATABASES["default"])

# Django's runner, with per-worker SQLite clones that work in WAL mode (`manage.py test --parallel`).
TEST_RUNNER = "cdp_site.test_runner.TestRunner"
