from django.contrib.auth.models import Permission, User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

API_CLIENT_PERMISSIONS = ("add_transaction", "view_transaction")


class Command(BaseCommand):
    help = "Create (or update) a user that may ingest and query transactions, and print its API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", help="Also let the user log in to the browser pages with this password.")
        parser.add_argument("--demo", action="store_true", help="Print the login and token as the demo banner.")

    def handle(self, *args, username, password, demo, **options):
        user, created = User.objects.get_or_create(username=username)
        if password:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.save()
        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="transactions", codename__in=API_CLIENT_PERMISSIONS)
        )
        token, _ = Token.objects.get_or_create(user=user)
        if demo:
            self.stdout.write(
                f"\nDemo login: {username} / {password or '(no password)'}\n"
                f"API token:  {token.key}\n"
                f'  curl -H "Authorization: Token {token.key}" ...\n'
            )
        else:
            self.stdout.write(token.key)
