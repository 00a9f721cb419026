from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError

from transactions import services


class Command(BaseCommand):
    help = (
        "Give a user one of the roles: analyst (reports, uploads), operator (analyst + corrections "
        "in the admin, full mobile numbers; made staff), api-client (ingest and query by API)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("role", choices=sorted(services.ROLE_PERMISSIONS))
        parser.add_argument("--create", action="store_true", help="Create the user if missing (asks no password).")

    def handle(self, *args, username, role, create, **options):
        try:
            user = User.objects.get(username=username) if not create else User.objects.get_or_create(username=username)[0]
        except User.DoesNotExist:
            raise CommandError(f"No user {username!r}; add --create, or create it with createsuperuser/createuser.")
        services.assign_role(user=user, role=role)
        self.stdout.write(f"{username} is now in the {role} role.")
