"""How ``cdp_site.settings`` configures the database from the environment."""

from __future__ import annotations

import os
from unittest import mock

from django.test import SimpleTestCase
from MySQLdb.constants import CLIENT

from cdp_site import settings as project_settings

MYSQL_URL = "mysql://cdp:secret@db1:3306/cdp"


class MySQLStatementBatchingTests(SimpleTestCase):
    def database(self, **environment: str) -> dict:
        cleared = {name: "" for name in ("CDP_DATABASE_HOSTS", "CDP_WSREP_SYNC_WAIT")}
        with mock.patch.dict(os.environ, {**cleared, "DATABASE_URL": MYSQL_URL, **environment}):
            return project_settings.database_from_environment()

    def test_one_server_takes_several_statements_a_round_trip(self):
        flags = self.database()["OPTIONS"]["client_flag"]
        self.assertTrue(flags & CLIENT.MULTI_STATEMENTS)
        self.assertTrue(flags & CLIENT.FOUND_ROWS)

    def test_a_galera_cluster_gets_one_statement_a_round_trip(self):
        # A transaction a replicated write aborts between two statements of one packet must
        # learn of it before the next statement runs (see settings.database_from_environment).
        for environment in ({"CDP_DATABASE_HOSTS": "db1:3306,db2:3306"}, {"CDP_WSREP_SYNC_WAIT": "1"}):
            with self.subTest(environment=environment):
                database = self.database(**environment)
                self.assertFalse(database["OPTIONS"]["client_flag"] & CLIENT.MULTI_STATEMENTS)
                self.assertTrue(database["OPTIONS"]["client_flag"] & CLIENT.FOUND_ROWS)
                self.assertEqual(database["WSREP_SYNC_WAIT"], 1)
