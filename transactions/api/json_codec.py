"""JSON that keeps money exact: numbers parse to Decimal and Decimals print as JSON numbers.

Also the writers of whole range answers, as JSON and as CSV (the two formats of one answer).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from json.encoder import encode_basestring as _encode_json_string

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


# --- Customer totals, tens of thousands at a time -------------------------------------------
# A range answer is a list of (customer_id, name, total) rows, streamed in batches from the
# database (``selectors.range_rows``). The API writes them as a JSON array, the dashboard's
# export as CSV; both writers are here, side by side, and write each total the same way: its
# str(), the exact decimal with its two places.
# The general encoder (``dumps_exact``) builds a simplejson encoder per call: ~4 us a row, more
# than reading the row from the database; here a row costs well under one.

# (customer_id, name, total), the total a Decimal with exactly two places (as DECIMAL(x, 2)
# columns and sums arrive from MySQL and PostgreSQL): plain tuples, as cursors give them.
CustomerTotalRow = tuple[int, str, Decimal]

# The row; restated in SQL by sql.operations().customer_total_json (the database writes it for
# whole answers, ``WrittenRows``), and with the total given in cents by ``rows_in_cents_json``.
_CUSTOMER_TOTAL_JSON = '{"customer_id":%d,"name":%s,"total_transaction_amount":%s}'
_CUSTOMER_TOTAL_IN_CENTS_JSON = _CUSTOMER_TOTAL_JSON.replace(":%s}", ":%d.%02d}")


class WrittenRows(str):
    """A batch of rows already written as ``customer_totals_json`` writes them, joined by
    commas: by ``rows_in_cents_json``, or by the database (``sql.operations().customer_total_json``;
    ``selectors.RunningTotalRows.counted``):
    the all-time whole answer of bench/range_vs_sql.py in 55 ms instead of 77 (the SQL floor
    reading the same rows as tuples, 51)."""

    __slots__ = ()

    @classmethod
    def of(cls, texts: Sequence[str]) -> "WrittenRows":
        return cls(",".join(texts))


# A \u00XX escape (an even number of backslashes before it: not a name's own "\\u00...").
_UPPER_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)(\\u00[01][0-9A-F])")


def customer_totals_json(batches: Iterable[Sequence[CustomerTotalRow]]) -> Iterator[bytes]:
    """The rows as one JSON array, ``dumps_exact`` of each row's three fields, a batch a chunk.

    A total is written as its str(): a Decimal with two places never has an exponent, so that
    is the exact number with its two places, as ``decimal_as_json_number`` gives it (the
    readers promise two places: quantizing each of tens of thousands cost a third of the time).
    Names are escaped by the standard library's C string encoder, which escapes exactly what
    ``dumps_exact`` escapes (quotes, backslashes, control characters; the rest stays UTF-8);
    U+2028/U+2029 are then escaped as ``dumps_exact`` does, once per batch.
    """
    separator = ""
    yield b"["
    for batch in batches:
        if not batch:
            continue
        text = _as_dumps_exact_writes(batch) if isinstance(batch, WrittenRows) else _json_rows(batch)
        yield (separator + text).encode("utf-8")
        separator = ","
    yield b"]"


def rows_in_cents_json(customer_ids: Sequence[int], names: Sequence[str], cents: Sequence[int]) -> WrittenRows:
    """Rows given as three columns, each total a whole number of cents (as a windowed range
    report keeps them, ``selectors._MatchedTotals``), written as ``customer_totals_json`` writes
    (customer_id, name, Decimal) rows: the cents as the two-place decimal they are, without
    making a Decimal of each (a third of the time of a window's whole answer in Python)."""
    if cents and min(cents) < 0:  # a negative total: each written by cents_as_text
        return WrittenRows(_json_rows(zip(customer_ids, names, cents_as_text(cents))))
    # cents_as_text's spelling, inlined in the row's format (a fifth faster than a pass of its own).
    quote, row = _encode_json_string, _CUSTOMER_TOTAL_IN_CENTS_JSON
    text = ",".join([
        row % (customer_id, quote(name), total // 100, total % 100) for customer_id, name, total in zip(customer_ids, names, cents)
    ])
    return WrittenRows(_escaping_line_separators(text))


def cents_as_text(cents: Sequence[int]) -> list[str]:
    """Totals given in cents as the text of their two-place Decimals (``Decimal(c).scaleb(-2)``),
    as ``customer_totals_csv`` writes them."""
    if cents and min(cents) < 0:
        return [str(Decimal(total).scaleb(-2)) for total in cents]
    return [f"{total // 100}.{total % 100:02d}" for total in cents]


def _as_dumps_exact_writes(text: str) -> str:
    """The database's JSON strings as ``dumps_exact`` writes them: the same escapes, but MariaDB
    spells a control character's in upper case (\\u001F), and none escapes U+2028/U+2029."""
    if "\\u00" in text:
        text = _UPPER_HEX_ESCAPE.sub(lambda escape: escape.group(1) + escape.group(2).lower(), text)
    return _escaping_line_separators(text)


def _escaping_line_separators(text: str) -> str:
    """U+2028/U+2029 escaped, as ``dumps_exact`` escapes them (the C string escaper does not)."""
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def pincode_rankings_json(by_pincode: dict[str, Sequence[CustomerTotalRow]]) -> bytes:
    """The top-customers answer: ``{"pincode_<pincode>": [rows...], ...}`` in the dict's order,
    each row as ``customer_totals_json`` writes it (``dumps_exact`` of the same object)."""
    quote = _encode_json_string
    return (
        "{" + ",".join([f"{quote('pincode_' + pincode)}:[{_json_rows(ranked)}]" for pincode, ranked in by_pincode.items()]) + "}"
    ).encode("utf-8")


# One result of a batch's answer for each status (API.md), its index filled in.
_BATCH_RESULT_JSON = {
    status: '{"index":%d,"status":' + _encode_json_string(status) + "}" for status in ("created", "duplicate", "conflict")
}


def batch_answer_json(outcomes: Sequence) -> bytes:
    """A stored batch's answer (API.md: ``received``, the three counts, and ``results``, one
    ``{"index", "status"}`` per record), as ``dumps_exact`` writes the same object: each result
    from its status's text, 1.4 against 4.8 ms for 10,000 records."""
    statuses = [outcome.status for outcome in outcomes]
    results = _BATCH_RESULT_JSON
    return (
        f'{{"received":{len(statuses)},"created":{statuses.count("created")},'
        f'"duplicates":{statuses.count("duplicate")},"conflicts":{statuses.count("conflict")},"results":['
        + ",".join([results[outcome.status] % outcome.index for outcome in outcomes])
        + "]}"
    ).encode("utf-8")


def _json_rows(rows: Sequence[CustomerTotalRow]) -> str:
    quote, row = _encode_json_string, _CUSTOMER_TOTAL_JSON
    text = ",".join([row % (customer_id, quote(name), total) for customer_id, name, total in rows])
    return _escaping_line_separators(text)


CUSTOMER_TOTALS_CSV_HEADER = ("customer_id", "name", "total_transaction_amount")


def customer_totals_csv(batches: Iterable[Sequence[CustomerTotalRow]]) -> Iterator[str]:
    """The rows as CSV under a header of the three field names, a batch a chunk.

    Totals as ``customer_totals_json`` writes them: a two-place Decimal's str(), or that text
    already (``selectors`` ``counted(as_text=True)``); a whole batch goes through csv.writer
    (C) in one call.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CUSTOMER_TOTALS_CSV_HEADER)
    for batch in batches:
        writer.writerows(batch)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue()
