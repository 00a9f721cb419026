"""Django's PostgreSQL backend, with health checks skipped on a connection busy serving
requests (``cdp_site.backends.health``)."""

from __future__ import annotations

from django.db.backends.postgresql import base

from ..health import RecentlyCheckedConnection


class DatabaseWrapper(RecentlyCheckedConnection, base.DatabaseWrapper):
    pass
