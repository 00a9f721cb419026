"""Slow down password guessing on every login form (the dashboard's and the admin's).

Failed logins are counted per username and per client address in the cache; past the limit,
the authentication backend refuses even a correct password until the window has passed.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver


def _keys(request, username: str | None) -> list[str]:
    keys = []
    if username:
        keys.append(f"login-failures:user:{username.lower()}")
    if request is not None and request.META.get("REMOTE_ADDR"):
        keys.append(f"login-failures:addr:{request.META['REMOTE_ADDR']}")
    return keys


def is_locked_out(request, username: str | None) -> bool:
    return any((cache.get(key) or 0) >= settings.CDP_LOGIN_FAILURE_LIMIT for key in _keys(request, username))


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if is_locked_out(request, username):
            raise PermissionDenied("Too many failed logins; try again later.")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def count_failed_login(sender, credentials, request=None, **kwargs):
    for key in _keys(request, credentials.get("username")):
        cache.add(key, 0, timeout=settings.CDP_LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.CDP_LOGIN_FAILURE_WINDOW_SECONDS)


@receiver(user_logged_in)
def forget_failed_logins(sender, request, user, **kwargs):
    cache.delete_many(_keys(request, user.get_username()))
