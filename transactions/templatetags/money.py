"""Template filters for the dashboard's amounts: rupees with Indian digit grouping."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from transactions.validation import CENT

register = template.Library()


def indian_grouping(digits: str) -> str:
    """``12345678`` -> ``1,23,45,678``: the last three digits, then pairs (lakh, crore)."""
    if len(digits) <= 3:
        return digits
    head, tail = digits[:-3], digits[-3:]
    pairs = []
    while len(head) > 2:
        head, pair = head[:-2], head[-2:]
        pairs.insert(0, pair)
    return ",".join([head, *pairs, tail])


@register.filter
def rupees(value) -> str:
    """An amount as ``₹1,23,45,678.90``; anything that is not a number is shown as it is."""
    try:
        amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return "" if value is None else str(value)
    sign = "−" if amount < 0 else ""
    whole, cents = f"{abs(amount):.2f}".split(".")
    return f"{sign}₹{indian_grouping(whole)}.{cents}"


@register.filter
def plain_amount(value) -> str:
    """An amount as a machine reads it (a data attribute): ``1234.50``, two decimals rounded
    half up, no grouping; what ``floatformat:2|unlocalize`` writes at a tenth of its cost (it
    ran for every row of a report page); "" for what is not a number, as floatformat gives."""
    try:
        amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return ""
    return format(amount if amount else abs(amount), "f")
