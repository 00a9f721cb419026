import logging

from django.apps import AppConfig
from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate

logger = logging.getLogger(__name__)


def _ensure_roles(sender, **kwargs):
    from . import services

    services.ensure_roles()


def _ensure_cache_table(sender, using, **kwargs):
    """The database cache's table (settings.CACHES), so that `migrate` is all a deploy runs.

    createcachetable skips tables that exist and caches that are not database caches.
    """
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


def _finish_prepared_parts(sender, connection, **kwargs):
    """Each new connection finishes what a crash left of batches written in parts
    (services.batch_parts): a restarted server or web worker thus frees their row locks at once."""
    from django.conf import settings

    # Where the database has no two-phase commit, recovery returns at once (a feature, not a vendor).
    if settings.CDP_BATCH_WRITERS < 2 or connection.alias != DEFAULT_DB_ALIAS:
        return  # (the test runner's connection without a database, for one, has an alias of its own)
    from .services import batch_parts

    try:
        batch_parts.recover_prepared_parts(using=connection.alias)
    except DatabaseError as exc:
        logger.warning("could not look for prepared parts of batches (%s)", exc)


class TransactionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transactions"

    def ready(self):
        # After every migrate, so the roles exist (with current permissions) on any database.
        # The cache table first: saving the roles tells the shared cache (api/authentication.py).
        post_migrate.connect(_ensure_cache_table, sender=self)
        post_migrate.connect(_ensure_roles, sender=self)
        # A changed token, user, group or permission is forgotten by every process's copy.
        from .api.authentication import connect_signals

        connect_signals()
        connection_created.connect(_finish_prepared_parts)
