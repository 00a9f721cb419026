"""pytest's view of the suite's Django tags.

Tests are tagged the Django way (``@tag("slow")``, see tests/support.py), which
``manage.py test --tag/--exclude-tag`` understands; here every tag also becomes a pytest marker,
so ``pytest -m "not slow"`` selects the same tests.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        tags = set(getattr(item.cls, "tags", ()) or ()) | set(getattr(item.obj, "tags", ()) or ())
        for name in sorted(tags):
            item.add_marker(name)


@pytest.fixture(scope="session", autouse=True)
def _report_part_readers_closed_before_the_test_databases_go(django_db_setup):
    """The threads that read reports in parts keep connections of their own: closed before
    pytest-django drops the test databases (PostgreSQL refuses while one is open)."""
    yield
    from transactions.parts import close_part_readers
    from transactions.services.batch_parts import close_part_writers

    close_part_readers()
    close_part_writers()
