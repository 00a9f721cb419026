"""The rules of a transaction record (shared/API.md), defined once.

The JSON API, the file import, the dashboard forms and the admin all call these cleaners, so a
value accepted or refused in one place is accepted or refused everywhere with the same message.
Each cleaner takes the raw value a client sent and returns the normalised value or raises
``django.core.exceptions.ValidationError``. They are plain functions rather than DRF fields
because a batch of 10,000 records must validate in well under a second.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.utils.dateparse import parse_datetime

MAX_CUSTOMER_ID = 2**63 - 1
MAX_TRANSACTION_AMOUNT = Decimal("999999999999.99")
CENT = Decimal("0.01")
NAME_MAX_LENGTH = 100
STATE_MAX_LENGTH = 50
# Case folding turns some characters into several ("ß" -> "ss", "ΐ" -> three), three at most in
# Unicode's folding table; the matching key of a state is kept whole, so it may be this long.
CASEFOLD_MAX_EXPANSION = 3
STATE_KEY_MAX_LENGTH = STATE_MAX_LENGTH * CASEFOLD_MAX_EXPANSION
MOB_NO_MIN_DIGITS = 7
MOB_NO_MAX_DIGITS = 15
# DATETIME on MySQL/MariaDB holds years 1000-9999; the same bounds apply on every database.
EARLIEST_DATETIME = dt.datetime(1000, 1, 1, tzinfo=dt.timezone.utc)
LATEST_DATETIME = dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)

REQUIRED_MESSAGE = "This field is required."
NULL_MESSAGE = "This field may not be null."

_DIGITS = re.compile(r"[0-9]+")
_PINCODE = re.compile(r"[1-9][0-9]{5}")
_MOB_NO_SEPARATORS = re.compile(r"[ \-]")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
# An amount as files spell it, in cents and within the maximum (``clean_transaction_amount``).
_CENTS = re.compile(r"[0-9]{1,12}\.[0-9]{2}")


# Written once, not on every call: a file import validates millions of records.
_CUSTOMER_ID_MESSAGE = f"Enter a whole number from 1 to {MAX_CUSTOMER_ID}."
_MOB_NO_MESSAGE = (
    f"Enter a mobile number of {MOB_NO_MIN_DIGITS} to {MOB_NO_MAX_DIGITS} digits "
    "(spaces, dashes and a leading + are allowed)."
)


def _invalid(message: str, code: str) -> ValidationError:
    return ValidationError(message, code=code)


def _clean_text(value: object, *, max_length: int, what: str) -> str:
    """Trim and collapse whitespace; refuse what no database column can hold verbatim."""
    if not isinstance(value, str):
        raise _invalid(f"Enter {what} as text.", "not_text")
    # str.split() and the regex \s agree on what whitespace is (both use str.isspace()).
    text = " ".join(value.split())
    if "\x00" in text:
        raise _invalid("Null characters are not allowed.", "null_characters_not_allowed")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates parse from JSON ("\ud800") but cannot be stored as UTF-8.
            raise _invalid(f"Enter {what} as valid Unicode text.", "invalid_unicode") from None
    if not 1 <= len(text) <= max_length:
        raise _invalid(f"Enter {what} of 1 to {max_length} characters.", "length")
    return text


def clean_customer_id(value: object) -> int:
    """An integer 1 ≤ id ≤ 2^63−1, or a string of ASCII digits meaning one."""
    # The two common spellings first (see ``FAST_PATHS``).
    if type(value) is int:
        if 1 <= value <= MAX_CUSTOMER_ID:
            return value
    elif type(value) is str and value.isdigit() and value.isascii() and len(value) <= 19:
        number = int(value)
        if 1 <= number <= MAX_CUSTOMER_ID:
            return number
    return _clean_customer_id_generally(value)


def _clean_customer_id_generally(value: object) -> int:
    message = _CUSTOMER_ID_MESSAGE
    if isinstance(value, bool):
        raise _invalid(message, "invalid")
    if isinstance(value, str):
        digits = value.strip()
        if not _DIGITS.fullmatch(digits) or len(digits) > 19:
            raise _invalid(message, "invalid")
        value = int(digits)
    if not isinstance(value, int) or not 1 <= value <= MAX_CUSTOMER_ID:
        raise _invalid(message, "invalid")
    return value


def clean_name(value: object) -> str:
    return _clean_text(value, max_length=NAME_MAX_LENGTH, what="a name")


def clean_state(value: object) -> str:
    return _clean_text(value, max_length=STATE_MAX_LENGTH, what="a state")


def state_key_for(state: str) -> str:
    """The case-insensitive matching key of a state; `state` must already be cleaned.

    Never cut: two states whose folded forms differ only past some length would share a key.
    """
    return state.casefold()


def _not_a_number(what: str) -> ValidationError:
    return _invalid(f"Enter {what} as a number, e.g. 1500.75.", "invalid")


def clean_decimal(value: object, *, what: str = "a number") -> Decimal:
    """A finite decimal from a JSON number or a numeric string (no thousands separators)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, float, str)):
        raise _not_a_number(what)
    if isinstance(value, str):
        value = value.strip()
        if not _DECIMAL.fullmatch(value):
            raise _not_a_number(what)
    try:
        # str() of a float is its shortest exact repr, so 1500.75 stays 1500.75.
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        raise _not_a_number(what) from None
    if not amount.is_finite():
        raise _not_a_number(what)
    return amount


