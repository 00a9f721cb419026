"""Builders for the dashboard tests: stored transactions and logged-in browser clients."""

from __future__ import annotations

from django.core.cache import cache
from django.test import Client

from tests.support import make_user, record
from transactions import services
from transactions.validation import parse_transaction_record

VIEWER = ("view_transaction",)
ANALYST = ("view_transaction", "add_transaction")


def store(*records: dict) -> None:
    """Store records through the ingest service, as the API and the file import do."""
    services.ingest_transactions(records=[parse_transaction_record(raw) for raw in records])


def logged_in_client(username: str, *, permissions: tuple[str, ...] = ANALYST, is_staff: bool = False) -> Client:
    user = make_user(username, permissions=permissions, is_staff=is_staff)
    client = Client()
    client.force_login(user)
    return client


class DashboardTestMixin:
    """`self.client` is an analyst's browser session; the dashboard cache starts empty."""

    def setUp(self):
        super().setUp()
        cache.clear()
        self.client = logged_in_client("analyst")

    def htmx_get(self, url: str, data=None):
        return self.client.get(url, data, headers={"HX-Request": "true"})


__all__ = ["ANALYST", "VIEWER", "DashboardTestMixin", "logged_in_client", "record", "store"]
