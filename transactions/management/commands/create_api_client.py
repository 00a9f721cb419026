from django.contrib.auth.models import User
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from transactions import services


class Command(BaseCommand):
    help = "Create (or update) a user in the api-client role (ingest and query) and print its API token."

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
        services.assign_role(user=user, role="api-client")
        if demo:
            # The demo login can try everything: the dashboard, the API and the admin.
            for role in ("analyst", "operator"):
                services.assign_role(user=user, role=role)
        token, _ = Token.objects.get_or_create(user=user)
        if demo:
            self.stdout.write(
                f"\nDemo login: {username} / {password or '(no password)'}\n"
                f"API token:  {token.key}\n"
                f'  curl -H "Authorization: Token {token.key}" ...\n'
            )
        else:
            self.stdout.write(token.key)
