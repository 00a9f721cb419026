"""Who may see customers' personal data, and how it looks to everyone else."""

from __future__ import annotations

import re

VIEW_PII_PERMISSION = "transactions.view_pii"

# What could be a mobile number in free text: 7 or more digits, with the spaces, dashes and
# leading + that a mobile number may be written with (transactions.validation.clean_mob_no).
# Any script's digits count: a number written in Devanagari digits is still someone's number.
_MOBILE_NUMBER_LIKE = re.compile(r"\+?\d(?:[ \-]*\d){6,}")


def can_view_pii(user) -> bool:
    return bool(user and user.has_perm(VIEW_PII_PERMISSION))


def can_view_rows_as_sent(user, job) -> bool:
    """Whether the user may read an import's rejected rows as they were sent, numbers and all:
    with the view-PII permission, or as the import's owner, who sent those very rows."""
    return job.owner_id == user.pk or can_view_pii(user)


def mask_mob_no(mob_no: str) -> str:
    """Keep the first two and last two digits: ``9876543210`` -> ``98******10``."""
    if len(mob_no) <= 4:
        return "*" * len(mob_no)
    return f"{mob_no[:2]}{'*' * (len(mob_no) - 4)}{mob_no[-2:]}"


def mask_mobile_numbers_in(text: str) -> str:
    """Free text with everything that could be a mobile number masked as ``mask_mob_no`` does.

    For text whose fields can't be told apart (a malformed row of a file): dates and long
    numbers are masked too, which errs on the side of the customer.
    """
    return _MOBILE_NUMBER_LIKE.sub(lambda match: mask_mob_no(match.group()), text)


def mob_no_for(user, mob_no: str) -> str:
    """The mobile number as this user may see it: whole with the view-PII permission, else masked."""
    return mob_no if can_view_pii(user) else mask_mob_no(mob_no)
