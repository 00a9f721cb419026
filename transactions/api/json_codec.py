"""JSON that keeps money exact: numbers parse to Decimal and Decimals print as JSON numbers."""

from __future__ import annotations

from decimal import Decimal

import simplejson
from rest_framework.utils.encoders import JSONEncoder


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(text: str) -> object:
    """Parse JSON with every non-integer number as a Decimal (1500.75 stays 1500.75)."""
    return simplejson.loads(text, use_decimal=True, parse_constant=_refuse_constant)


_drf_encoder = JSONEncoder()


def dumps_exact(value: object) -> str:
    """JSON text in which a Decimal is written as the exact number it holds.

    Anything else DRF knows (datetimes, UUIDs, lazy strings) is encoded as DRF would.
    """
    text = simplejson.dumps(
        value,
        use_decimal=True,
        default=_drf_encoder.default,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ":"),
    )
    # Keep the output a strict JavaScript subset, as DRF's own renderer does.
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def decimal_as_json_number(amount: Decimal) -> Decimal:
    """Money as JSON shows it: always two decimals (1500 -> 1500.00)."""
    return amount.quantize(Decimal("0.01"))
