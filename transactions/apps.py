from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs):
    from . import services

    services.ensure_roles()


def _ensure_cache_table(sender, using, **kwargs):
    """The database cache's table (settings.CACHES), so that `migrate` is all a deploy runs.

    createcachetable skips tables that exist and caches that are not database caches.
    """
    from django.core.management import call_command

    call_command("createcachetable", database=using, verbosity=0)


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
