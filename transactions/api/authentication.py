"""Token authentication that looks a token, its user and the user's permissions up once per process.

DRF's TokenAuthentication reads the token and its user on every request, and the permission
check (``user.has_perm``) reads the user's and the groups' permissions again: three queries on
every API call, for facts that change a few times a year. Here a process keeps them, and
forgets them when any of them changes:

- in the process that makes the change, at once (the signals below clear its copy);
- in every other process (other gunicorn workers, other app servers) at its next request: the
  change also writes a new *generation* to the shared cache (settings.CACHES["default"], the
  one the throttle counters live in), and a process uses its copy only while the generation it
  read the copy under is still the current one. That check is one cache read per request,
  instead of the three queries.

A request that writes (the single-record ingest, ``IngestTransactionsView``) does not read the
generation before it writes where the shared cache is the database's own table and the
database can send several statements at once: it sends, last before its COMMIT, a statement
that fails unless the generation is still the one its copy was kept under
(``sql.operations().commit_condition``), so the write commits only with credentials that were
current at the commit. If it fails, the request is authenticated again from the database and
runs again (``confirm_or_authenticate_again``). Every other request reads the generation first.

A change made around Django's signals (a queryset ``update()`` of users or tokens, raw SQL) is
seen within MAX_AGE_SECONDS, when every copy expires anyway.
"""

from __future__ import annotations

import copy
import time
import uuid

from django.contrib.auth.models import Group, Permission, User
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import DEFAULT_DB_ALIAS, connection, router
from django.core.signals import setting_changed
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from ..sql import operations

GENERATION_KEY = "cdp:auth-generation"
MAX_AGE_SECONDS = 60
MAX_ENTRIES = 10_000

# token key -> (generation, kept at, user with its permission caches filled, token)
_kept: dict[str, tuple[str | None, float, User, Token]] = {}


# Where a request's credentials wait to be confirmed by its write (see above).
UNCONFIRMED_ATTRIBUTE = "cdp_unconfirmed_generation"
CONFIRMED_ATTRIBUTE = "cdp_credentials_confirmed"  # read, or authenticated again: no more waiting
_NOT_WAITING = object()


_NOT_LOOKED_UP = ("", "")
_generation_row: tuple[str, str] | None = _NOT_LOOKED_UP


def _generation_in_database_table() -> tuple[str, str] | None:
    """(table, key) of the generation's row when the shared cache is a database table of the
    default database, else None. Worked out once per process (it depends on the settings
    only; two look-ups a request cost 3% of a single ingest's Python) and again when a test
    changes the settings it depends on."""
    global _generation_row
    if _generation_row is _NOT_LOOKED_UP:
        cache = caches["default"]
        if not isinstance(cache, DatabaseCache) or router.db_for_read(cache.cache_model_class) != DEFAULT_DB_ALIAS:
            _generation_row = None
        else:
            _generation_row = (cache._table, cache.make_and_validate_key(GENERATION_KEY))
    return _generation_row


@receiver(setting_changed)
def _look_up_generation_row_again(setting, **kwargs) -> None:
    global _generation_row
    if setting in ("CACHES", "DATABASE_ROUTERS", "DATABASES"):
        _generation_row = _NOT_LOOKED_UP


def current_generation() -> str | None:
    """The generation as stored (the dashboard's session users are kept by it too,
    ``web.authentication``): in a database cache, the row's stored text (never unpickled:
    it is only compared, and ``commit_condition`` compares the same text in SQL)."""
    in_table = _generation_in_database_table()
    if in_table is None:
        return caches["default"].get(GENERATION_KEY)
    table, key = in_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {connection.ops.quote_name(table)} WHERE cache_key = %s", [key])
        row = cursor.fetchone()
    return row[0] if row else None


def commit_condition(request) -> str | None:
    """The statement a write sends last before its commit so that it commits only while the
    request's credentials are current; None if they were confirmed already."""
    generation = getattr(request._request, UNCONFIRMED_ATTRIBUTE, _NOT_WAITING)
    if generation is _NOT_WAITING:
        return None
    table, key = _generation_in_database_table()
    return operations().commit_condition(table=table, key_column="cache_key", value_column="value",
                                         key=key, expected=generation)


def confirm_or_authenticate_again(request, view, *, changed: bool = False) -> None:
    """Make sure the request runs with current credentials: confirm the kept copy it was let in
    with (one read), or, if that changed (``changed``: a ``commit_condition`` failed), forget
    the copy, authenticate the request again and check the view's permissions again (which
    answers 401 or 403 if it may no longer)."""
    generation = getattr(request._request, UNCONFIRMED_ATTRIBUTE, _NOT_WAITING)
    if generation is _NOT_WAITING and not changed:
        return
    if hasattr(request._request, UNCONFIRMED_ATTRIBUTE):
        delattr(request._request, UNCONFIRMED_ATTRIBUTE)
    setattr(request._request, CONFIRMED_ATTRIBUTE, True)
    if not changed and current_generation() == generation:
        return
    _kept.clear()
    request._authenticate()
    view.check_permissions(request)


def forget_credentials(update_fields=None, **kwargs) -> None:
    """Drop every kept token in this process and tell the other processes to drop theirs."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login (Django saves last_login) changes no credential
    _kept.clear()
    caches["default"].set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)


class CachedTokenAuthentication(TokenAuthentication):
    _request = None

    def authenticate(self, request):
        self._request = request
        return super().authenticate(request)

    def _may_confirm_when_writing(self) -> bool:
        """Whether this request's write may confirm its credentials (see the module's text)."""
        request = self._request
        if request is None or getattr(request._request, CONFIRMED_ATTRIBUTE, False):
            return False  # authenticated again after a failed confirmation: read first
        view = (getattr(request, "parser_context", None) or {}).get("view")
        return (getattr(view, "confirms_credentials_when_writing", False)
                and operations().sends_statements_together and _generation_in_database_table() is not None)

    def authenticate_credentials(self, key):
        now = time.monotonic()
        kept = _kept.get(key)
        if kept is not None and now - kept[1] < MAX_AGE_SECONDS and self._may_confirm_when_writing():
            setattr(self._request._request, UNCONFIRMED_ATTRIBUTE, kept[0])
            return copy.copy(kept[2]), kept[3]
        generation = current_generation()
        if kept is not None and kept[0] == generation and now - kept[1] < MAX_AGE_SECONDS:
            _, _, user, token = kept
        else:
            user, token = super().authenticate_credentials(key)  # refuses unknown and inactive
            user.get_all_permissions()  # fills the user's permission caches, kept with it
            if len(_kept) >= MAX_ENTRIES:
                _kept.clear()
            _kept[key] = (generation, now, user, token)
        # A copy per request: a view may set attributes on request.user; the permission
        # caches (sets, only read) are shared.
        return copy.copy(user), token


def connect_signals() -> None:
    """Called from TransactionsConfig.ready(), in every process that may change credentials."""
    for model in (User, Group, Permission, Token):
        post_save.connect(forget_credentials, sender=model, dispatch_uid=f"cdp-forget-{model.__name__}-save")
        post_delete.connect(forget_credentials, sender=model, dispatch_uid=f"cdp-forget-{model.__name__}-delete")
    for through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(forget_credentials, sender=through, dispatch_uid=f"cdp-forget-{through.__name__}")