def clean_transaction_amount(value: object) -> Decimal:
    """A positive amount of at most 999,999,999,999.99 with at most 2 decimal places."""
    # The common spelling first (a file's "1500.75", see ``FAST_PATHS``): no sign, exponent or
    # space, at most 12 digits before the point (so at most the maximum), exactly two after it
    # (so in cents already).
    if type(value) is str and _CENTS.fullmatch(value):
        amount = Decimal(value)
        if amount:
            return amount
    return _clean_transaction_amount_generally(value)


def _clean_transaction_amount_generally(value: object) -> Decimal:
    amount = clean_decimal(value, what="an amount")
    if amount <= 0:
        raise _invalid("Enter an amount greater than 0.", "min_value")
    if amount > MAX_TRANSACTION_AMOUNT:
        raise _invalid(f"Enter an amount of at most {MAX_TRANSACTION_AMOUNT}.", "max_value")
    cents = amount.quantize(CENT)
    if cents != amount:
        raise _invalid("Enter an amount with at most 2 decimal places.", "max_decimal_places")
    return cents


def clean_mob_no(value: object) -> str:
    """Digits only, after stripping spaces, dashes and one leading ``+``."""
    # The common spelling first (digits alone, see ``FAST_PATHS``).
    if type(value) is str and value.isdigit() and value.isascii() and MOB_NO_MIN_DIGITS <= len(value) <= MOB_NO_MAX_DIGITS:
        return value
    return _clean_mob_no_generally(value)


def _clean_mob_no_generally(value: object) -> str:
    message = _MOB_NO_MESSAGE
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _invalid(message, "invalid")
        value = str(value)
    if not isinstance(value, str):
        raise _invalid(message, "invalid")
    digits = _MOB_NO_SEPARATORS.sub("", value.strip())
    if digits.startswith("+"):
        digits = digits[1:]
    if not _DIGITS.fullmatch(digits) or not MOB_NO_MIN_DIGITS <= len(digits) <= MOB_NO_MAX_DIGITS:
        raise _invalid(message, "invalid")
    return digits


def clean_datetime(value: object) -> dt.datetime:
    """ISO 8601; an offset is converted to UTC, no offset means UTC already."""
    message = "Enter an ISO 8601 datetime, e.g. 2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."
    # datetime.fromisoformat (parse_datetime's first try) stops reading at a NUL on Python 3.11:
    # "2024-09-24T15:30:00Z\x00anything" passed as 2024-09-24T15:30:00Z.
    if not isinstance(value, str) or "\x00" in value:
        raise _invalid(message, "invalid")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:  # well-formed but impossible, e.g. 2024-02-30 or 25:00
        parsed = None
    if parsed is None:
        raise _invalid(message, "invalid")
    try:
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        else:
            parsed = parsed.astimezone(dt.timezone.utc)
    except OverflowError:
        parsed = None
    if parsed is None or not EARLIEST_DATETIME <= parsed <= LATEST_DATETIME:
        raise _invalid("Enter a datetime between the years 1000 and 9999 (UTC).", "out_of_range")
    return parsed


clean_transaction_datetime = clean_datetime


def clean_pincode(value: object) -> str:
    """Exactly 6 digits, not starting with 0; an integer is converted."""
    # The common spelling first (see ``FAST_PATHS``).
    if type(value) is str and len(value) == 6 and value.isdigit() and value.isascii() and value[0] != "0":
        return value
    return _clean_pincode_generally(value)


