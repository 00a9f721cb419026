"""The roles (groups) and the permissions each one holds."""

from __future__ import annotations


ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    # Browser users: run the reports and upload files (an upload ingests transactions).
    "analyst": ("view_transaction", "view_customer", "add_transaction"),
    # Analysts who also correct data in the admin and see full mobile numbers.
    "operator": (
        "view_transaction", "view_customer", "add_transaction", "change_transaction", "delete_transaction",
        "change_customer", "view_pii", "view_historicaltransaction", "view_historicalcustomer",
    ),
    # Machines: ingest and query through the API.
    "api-client": ("add_transaction", "view_transaction"),
}


def ensure_roles() -> None:
    """Create (or bring up to date) the groups behind the three roles."""
    from django.contrib.auth.models import Group, Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set(Permission.objects.filter(content_type__app_label="transactions", codename__in=codenames))


def assign_role(*, user, role: str) -> None:
    """Put a user in a role; operators also get staff status, which the admin requires."""
    from django.contrib.auth.models import Group

    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"Unknown role {role!r}; the roles are {', '.join(ROLE_PERMISSIONS)}.")
    ensure_roles()
    user.groups.add(Group.objects.get(name=role))
    if role == "operator" and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
