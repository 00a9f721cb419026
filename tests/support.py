"""What the tests share, in one place: the tags that pick where a test runs, a valid record,
users with and without permissions, token and browser clients, stored transactions, and the
summary-total assertions.

Users and tokens are cheap here (the test settings hash passwords with MD5), but a class whose
tests all read the same data builds it once, in ``setUpTestData``: the mixins below do.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from unittest import skipUnless

from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncMonth
from django.test import Client, TransactionTestCase, tag
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

CENT = Decimal("0.01")

API_PERMISSIONS = ("add_transaction", "view_transaction")
VIEWER = ("view_transaction",)
ANALYST = ("view_transaction", "add_transaction")

# Where a test runs (README, "Tests"). Untagged tests are about our own logic and run on every
# database. `slow` tests start servers, browsers, workers or databases of their own: `make test`
# runs them once, in the MariaDB pass; `make test-fast` leaves them out. `each_database` marks the
# slow tests whose subject is the database's own behaviour (locking under races, value limits):
# they run in the PostgreSQL pass too. pytest sees the same tags as markers (tests/conftest.py).
slow = tag("slow")
slow_on_each_database = tag("slow", "each_database")


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


def clear_caches() -> None:
    """Empty every cache: the shared one's throttle and login counters outlive a test, and the
    dashboard's figures are keyed by a data version that a rolled-back test can repeat."""
    for cache in caches.all():
        cache.clear()


def token_client(user: User) -> APIClient:
    """An API client that authenticates with the user's token, as a real REST client does."""
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def logged_in_client(username: str, *, permissions: tuple[str, ...] = ANALYST, is_staff: bool = False) -> Client:
    """A browser session of a new user with these permissions."""
    user = make_user(username, permissions=permissions, is_staff=is_staff)
    client = Client()
    client.force_login(user)
    return client


def store(*records: dict) -> None:
    """Store records through the ingest service, as the API and the file import do."""
    from transactions import services
    from transactions.validation import parse_transaction_record

    services.ingest_transactions(records=[parse_transaction_record(raw) for raw in records])


class ApiClientMixin:
    """Gives a TestCase `self.api`, a token client of a user with the ingest and view permissions.

    The user is made once per class (``setUpTestData``); on a TransactionTestCase, which has no
    class-wide data, once per test. The throttle counters live in the cache, which outlives a
    test; clearing it keeps one test's requests from counting against the next.
    """

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.user = make_user("api-client")

    def setUp(self):
        super().setUp()
        clear_caches()
        if not hasattr(self, "user"):  # a TransactionTestCase: no setUpTestData
            self.user = make_user("api-client")
        self.api = token_client(self.user)

    def ingest(self, body, **extra):
        return self.api.post("/api/ingest-data", body, format="json", **extra)

    def range_query(self, body):
        return self.api.post("/api/query-transaction-range", body, format="json")

    def top_customers(self, body):
        return self.api.post("/api/top-customers", body, format="json")


@skipUnless(connection.vendor in ("mysql", "postgresql"), "SQLite reads a report in one statement (sql reads_faster_in_parts)")
class ReportPartsTestCase(ApiClientMixin, TransactionTestCase):
    """A report read in parts at once, each on a connection of its own (``transactions.parts``):
    committed data (other connections see no test transaction), the reports' kept answers cleared."""

    def setUp(self):
        super().setUp()
        caches["dashboard"].clear()
        self.addCleanup(caches["dashboard"].clear)


class DashboardTestMixin:
    """`self.client` is an analyst's browser session (the analyst made once per class); the
    dashboard cache starts empty."""

    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.analyst = make_user("analyst", permissions=ANALYST)

    def setUp(self):
        super().setUp()
        clear_caches()
        self.client = Client()
        self.client.force_login(self.analyst)

    def htmx_get(self, url: str, data=None):
        return self.client.get(url, data, headers={"HX-Request": "true"})


def monthly_totals() -> list[tuple[str, int, Decimal]]:
    """The per-month figures (folded totals plus unfolded deltas) of the months with
    transactions: ("YYYY-MM", count, amount)."""
    from transactions import selectors

    return [
        (row.month.strftime("%Y-%m"), row.transactions, row.total_amount)
        for row in selectors.month_figures() if row.transactions > 0
    ]


def monthly_totals_grouped_from_transactions() -> list[tuple[str, int, Decimal]]:
    """The same figures by a GROUP BY over every stored transaction, by UTC month."""
    from transactions.models import Transaction

    rows = (
        Transaction.objects.annotate(month=TruncMonth("transaction_datetime", tzinfo=dt.timezone.utc))
        .values("month")
        .annotate(count=Count("pk"), amount=Sum("transaction_amount"))
        .order_by("month")
    )
    return [(row["month"].strftime("%Y-%m"), row["count"], row["amount"].quantize(CENT)) for row in rows]


def pincode_totals() -> list[tuple[str, str, int, Decimal]]:
    """The per-pincode figures with transactions: (state_key, pincode, count, amount)."""
    from transactions import selectors

    return sorted(
        (row.state_key, row.pincode, row.transactions, row.total_amount)
        for row in selectors.pincode_figures() if row.transactions > 0
    )


def pincode_totals_grouped_from_transactions() -> list[tuple[str, str, int, Decimal]]:
    from transactions.models import Transaction

    rows = (
        Transaction.objects.values("state_key", "pincode")
        .annotate(count=Count("pk"), amount=Sum("transaction_amount"))
        .order_by("state_key", "pincode")
    )
    return [(row["state_key"], row["pincode"], row["count"], row["amount"].quantize(CENT)) for row in rows]


def state_spellings() -> list[tuple[str, str, int]]:
    """Each exact spelling's count (folded ``StateSpelling`` plus unfolded deltas), those above
    zero: (state_key, spelling, count)."""
    from transactions import selectors

    return sorted(
        (key, spelling, count) for (key, spelling), (count, _) in selectors.state_spelling_counts().items() if count > 0
    )


def state_spellings_grouped_from_transactions() -> list[tuple[str, str, int]]:
    """The same counts from the stored transactions, grouped exactly in Python (a database's
    usual collation would call two spellings one)."""
    from transactions.models import Transaction

    counts: dict[tuple[str, str], int] = {}
    for key, spelling in Transaction.objects.values_list("state_key", "state").iterator():
        counts[(key, spelling)] = counts.get((key, spelling), 0) + 1
    return sorted((key, spelling, count) for (key, spelling), count in counts.items())


class SummaryAssertionsMixin:
    def assertSummariesMatchTransactions(self) -> None:
        """The per-month, per-pincode and per-spelling figures equal the stored transactions'."""
        self.assertEqual(monthly_totals(), monthly_totals_grouped_from_transactions())
        self.assertEqual(pincode_totals(), pincode_totals_grouped_from_transactions())
        self.assertEqual(state_spellings(), state_spellings_grouped_from_transactions())
