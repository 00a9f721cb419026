"""Shared builders for the tests: a valid record, API users with and without permissions."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

API_PERMISSIONS = ("add_transaction", "view_transaction")


def record(**overrides) -> dict:
    """A valid transaction record as a client would send it; keyword arguments replace fields."""
    body = {
        "customer_id": 101,
        "name": "amit",
        "transaction_amount": "1500.75",
        "mob_no": "9876543210",
        "transaction_datetime": "2024-09-24T15:30:00Z",
        "pincode": "110001",
        "state": "Delhi",
    }
    body.update(overrides)
    return body


def make_user(username: str, *, permissions: tuple[str, ...] = API_PERMISSIONS, is_staff: bool = False) -> User:
    user = User.objects.create_user(username=username, password="a-long-test-password", is_staff=is_staff)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="transactions", codename__in=permissions)
    )
    return user


def token_client(user: User) -> APIClient:
    """An API client that authenticates with the user's token, as a real REST client does."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


class ApiClientMixin:
    """Gives a TestCase `self.api`, a token client of a user with the ingest and view permissions.

    The throttle counters live in the cache, which outlives a test; clearing it keeps one
    test's requests from counting against the next.
    """

    def setUp(self):
        super().setUp()
        cache.clear()
        self.user = make_user("api-client")
        self.api = token_client(self.user)

    def ingest(self, body, **extra):
        return self.api.post("/api/ingest-data", body, format="json", **extra)

    def range_query(self, body):
        return self.api.post("/api/query-transaction-range", body, format="json")

    def top_customers(self, body):
        return self.api.post("/api/top-customers", body, format="json")
