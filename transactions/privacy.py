"""Who may see customers' personal data, and how it looks to everyone else."""

from __future__ import annotations

VIEW_PII_PERMISSION = "transactions.view_pii"


def can_view_pii(user) -> bool:
    return bool(user and user.has_perm(VIEW_PII_PERMISSION))


def mask_mob_no(mob_no: str) -> str:
    """Keep the first two and last two digits: ``9876543210`` -> ``98******10``."""
    if len(mob_no) <= 4:
        return "*" * len(mob_no)
    return f"{mob_no[:2]}{'*' * (len(mob_no) - 4)}{mob_no[-2:]}"


def mob_no_for(user, mob_no: str) -> str:
    """The mobile number as this user may see it: whole with the view-PII permission, else masked."""
    return mob_no if can_view_pii(user) else mask_mob_no(mob_no)
