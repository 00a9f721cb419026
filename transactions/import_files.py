"""Reading uploaded CSV and NDJSON files row by row, from any byte offset, in bounded memory.

Each row comes with the line number it starts on and the byte offset just after it, so an
import can commit a chunk of rows together with "resume from here" and continue after a crash.
Rows that cannot be read (wrong number of fields, bad JSON, bad encoding) are yielded with a
reason instead of values; problems that make the whole file unreadable raise ``FileUnreadable``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import BinaryIO

from . import privacy
from .api.json_codec import dumps_exact, loads_exact
from .validation import TRANSACTION_FIELDS

BOM = b"\xef\xbb\xbf"
SNIFF_BYTES = 8192
# A CSV field or NDJSON line longer than this is not a transaction record; refusing it keeps a
# hostile file (one endless line) from exhausting the worker's memory.
MAX_LINE_BYTES = 1024 * 1024
csv.field_size_limit(MAX_LINE_BYTES)
NOT_TEXT_MESSAGE = "The file is not a text file (it contains binary data)."


class FileUnreadable(Exception):
    """The file as a whole cannot be imported; the message says why, for the user."""


@dataclass(slots=True)
class FileRow:
    line_number: int
    raw: str
    end_offset: int
    end_line: int
    values: dict | None = None
    problem: str | None = None


@dataclass(slots=True)
class CsvLayout:
    """Where each of the seven fields sits in the file's rows, from its header."""

    columns: list[str]
    header_end_offset: int
    header_end_line: int


def sniff(file: BinaryIO) -> None:
    """Refuse a file that is empty or not text at all, before any row is read.

    A NUL byte alone does not make a file binary: a text file with a few rows holding NULs is
    imported with those rows rejected, like any other row that breaks a rule. The file is
    refused when most of the lines it starts with are binary, as in an image, an archive or a
    UTF-16 text (a NUL beside every ASCII character), which hold no row to import.
    """
    file.seek(0)
    head = file.read(SNIFF_BYTES)
    if not head.strip(BOM + b" \t\r\n"):
        raise FileUnreadable("The file is empty.")
    if b"\x00" in head and _mostly_binary_lines(head, cut=len(head) == SNIFF_BYTES):
        raise FileUnreadable(NOT_TEXT_MESSAGE)


def _mostly_binary_lines(head: bytes, *, cut: bool) -> bool:
    lines = [line for line in head.split(b"\n") if line.strip()]
    binary = sum(
        _is_binary_line(line, cut=cut and number == len(lines) - 1) for number, line in enumerate(lines)
    )
    return binary * 2 > len(lines)


def _is_binary_line(line: bytes, *, cut: bool) -> bool:
    """A line with NULs that is not UTF-8 text around them, or a tenth or more NULs (UTF-16)."""
    nuls = line.count(0)
    if not nuls:
        return False
    if nuls * 10 >= len(line):
        return True
    try:
        # The last line of a cut head may end part-way through a character; that is no sign.
        codecs.getincrementaldecoder("utf-8")().decode(line.replace(b"\x00", b""), final=not cut)
    except UnicodeDecodeError:
        return True
    return False


class _LineSource:
    """Physical lines of the file from an offset, decoded as UTF-8, with position tracking."""

    def __init__(self, file: BinaryIO, *, offset: int, line_number: int):
        file.seek(offset)
        self.file = file
        self.offset = offset
        self.line_number = line_number
        self.undecodable = False

    def __iter__(self) -> Iterator[str]:
        while True:
            line = self.file.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                # Skip the rest of an over-long line so the next row starts cleanly. The offset
                # counts the bytes read, not the shortened line: it is where a resumed run starts.
                self.offset += len(line) - len(line[:MAX_LINE_BYTES] + b"...")
                line = line[:MAX_LINE_BYTES] + b"..."
                while more := self.file.readline(MAX_LINE_BYTES):
                    self.offset += len(more)
                    if more.endswith(b"\n"):
                        break
            if self.offset == 0 and line.startswith(BOM):
                self.offset += len(BOM)
                line = line[len(BOM):]
            self.offset += len(line)
            self.line_number += 1
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                self.undecodable = True
                text = line.decode("utf-8", errors="replace")
            yield text


def read_csv_layout(file: BinaryIO) -> CsvLayout:
    """Read the header row; every one of the seven field names must be there."""
    source = _LineSource(file, offset=0, line_number=0)
    reader = csv.reader(iter(source))
    try:
        header = next(reader)
    except StopIteration:
        raise FileUnreadable("The file is empty.") from None
    except csv.Error as exc:
        raise FileUnreadable(f"The header row cannot be read as CSV: {exc}.") from None
    if source.undecodable:
        raise FileUnreadable("The file is not UTF-8 text (the header row cannot be decoded).")
    # sniff lets a few lines with NULs through, as rows to reject; a header with one is no header.
    if any("\x00" in name for name in header):
        raise FileUnreadable(NOT_TEXT_MESSAGE)
    columns = [name.strip().lower() for name in header]
    missing = [field for field in TRANSACTION_FIELDS if field not in columns]
    if missing:
        raise FileUnreadable(
            f"The header row is missing the column(s) {', '.join(missing)}; "
            f"it must name all of {', '.join(TRANSACTION_FIELDS)}."
        )
    return CsvLayout(columns=columns, header_end_offset=source.offset, header_end_line=source.line_number)


