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

A change made around Django's signals (a queryset ``update()`` of users or tokens, raw SQL) is
seen within MAX_AGE_SECONDS, when every copy expires anyway.
"""

from __future__ import annotations

import copy
import time
import uuid

from django.contrib.auth.models import Group, Permission, User
from django.core.cache import caches
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

GENERATION_KEY = "cdp:auth-generation"
MAX_AGE_SECONDS = 60
MAX_ENTRIES = 10_000

# token key -> (generation, kept at, user with its permission caches filled, token)
_kept: dict[str, tuple[str | None, float, User, Token]] = {}


def _current_generation() -> str | None:
    return caches["default"].get(GENERATION_KEY)


def forget_credentials(update_fields=None, **kwargs) -> None:
    """Drop every kept token in this process and tell the other processes to drop theirs."""
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # a login (Django saves last_login) changes no credential
    _kept.clear()
    caches["default"].set(GENERATION_KEY, uuid.uuid4().hex, timeout=None)


class CachedTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        generation = _current_generation()
        now = time.monotonic()
        kept = _kept.get(key)
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