def _clean_pincode_generally(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not _PINCODE.fullmatch(value.strip()):
        raise _invalid("Enter a pincode of exactly 6 digits that does not start with 0.", "invalid")
    return value.strip()


# A file import validates millions of values, nearly all of them spelled alike: these cleaners
# answer the common spelling first, in a few checks, and pass anything else to their general
# path, which answers every spelling. Both must give the same answer (the same value, or the same
# error) for every value; tests/test_validation.py holds them to it, through this table.
FAST_PATHS = {
    clean_customer_id: _clean_customer_id_generally,
    clean_transaction_amount: _clean_transaction_amount_generally,
    clean_mob_no: _clean_mob_no_generally,
    clean_pincode: _clean_pincode_generally,
}


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One validated, normalised transaction as a client sent it."""

    customer_id: int
    name: str
    transaction_amount: Decimal
    mob_no: str
    transaction_datetime: dt.datetime
    pincode: str
    state: str
    # Derived once: a file import reads them several times for each of millions of records.
    # ``key`` is what identifies a transaction: a customer can't pay twice at the same instant.
    key: tuple[int, dt.datetime] = field(init=False, repr=False, compare=False)
    state_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _set_key(self, (self.customer_id, self.transaction_datetime))
        _set_state_key(self, state_key_for(self.state))


# The slots' own setters, which a frozen dataclass's __setattr__ refuses to be: a record made
# through them (``_valid_record``) takes half the time of its generated __init__ (0.7 against
# 1.6 µs), which calls object.__setattr__ for each field.
_set_key = TransactionRecord.__dict__["key"].__set__
_set_state_key = TransactionRecord.__dict__["state_key"].__set__
(_set_customer_id, _set_name, _set_amount, _set_mob_no, _set_datetime, _set_pincode, _set_state) = (
    TransactionRecord.__dict__[name].__set__
    for name in ("customer_id", "name", "transaction_amount", "mob_no", "transaction_datetime", "pincode", "state")
)


def _valid_record(customer_id, name, transaction_amount, mob_no, transaction_datetime, pincode, state) -> TransactionRecord:
    """``TransactionRecord(...)`` of seven cleaned values, made as its __init__ makes it."""
    record = object.__new__(TransactionRecord)
    _set_customer_id(record, customer_id)
    _set_name(record, name)
    _set_amount(record, transaction_amount)
    _set_mob_no(record, mob_no)
    _set_datetime(record, transaction_datetime)
    _set_pincode(record, pincode)
    _set_state(record, state)
    record.__post_init__()
    return record


TRANSACTION_FIELD_CLEANERS = {
    "customer_id": clean_customer_id,
    "name": clean_name,
    "transaction_amount": clean_transaction_amount,
    "mob_no": clean_mob_no,
    "transaction_datetime": clean_transaction_datetime,
    "pincode": clean_pincode,
    "state": clean_state,
}
TRANSACTION_FIELDS = tuple(TRANSACTION_FIELD_CLEANERS)


class RecordInvalid(Exception):
    """A record broke one or more rules; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def parse_transaction_record(raw: object) -> TransactionRecord:
    """Validate one record (a mapping of the seven fields; others are ignored)."""
    if type(raw) is dict:
        # The common case first: a dict whose seven fields are all good, cleaned field by field
        # without collecting anything: 5.4 against 6.7 us a record by the loop below (a file
        # import validates millions). Anything wrong (a missing field or a cleaner's error,
        # None included: every cleaner rejects it) goes the long way, which finds every
        # field's messages; so the answer is the same either way.
        try:
            return _valid_record(
                clean_customer_id(raw["customer_id"]),
                clean_name(raw["name"]),
                clean_transaction_amount(raw["transaction_amount"]),
                clean_mob_no(raw["mob_no"]),
                clean_transaction_datetime(raw["transaction_datetime"]),
                clean_pincode(raw["pincode"]),
                clean_state(raw["state"]),
            )
        except (KeyError, ValidationError):
            pass
    if not isinstance(raw, Mapping):
        raise RecordInvalid({"non_field_errors": ["Expected a transaction record (a JSON object)."]})
    cleaned: dict[str, object] = {}
    errors: dict[str, list[str]] = {}
    for field, cleaner in TRANSACTION_FIELD_CLEANERS.items():
        if field not in raw:
            errors[field] = [REQUIRED_MESSAGE]
            continue
        value = raw[field]
        if value is None:
            errors[field] = [NULL_MESSAGE]
            continue
        try:
            cleaned[field] = cleaner(value)
        except ValidationError as exc:
            errors[field] = list(exc.messages)
    if errors:
        raise RecordInvalid(errors)
    return TransactionRecord(**cleaned)