def csv_rows(file: BinaryIO, layout: CsvLayout, *, offset: int, line_number: int) -> Iterator[FileRow]:
    """The data rows after `offset`; blank lines are not rows."""
    offset = max(offset, layout.header_end_offset)
    line_number = max(line_number, layout.header_end_line)
    source = _LineSource(file, offset=offset, line_number=line_number)
    lines = iter(source)
    for first_line in lines:
        start_line = source.line_number
        undecodable = source.undecodable
        source.undecodable = False
        raw = first_line.rstrip("\r\n")
        if '"' not in raw and "\r" not in raw and "\x00" not in raw:
            # Most rows: nothing quoted or odd, so the CSV reader would split on commas just so.
            fields = raw.split(",")
        elif not raw.strip():
            # Whitespace around a lone "\r" (" \r \n"): a blank line, not a row the CSV reader
            # refuses ("new-line character seen in unquoted field") and the import rejects.
            continue
        else:
            physical = [first_line]

            def remember(first_line=first_line, lines=lines, physical=physical):
                yield first_line
                for text in lines:
                    physical.append(text)
                    yield text

            try:
                fields = next(csv.reader(remember()))
            except csv.Error as exc:
                source.undecodable = False  # the lines it took in are this row's, not the next one's
                yield FileRow(start_line, "".join(physical), source.offset, source.line_number,
                              problem=f"The row cannot be read as CSV: {exc}.")
                continue
            raw = "".join(physical).rstrip("\r\n")
            # A line this row took in (a quoted newline) that was not UTF-8 makes this row
            # undecodable, not the next one: left set, the flag rejected the following row too.
            undecodable = undecodable or source.undecodable
            source.undecodable = False
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue
        row = FileRow(start_line, raw, source.offset, source.line_number)
        if undecodable:
            row.problem = "The row is not valid UTF-8 text."
        elif len(fields) != len(layout.columns):
            row.problem = f"Expected {len(layout.columns)} fields as in the header, found {len(fields)}."
        else:
            row.values = dict(zip(layout.columns, fields))
        yield row


def ndjson_rows(file: BinaryIO, *, offset: int, line_number: int) -> Iterator[FileRow]:
    """One JSON object a line; blank lines are not rows."""
    source = _LineSource(file, offset=offset, line_number=line_number)
    for text in source:
        raw = text.rstrip("\r\n")
        if not raw.strip():
            source.undecodable = False
            continue
        row = FileRow(source.line_number, raw, source.offset, source.line_number)
        if source.undecodable:
            row.problem = "The line is not valid UTF-8 text."
            source.undecodable = False
        else:
            try:
                row.values = loads_exact(raw)
            except (ValueError, RecursionError) as exc:
                row.problem = f"The line is not valid JSON: {exc}."
        yield row


# Fields whose values are no one's personal data, and say which row it was: shown as sent.
_FIELDS_SHOWN_AS_SENT = frozenset({"customer_id", "transaction_amount", "transaction_datetime", "pincode"})


def masked_raw(row: FileRow, *, file_format: str) -> str:
    """The row as a user who may not see mobile numbers reads it (``transactions.privacy``).

    A row read into fields is written out again with its ``mob_no`` masked, and whatever could
    be a mobile number masked in its other text (a name, a column of its own, nested values).
    A row that couldn't be read into fields is masked as free text. Written out again rather
    than edited in place: a number given twice (two ``mob_no`` keys) or written with JSON
    escapes would slip past an edit of the text.
    """
    fields = row.values
    if not isinstance(fields, dict):
        return privacy.mask_mobile_numbers_in(row.raw)
    try:
        masked = {privacy.mask_mobile_numbers_in(name): _masked_field(name, value) for name, value in fields.items()}
        return _csv_line(masked.values()) if file_format == "csv" else _json_line(masked)
    except RecursionError:  # nested almost as deep as the JSON parser allows
        return privacy.mask_mobile_numbers_in(row.raw)


def _masked_field(name: str, value: object) -> object:
    if isinstance(value, (str, int, Decimal)) and not isinstance(value, bool):
        if name == "mob_no":
            return privacy.mask_mob_no(str(value))
        if name in _FIELDS_SHOWN_AS_SENT:
            return value
    return _masked_value(value)


def _masked_value(value: object) -> object:
    if isinstance(value, dict):
        return {privacy.mask_mobile_numbers_in(key): _masked_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_value(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    text = str(value)
    masked = privacy.mask_mobile_numbers_in(text)
    return value if masked == text else masked


def _json_line(fields: dict) -> str:
    # A string sent as "\ud800" parses to a lone surrogate, which is not UTF-8, so no database
    # column can hold it (storing the row failed the whole import): written as the escape it was.
    return dumps_exact(fields).encode("utf-8", "backslashreplace").decode("utf-8")


def _csv_line(fields: Iterable[object]) -> str:
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()
