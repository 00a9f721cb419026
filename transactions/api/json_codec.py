"""JSON that keeps money exact: numbers parse to Decimal and Decimals print as JSON numbers."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import simplejson
from rest_framework.utils.encoders import JSONEncoder


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _exact_decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        # The decimal module holds exponents up to 10^18 - 1 and refuses a larger one
        # ("1e1000000000000000000") instead of rounding it. Left to itself, the error would
        # escape every caller that expects a bad document to raise ValueError.
        raise ValueError("a number is out of range (its exponent is too large)") from None


def loads_exact(text: str) -> object:
    """Parse JSON with every non-integer number as a Decimal (1500.75 stays 1500.75).

    Whatever the text, the only errors are ValueError (RecursionError for deep nesting).
    """
    return simplejson.loads(text, parse_float=_exact_decimal, parse_constant=_refuse_constant)


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
