"""Django's connection health checks, without a round trip on every request of a busy connection.

With ``CONN_HEALTH_CHECKS`` Django checks a persistent connection before each request's first
query (MySQL: a ``ping``, PostgreSQL: ``SELECT 1``): one more round trip on every request, a
quarter of a single ingest's. What the check is for is a connection that went stale while
idle: the server restarted, a proxy or ``wait_timeout`` dropped it. So here a connection that
served a request without an error less than ``HEALTH_CHECK_GRACE_SECONDS`` ago (the database
setting, default 1 s) is taken as good, and only one idle longer is checked. A connection that
had an error is checked (and dropped if dead) at the end of that request, as Django does;
what is given up is a check for a server that died in the last second, whose request would
have failed in the same second anyway (its 503 says to retry, and the next request
reconnects).
"""

from __future__ import annotations

import time

DEFAULT_GRACE_SECONDS = 1.0


class RecentlyCheckedConnection:
    """Mixin for a backend's ``DatabaseWrapper`` (before it in the bases)."""

    _served_at: float | None = None  # when a request that used the connection last ended well
    _used = False  # whether the connection has made a cursor since the last request boundary

    def create_cursor(self, name=None):
        self._used = True
        return super().create_cursor(name)

    def close_if_unusable_or_obsolete(self):
        # Called by Django at the start and at the end of every request.
        now = time.monotonic()
        served_at, used = self._served_at, self._used
        recently_fine = (
            self.connection is not None
            and not self.errors_occurred
            and served_at is not None
            and now - served_at < self.settings_dict.get("HEALTH_CHECK_GRACE_SECONDS", DEFAULT_GRACE_SECONDS)
        )
        super().close_if_unusable_or_obsolete()
        if self.connection is None:
            self._served_at, self._used = None, False
            return
        if used and not self.errors_occurred:
            self._served_at = now
        self._used = False
        if recently_fine:
            self.health_check_done = True

    def close(self):
        super().close()
        self._served_at, self._used = None, False
