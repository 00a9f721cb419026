"""The dashboard's session user and its permissions, kept per process as the API keeps a token's.

Django reads the session's user on every request (one query) and, at the first permission
check, the user's and its groups' permissions (two more): 14% of a warm report page, for facts
that change a few times a year. A process keeps them here and forgets them by the same rule as
the API's token path (``transactions.api.authentication``, whose module text has the whole
rule): a change to a user, group, permission or token writes a new *generation* to the shared
cache (its signal handlers), and a kept user is used only while the generation it was read
under is still current (one cache read a request) and for at most ``MAX_AGE_SECONDS``.

What Django checks of a session is checked as Django checks it: the session must name a
configured backend and carry the kept user's session hash (a password change, here or in
another process, ends the session); anything else (no user yet, a hash made with a fallback
secret, a hash that doesn't match) goes through ``django.contrib.auth.get_user`` itself.
"""

from __future__ import annotations

import copy
import time
from typing import NamedTuple

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.models import AnonymousUser
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

# The token path's generation and limits: one rule for when a kept credential is current.
from transactions.api.authentication import MAX_AGE_SECONDS, MAX_ENTRIES
from transactions.api.authentication import current_generation


class _KeptUser(NamedTuple):
    generation: str | None
    kept_at: float
    user: object  # the user model's instance, its permission caches filled


# (backend path, user id as the session stores it) -> the user read under a generation
_kept: dict[tuple[str, str], _KeptUser] = {}


def forget_session_users() -> None:
    """Drop this process's kept users (tests; a credential change needs no call, see above)."""
    _kept.clear()


def session_user(request):
    """``django.contrib.auth.get_user(request)``, its user read once per process (see above)."""
    try:
        user_id = str(request.session[auth.SESSION_KEY])
        backend_path = request.session[auth.BACKEND_SESSION_KEY]
    except KeyError:
        return AnonymousUser()
    key = (backend_path, user_id)
    # Read before the user is: a change made after this read writes a newer generation, so a
    # user read afterwards but before the change is never taken for current.
    generation = current_generation()
    now = time.monotonic()
    kept = _kept.get(key)
    if (
        kept is not None
        and kept.generation == generation
        and now - kept.kept_at < MAX_AGE_SECONDS
        and backend_path in settings.AUTHENTICATION_BACKENDS
    ):
        session_hash = request.session.get(auth.HASH_SESSION_KEY)
        if session_hash and constant_time_compare(session_hash, kept.user.get_session_auth_hash()):
            # A copy per request: a view may set attributes on request.user; the permission
            # caches (sets, only read) are shared.
            return copy.copy(kept.user)
    user = auth.get_user(request)  # verifies (or flushes) the session as Django does
    if not user.is_authenticated:
        _kept.pop(key, None)
        return user
    user.get_all_permissions()  # fills the user's permission caches, kept with it
    if len(_kept) >= MAX_ENTRIES:
        _kept.clear()
    _kept[key] = _KeptUser(generation, now, user)
    return copy.copy(user)


class KeptSessionUserMixin:
    """A view whose ``request.user`` is ``session_user(request)``, read when first used.

    Set in ``setup()``, before any mixin's ``dispatch()`` looks at the user; the middleware's
    lazy user is left unread.
    """

    def setup(self, request, *args, **kwargs):
        request.user = SimpleLazyObject(lambda: session_user(request))
        super().setup(request, *args, **kwargs)
