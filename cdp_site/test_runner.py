"""`manage.py test`'s runner: Django's, with SQLite clones that hold the migrated tables.

`manage.py test --parallel` clones the SQLite test database per worker by copying its file.
The test database runs in WAL mode, as production does, and right after the migrations their
pages may still sit in the `-wal` file beside it, so a plain copy is an empty database
("no such table"). Checkpointing first writes them into the file that is copied.
"""

from __future__ import annotations

from unittest import mock

from django.db.backends.sqlite3.creation import DatabaseCreation
from django.test.runner import DiscoverRunner

_clone_sqlite_file = DatabaseCreation._clone_test_db


def _clone_after_checkpoint(creation: DatabaseCreation, *args, **kwargs):
    if not creation.is_in_memory_db(creation.connection.settings_dict["NAME"]):
        with creation.connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return _clone_sqlite_file(creation, *args, **kwargs)


class TestRunner(DiscoverRunner):
    def setup_databases(self, **kwargs):
        with mock.patch.object(DatabaseCreation, "_clone_test_db", _clone_after_checkpoint):
            return super().setup_databases(**kwargs)

    def teardown_databases(self, old_config, **kwargs):
        # The threads that read reports in parts keep connections of their own (PostgreSQL
        # would refuse to drop the test database while they are open).
        from transactions.parts import close_part_readers
        from transactions.services.batch_parts import close_part_writers

        close_part_readers()
        close_part_writers()
        super().teardown_databases(old_config, **kwargs)
