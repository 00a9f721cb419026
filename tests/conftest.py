"""pytest's view of the suite's Django tags.

Tests are tagged the Django way (``@tag("slow")``, see tests/support.py), which
``manage.py test --tag/--exclude-tag`` understands; here every tag also becomes a pytest marker,
so ``pytest -m "not slow"`` selects the same tests.
"""

from __future__ import annotations


def pytest_collection_modifyitems(items):
    for item in items:
        tags = set(getattr(item.cls, "tags", ()) or ()) | set(getattr(item.obj, "tags", ()) or ())
        for name in sorted(tags):
            item.add_marker(name)
