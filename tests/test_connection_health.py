"""Health checks of persistent connections (cdp_site/backends/health.py), on the real server.

Django calls ``close_if_unusable_or_obsolete`` at the start and at the end of every request;
these tests call it the same way around their queries. The server side of a connection is
killed from a second connection, as a database restart or a proxy would drop it.
"""

from __future__ import annotations

import time
from unittest import skipUnless

from django.db import OperationalError, connection, connections
from django.test import TransactionTestCase

from cdp_site.backends.health import RecentlyCheckedConnection


@skipUnless(isinstance(connections["default"], RecentlyCheckedConnection), "SQLite's health check costs no round trip")
class RecentlyCheckedConnectionTests(TransactionTestCase):
    def setUp(self):
        self.checks: list[bool] = []
        real_is_usable = connection.is_usable

        def counted_is_usable() -> bool:
            usable = real_is_usable()
            self.checks.append(usable)
            return usable

        connection.is_usable = counted_is_usable
        self.addCleanup(delattr, connection, "is_usable")
        grace = connection.settings_dict.get("HEALTH_CHECK_GRACE_SECONDS")
        self.addCleanup(self._restore_grace, grace)
        self.assertTrue(connection.health_check_enabled)

    def _restore_grace(self, grace) -> None:
        if grace is None:
            connection.settings_dict.pop("HEALTH_CHECK_GRACE_SECONDS", None)
        else:
            connection.settings_dict["HEALTH_CHECK_GRACE_SECONDS"] = grace

    def request(self) -> int:
        """One request's worth: the boundary Django marks, a query, the boundary again."""
        connection.close_if_unusable_or_obsolete()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            (one,) = cursor.fetchone()
        connection.close_if_unusable_or_obsolete()
        return one

    def kill_the_server_side(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()" if connection.vendor == "mysql" else "SELECT pg_backend_pid()")
            (session,) = cursor.fetchone()
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                if connection.vendor == "mysql":
                    cursor.execute("KILL %s", [session])
                else:
                    cursor.execute("SELECT pg_terminate_backend(%s)", [session])
        finally:
            other.close()
        time.sleep(0.2)  # the server closes the socket

    def test_a_connection_busy_serving_requests_is_not_checked_before_each(self):
        self.assertEqual(self.request(), 1)  # may check: how long ago it served is not known
        self.checks.clear()
        for _ in range(3):
            self.assertEqual(self.request(), 1)
        self.assertEqual(self.checks, [])

    def test_an_idle_connection_is_checked_and_a_dead_one_replaced_before_the_request_uses_it(self):
        connection.settings_dict["HEALTH_CHECK_GRACE_SECONDS"] = 0.05
        self.request()
        self.kill_the_server_side()  # and idle for longer than the grace
        self.checks.clear()
        self.assertEqual(self.request(), 1)
        self.assertEqual(self.checks, [False])  # checked, found dead, replaced: the request never saw it

    def test_a_connection_dropped_within_the_grace_fails_one_request_and_is_replaced_after_it(self):
        connection.settings_dict["HEALTH_CHECK_GRACE_SECONDS"] = 60
        self.request()
        self.kill_the_server_side()
        self.checks.clear()
        connection.close_if_unusable_or_obsolete()
        with self.assertRaises(OperationalError):  # the trade made: the API answers it with a 503
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        connection.close_if_unusable_or_obsolete()  # the request's end: the error makes Django check
        self.assertEqual(self.checks, [False])
        self.assertIsNone(connection.connection)
        self.assertEqual(self.request(), 1)  # the next request reconnects
