from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_roles(sender, **kwargs):
    from . import services

    services.ensure_roles()


class TransactionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "transactions"

    def ready(self):
        # After every migrate, so the roles exist (with current permissions) on any database.
        post_migrate.connect(_ensure_roles, sender=self)
