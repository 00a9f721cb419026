"""Files that are hostile as files: a seeded fuzz of the file import (issue 13, item 9).

A seeded generator (``random.Random(seed)``, so a run can be replayed) writes CSV and NDJSON
files of 1-150 rows in which about 30% of the rows, in random order, are corrupted: other
encodings (latin-1, cp1252, UTF-16 rows and fragments), a UTF-8 BOM at the start of a row or
inside a field, ``\\r`` alone as a line end, lines over ``MAX_LINE_BYTES``, 10^5 columns, a
quote never closed, NUL bytes (in the first 8 KB too), blank and whitespace lines, quoted
newlines, wrong field counts, invalid values, a number like ``1e1000000000000000000``; and for
NDJSON arrays, scalars, nested and deeply nested values, duplicate keys, invalid JSON, ``\\u0000``
and lone-surrogate escapes, extra fields. Clean rows repeat earlier keys now and then, with the
same amount (a duplicate) or another (a conflict), in the same file or a later one. The CSV
header is always intact (columns in any order, maybe an extra one, maybe every field quoted),
and no file is empty, so the only whole-file problem a generated file can have is being mostly
binary. Each file is uploaded to /api/imports/ and imported in-process, as in
tests/api/test_imports.py, some in small chunks and some killed after a chunk and resumed.

For every file:
- it ends ``done``; ``failed`` only as "not a text file", and only if at least half of the lines
  in its first 8 KB hold NUL bytes (a small file of mostly UTF-16 rows: a UTF-16 file);
- created + duplicates + conflicts + rejected = rows_processed, and the rejected rows stored (and
  listed by rejected.csv) are as many as ``rejected``, each with a reason and a line in the file;
- NDJSON: rows_processed = the non-blank physical lines (split on ``\\n``, as the reader does);
  CSV: rows no earlier corruption could merge ≤ rows_processed ≤ non-blank lines after the header;
- nothing is lost: every clean valid row that no earlier row could swallow (a ``\\r`` or UTF-16
  line end joins the next line to it; an unclosed quote takes in the lines up to the next quote)
  has its key (customer_id, UTC datetime) stored and is not rejected; every such row that breaks
  a rule is rejected at the line it starts on, and its key is not stored.

CDP_IMPORT_FUZZ_FILES (default 80) and CDP_IMPORT_FUZZ_SEED change the run; a failure names the
seed and the file's index, and the same seed with CDP_IMPORT_FUZZ_FILES = index + 1 replays it.
Run once (slow): its subject is the reading of files, not the database. Figures of actual runs
are in docs/RELIABILITY.md; ``pytest -s`` prints them.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from unittest import mock

from django.db import DatabaseError, transaction
from django.test import override_settings
from django_tasks.signals import task_finished

from tests.api.test_imports import COUNT_FIELDS, IMPORTS_URL, ImportTestCase, dying_after
from tests.support import slow
from transactions import services, tasks
from transactions.import_files import MAX_LINE_BYTES, SNIFF_BYTES
from transactions.models import RejectedRow, Transaction
from transactions.validation import TRANSACTION_FIELDS

DEFAULT_FILES = 80
DEFAULT_SEED = 20261203
CORRUPTED_SHARE = 0.3
REPEAT_SHARE = 0.08
NOT_TEXT = "The file is not a text file (it contains binary data)."
HUGE_EXPONENT = "1e1000000000000000000"
PLACEHOLDER = "@@fragment@@"
FIRST_MOMENT = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)

ASCII_NAMES = ["Amit Kumar", "Priya", "Rajesh Singh", "Anjali Menon", "Wei Chen", "Ngozi Okafor"]
NAMES = ASCII_NAMES + ["José Fernandes", "Zoë", "हरि प्रसाद", "Ólafur", "محمد علي", "Łucja"]
LATIN1_NAMES = ["José", "Müller", "Françoise", "Søren Ødegård", "Ñandú"]
CP1252_NAMES = ["O’Brien", "Zoë “Z”", "Œdipe", "€uro Singh", "Šárka"]  # ’ “ ” Œ € Š: cp1252, not latin-1
ASCII_STATES = ["Delhi", "Kerala", "Tamil Nadu", "west bengal", "GOA"]
STATES = ASCII_STATES + ["Pünjab", "महाराष्ट्र", "Tamil Nādu"]
BLANK_LINES = [b"\n", b"  \n", b"\t\n", b"\r\n", b" \r\n", b"\x0b\x0c \n", b" \r \n", b"\r \n"]
OFFSETS = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-3))]


def fuzz_files() -> int:
    return int(os.environ.get("CDP_IMPORT_FUZZ_FILES") or DEFAULT_FILES)


def fuzz_seed() -> int:
    return int(os.environ.get("CDP_IMPORT_FUZZ_SEED") or DEFAULT_SEED)


# --- The generator ----------------------------------------------------------------------------


@dataclass(slots=True)
class Record:
    """A valid transaction as text fields, and the key it is stored under."""

    fields: dict[str, str]
    key: tuple[int, dt.datetime]


@dataclass(slots=True)
class Unit:
    """Bytes the generator put in a file: one row (maybe several lines), or a blank line.

    `expect` is what must become of the row's key: ``stored`` (a clean valid record), ``rejected``
    (its own key, never stored), ``unknown`` (a corruption that may or may not leave it valid).
    """

    content: bytes
    kind: str
    expect: str
    key: tuple[int, dt.datetime] | None = None
    opens_quote: bool = False  # CSV: a quoted field left open; what follows is inside it
    blank: bool = False
    first_line: int = 0


@dataclass
class HostileFile:
    index: int
    file_format: str
    name: str
    content: bytes
    units: list[Unit]
    header_bytes: int
    notes: list[str]
    chunk_rows: int | None = None
    dies_after_chunks: int | None = None

    @property
    def rows(self) -> list[Unit]:
        return [unit for unit in self.units if not unit.blank]

    def description(self) -> str:
        corrupted = [f"#{n} line {unit.first_line} {unit.kind}" for n, unit in enumerate(self.units, 1)
                     if unit.kind not in ("clean", "blank")]
        run = f"chunks of {self.chunk_rows}" if self.chunk_rows else "default chunks"
        if self.dies_after_chunks:
            run += f", killed after {self.dies_after_chunks} chunk(s) and resumed"
        return (f"{self.file_format}, {len(self.rows)} rows + {len(self.units) - len(self.rows)} blank lines, "
                f"{len(self.content):,} bytes, {run}; {', '.join(self.notes) or 'plain'}; "
                f"corrupted: {'; '.join(corrupted) or 'none'}")


class HostileFiles:
    """Deterministic from its seed: the n-th file of a seed is always the same bytes."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.moments = 0
        self.clean: list[Record] = []  # repeated later, in this file or another

    # Records --------------------------------------------------------------------------------

    def record(self, *, names=NAMES, states=STATES) -> Record:
        rng = self.rng
        self.moments += 1
        moment = FIRST_MOMENT + dt.timedelta(seconds=self.moments * 3607 + rng.randrange(3600))
        customer_id = 500_000 + rng.randrange(300)
        offset = rng.choice(OFFSETS + [None])
        written = (moment.replace(tzinfo=None).isoformat() if offset is None
                   else moment.astimezone(offset).isoformat().replace("+00:00", rng.choice(["Z", "+00:00"])))
        mob_no = str(rng.randrange(6_000_000_000, 9_999_999_999))
        fields = {
            "customer_id": str(customer_id),
            "name": rng.choice(names),
            "transaction_amount": f"{Decimal(rng.randrange(1, 10**9)) / 100:.2f}",
            "mob_no": rng.choice([mob_no, f"+91 {mob_no[:5]}-{mob_no[5:]}"]),
            "transaction_datetime": written,
            "pincode": str(rng.randrange(100_000, 1_000_000)),
            "state": rng.choice(states),
        }
        return Record(fields, (customer_id, moment))

    def clean_record(self) -> tuple[Record, str]:
        """A record to write as is: new, or now and then a repeat of an earlier one."""
        rng = self.rng
        if self.clean and rng.random() < REPEAT_SHARE:
            earlier = rng.choice(self.clean)
            if rng.random() < 0.5:
                fields = dict(earlier.fields, state=earlier.fields["state"].upper(), name=rng.choice(ASCII_NAMES))
                return Record(fields, earlier.key), "repeat-duplicate"
            amount = f"{Decimal(earlier.fields['transaction_amount']) + Decimal('0.01'):.2f}"
            return Record(dict(earlier.fields, transaction_amount=amount), earlier.key), "repeat-conflict"
        record = self.record()
        self.clean.append(record)
        return record, "clean"

    def long_text(self) -> str:
        letter = self.rng.choice(["x", "é", "ह", "9"])
        return letter * (MAX_LINE_BYTES // len(letter.encode()) + self.rng.randrange(1, 100_000))

    def deep(self, depth: int) -> str:
        opening = self.rng.choice(["[", '{"a":'])
        closing = "]" if opening == "[" else "}"
        return opening * depth + "0" + closing * depth

    # Files ----------------------------------------------------------------------------------

    def file(self, index: int) -> HostileFile:
        rng = self.rng
        file_format = rng.choice(["csv", "ndjson"])
        writer = CsvWriter(self) if file_format == "csv" else NdjsonWriter(self)
        notes = list(writer.notes)
        if rng.random() < 0.04:
            count = rng.randint(9, 14)  # over-long lines enough to fill a large INSERT
            kinds = ["long-line"] * rng.randint(8, count)
            notes.append("many over-long lines")
        else:
            count = rng.randint(1, 5) if rng.random() < 0.25 else rng.randint(1, 150)
            kinds = [rng.choice(writer.corruptions) if rng.random() < CORRUPTED_SHARE else None
                     for _ in range(count)]
            if rng.random() < 0.2:  # a NUL in the first 8 KB, which a binary file has too
                kinds[rng.randrange(min(3, count))] = "nul"
                notes.append("NUL row near the start")
        kinds += [None] * (count - len(kinds))
        if "many over-long lines" in notes:
            rng.shuffle(kinds)
        units: list[Unit] = []
        for kind in kinds:
            if kind is None:
                record, kind = self.clean_record()
                units.append(Unit(writer.row(record), kind, "stored", record.key))
            elif kind == "blank-lines":
                units += [Unit(rng.choice(BLANK_LINES), "blank", "unknown", blank=True)
                          for _ in range(rng.randint(1, 3))]
                record, kind = self.clean_record()
                units.append(Unit(writer.row(record), kind, "stored", record.key))
            else:
                units.append(writer.corrupted(kind))
        if rng.random() < 0.15 and units[-1].content.endswith(b"\n"):
            units[-1].content = units[-1].content[:-1]
            notes.append("no line end at the end")
        header = writer.header()
        line = header.count(b"\n") + 1
        for unit in units:
            unit.first_line = line
            line += unit.content.count(b"\n")
        hostile = HostileFile(index, file_format, f"hostile-{index}.{file_format}",
                              header + b"".join(unit.content for unit in units), units, len(header), notes)
        if rng.random() < 0.4:
            hostile.chunk_rows = rng.choice([1, 2, 3, 7, 16, 50])
            if rng.random() < 0.4:
                hostile.dies_after_chunks = rng.randint(1, 3)
        return hostile


class CsvWriter:
    def __init__(self, files: HostileFiles):
        self.files = files
        rng = self.rng = files.rng
        self.columns = list(TRANSACTION_FIELDS)
        self.notes = []
        if rng.random() < 0.5:
            rng.shuffle(self.columns)
            self.notes.append("columns shuffled")
        if rng.random() < 0.3:
            self.columns.insert(rng.randrange(len(self.columns) + 1), "note")
            self.notes.append("an extra column")
        self.bom = rng.random() < 0.2
        self.line_end = rng.choice(["\n", "\r\n"])
        # Some writers quote every field: then every row goes through the CSV reader.
        self.quoting = csv.QUOTE_ALL if rng.random() < 0.25 else csv.QUOTE_MINIMAL
        if self.quoting == csv.QUOTE_ALL:
            self.notes.append("every field quoted")
        if self.bom:
            self.notes.append("BOM")
        self.corruptions = sorted(
            ["latin-1", "cp1252", "utf-16-row", "utf-16-fragment", "bom-row-start", "bom-in-field", "cr-alone",
             "cr-in-field", "long-line", "many-columns", "unclosed-quote", "quote-in-field", "nul", "blank-lines",
             "quoted-newline", "quoted-comma", "field-count", "invalid-value", "huge-exponent"]
        )

    def header(self) -> bytes:
        rng = self.rng
        names = [rng.choice([name, name.upper(), f" {name} ", name.title()]) for name in self.columns]
        return (b"\xef\xbb\xbf" if self.bom else b"") + self.line(names).encode()

    def values(self, record: Record) -> list[str]:
        note = self.rng.choice(["", "paid at counter", "9876543210", HUGE_EXPONENT, "x;y"])
        return [record.fields.get(column, note) for column in self.columns]

    def line(self, values: list[str], *, line_end: str | None = None) -> str:
        out = io.StringIO()
        csv.writer(out, lineterminator=line_end or self.line_end, quoting=self.quoting).writerow(values)
        return out.getvalue()

    def raw_line(self, values: list[str]) -> str:
        """Fields joined as they are, no quoting: how the corruptions below want them."""
        return ",".join(values) + self.line_end

    def row(self, record: Record) -> bytes:
        return self.line(self.values(record)).encode()

    def corrupted(self, kind: str) -> Unit:
        files, rng = self.files, self.rng
        record = files.record(names=ASCII_NAMES, states=ASCII_STATES)
        values = self.values(record)
        position = {column: n for n, column in enumerate(self.columns)}

        def with_field(name: str, value: str) -> list[str]:
            changed = list(values)
            changed[position[name]] = value
            return changed

        def unit(content: bytes, expect: str, **kwargs) -> Unit:
            return Unit(content, kind, expect, record.key, **kwargs)

        if kind in ("latin-1", "cp1252"):
            names = LATIN1_NAMES if kind == "latin-1" else CP1252_NAMES
            text = self.raw_line(with_field("name", rng.choice(names)))
            return unit(text.encode(kind), "rejected")
        if kind == "utf-16-row":
            codec = rng.choice(["utf-16", "utf-16-le", "utf-16-be"])
            end = rng.choice(["\n".encode(codec.replace("utf-16", "utf-16-le") if codec == "utf-16" else codec), b"\n"])
            return unit(self.raw_line(values).rstrip("\r\n").encode(codec) + end, "rejected")
        if kind == "utf-16-fragment":
            fragment = record.fields["name"].encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be"]))
            line = self.raw_line(with_field("name", PLACEHOLDER)).encode()
            return unit(line.replace(PLACEHOLDER.encode(), fragment), "rejected")
        if kind == "bom-row-start":
            return unit(("\ufeff" + self.raw_line(values)).encode(), "unknown")
        if kind == "bom-in-field":
            name = rng.choice(self.columns)
            value = values[position[name]]
            cut = rng.randrange(len(value) + 1)
            # A BOM in text is one more character; in a number, date or code it breaks the rule.
            expect = "unknown" if name in ("name", "state", "note") else "rejected"
            return unit(self.raw_line(with_field(name, value[:cut] + "\ufeff" + value[cut:])).encode(), expect)
        if kind == "cr-alone":
            return unit(self.raw_line(values).rstrip("\r\n").encode() + b"\r", "unknown")
        if kind == "cr-in-field":
            name = record.fields["name"]
            return unit(self.raw_line(with_field("name", name[:2] + "\r" + name[2:])).encode(), "rejected")
        if kind == "long-line":
            return unit(self.raw_line(with_field("name", files.long_text())).encode(), "rejected")
        if kind == "many-columns":
            extra = ",".join(str(n) for n in range(100_000 - len(values)))
            return unit((self.raw_line(values).rstrip("\r\n") + "," + extra + self.line_end).encode(), "rejected")
        if kind == "unclosed-quote":
            name = rng.choice(self.columns)
            return unit(self.raw_line(with_field(name, '"' + values[position[name]])).encode(), "unknown",
                        opens_quote=True)
        if kind == "quote-in-field":  # a quote inside an unquoted field is a character like any other
            name = record.fields["name"]
            return unit(self.raw_line(with_field("name", name[:3] + '"' + name[3:])).encode(), "stored")
        if kind == "nul":
            name = rng.choice(TRANSACTION_FIELDS)
            value = values[position[name]]
            cut = rng.randrange(len(value) + 1)
            nuls = "\x00" * rng.randint(1, 3)
            return unit(self.raw_line(with_field(name, value[:cut] + nuls + value[cut:])).encode(), "rejected")
        if kind == "quoted-newline":
            first, _, last = record.fields["name"].partition(" ")
            name = first + rng.choice(["\n", "\r\n", "\r", "\n\n"]) + (last or "Kumar")
            # Quoted by hand: csv.writer leaves a "\r" unquoted when the line end is "\n".
            return unit(self.raw_line(with_field("name", f'"{name}"')).encode(), "stored")
        if kind == "quoted-comma":
            return unit(self.line(with_field("name", "Singh, " + record.fields["name"])).encode(), "stored")
        if kind == "field-count":
            changed = list(values)
            if rng.random() < 0.5:
                del changed[rng.randrange(len(changed))]
            else:
                changed.insert(rng.randrange(len(changed) + 1), "extra")
            return unit(self.raw_line(changed).encode(), "rejected")
        if kind == "invalid-value":
            name, value = rng.choice(INVALID_VALUES)
            expect_key = name not in ("customer_id", "transaction_datetime")
            content = self.raw_line(with_field(name, value)).encode()
            return Unit(content, kind, "rejected", record.key if expect_key else None)
        if kind == "huge-exponent":
            if "note" in position and rng.random() < 0.5:  # in the column the import ignores
                return unit(self.raw_line(with_field("note", HUGE_EXPONENT)).encode(), "stored")
            return unit(self.raw_line(with_field("transaction_amount", HUGE_EXPONENT)).encode(), "rejected")
        raise AssertionError(kind)


INVALID_VALUES = [
    ("transaction_amount", "-5.00"), ("transaction_amount", "0"), ("transaction_amount", "12.345"),
    ("transaction_amount", "1,000"), ("transaction_datetime", "2024-02-30T10:00:00Z"),
    ("transaction_datetime", "yesterday"), ("pincode", "012345"), ("pincode", "1100011"), ("mob_no", "12"),
    ("customer_id", "0"), ("customer_id", "abc"), ("name", "   "), ("state", "s" * 51),
]


class NdjsonWriter:
    def __init__(self, files: HostileFiles):
        self.files = files
        self.rng = files.rng
        self.bom = self.rng.random() < 0.1
        self.notes = ["BOM"] if self.bom else []
        self.corruptions = sorted(
            ["latin-1", "cp1252", "utf-16-row", "utf-16-fragment", "bom-row-start", "bom-in-field", "cr-alone",
             "cr-in-string", "long-line", "wide-object", "wide-array", "array", "scalar", "nested", "deep",
             "deep-extra", "duplicate-keys", "invalid-json", "nul", "nul-escape", "surrogate-escape", "extra-fields",
             "huge-exponent", "broken-line", "blank-lines", "field-count", "invalid-value"]
        )

    def header(self) -> bytes:
        return b"\xef\xbb\xbf" if self.bom else b""

    def text(self, record: Record, *, raw: dict[str, str] | None = None, ensure_ascii: bool | None = None,
             separator: str | None = None) -> str:
        """The record as a JSON object; `raw` gives some members as JSON text of their own."""
        rng = self.rng
        ascii_only = rng.random() < 0.3 if ensure_ascii is None else ensure_ascii
        members = {}
        for name, value in record.fields.items():
            if name == "customer_id" and rng.random() < 0.7:
                members[name] = value  # a JSON number
            elif name == "transaction_amount" and rng.random() < 0.5:
                members[name] = value
            else:
                members[name] = json.dumps(value, ensure_ascii=ascii_only)
        members.update(raw or {})
        separator = separator or rng.choice([", ", ",", " ,  "])
        return "{" + separator.join(f"{json.dumps(name)}:{value}" for name, value in members.items()) + "}"

    def row(self, record: Record) -> bytes:
        return (self.text(record) + self.rng.choice(["\n", "\n", "\r\n"])).encode()

    def corrupted(self, kind: str) -> Unit:
        files, rng = self.files, self.rng
        record = files.record(names=ASCII_NAMES, states=ASCII_STATES)

        def unit(text: str | bytes, expect: str, *, end: str = "\n") -> Unit:
            content = text if isinstance(text, bytes) else (text + end).encode()
            return Unit(content, kind, expect, record.key)

        def named(value: str) -> Record:
            return Record(dict(record.fields, name=value), record.key)

        if kind in ("latin-1", "cp1252"):
            names = LATIN1_NAMES if kind == "latin-1" else CP1252_NAMES
            return unit((self.text(named(rng.choice(names)), ensure_ascii=False) + "\n").encode(kind), "rejected")
        if kind == "utf-16-row":
            codec = rng.choice(["utf-16", "utf-16-le", "utf-16-be"])
            end = rng.choice(["\n".encode(codec.replace("utf-16", "utf-16-le") if codec == "utf-16" else codec), b"\n"])
            return unit(self.text(record).encode(codec) + end, "rejected")
        if kind == "utf-16-fragment":
            fragment = record.fields["name"].encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be"]))
            line = (self.text(named(PLACEHOLDER)) + "\n").encode()
            return unit(line.replace(PLACEHOLDER.encode(), fragment), "rejected")
        if kind == "bom-row-start":
            return unit("\ufeff" + self.text(record), "unknown")
        if kind == "bom-in-field":
            name = rng.choice(["name", "state", "pincode", "mob_no"])
            value = record.fields[name]
            cut = rng.randrange(len(value) + 1)
            changed = Record(dict(record.fields, **{name: value[:cut] + "\ufeff" + value[cut:]}), record.key)
            return unit(self.text(changed, ensure_ascii=rng.random() < 0.5),
                        "unknown" if name in ("name", "state") else "rejected")
        if kind == "cr-alone":
            return unit(self.text(record), "unknown", end="\r")
        if kind == "cr-in-string":
            name = record.fields["name"]
            return unit(self.text(record, raw={"name": json.dumps(name)[:3] + "\r" + json.dumps(name)[3:]}), "rejected")
        if kind == "long-line":
            return unit(self.text(named(files.long_text()), ensure_ascii=False), "rejected")
        if kind == "wide-object":  # 10^5 members, the line still under the limit: extra fields, ignored
            extra = {f"{n:x}": "0" for n in range(100_000)}
            text = self.text(record, raw=extra, separator=",")
            assert len(text) < MAX_LINE_BYTES, len(text)
            return unit(text, "stored")
        if kind == "wide-array":
            return unit(json.dumps(list(range(100_000))), "rejected")
        if kind == "array":
            return unit(rng.choice(["[" + self.text(record) + "]", json.dumps(list(record.fields.values()))]),
                        "rejected")
        if kind == "scalar":
            return unit(rng.choice(["1", "-0.5", '"a record"', "null", "true", "false", HUGE_EXPONENT, "[]", "{}"]),
                        "rejected")
        if kind == "nested":
            if rng.random() < 0.5:
                return unit(json.dumps({"record": record.fields}), "rejected")
            name = rng.choice(TRANSACTION_FIELDS)
            return unit(self.text(record, raw={name: json.dumps({"value": record.fields[name]})}), "rejected")
        if kind == "deep":  # thousands deep where a value belongs
            name = rng.choice(TRANSACTION_FIELDS)
            return unit(self.text(record, raw={name: files.deep(rng.randint(2_000, 20_000))}), "rejected")
        if kind == "deep-extra":  # in a field the import ignores: too deep to parse, or not quite
            depth = rng.choice([rng.randint(2_000, 20_000), rng.randint(50, 700)])
            return unit(self.text(record, raw={"meta": files.deep(depth)}), "rejected" if depth >= 2_000 else "unknown")
        if kind == "duplicate-keys":  # which one counts is not the contract's; either way a row of its own
            text = self.text(record)
            if rng.random() < 0.5:
                return unit(text[:-1] + ', "transaction_amount": "-1", "name": 5}', "unknown")
            return unit('{"transaction_amount": "-1", "name": 5, ' + text[1:], "unknown")
        if kind == "invalid-json":
            text = self.text(record)
            broken = rng.choice([
                text[: rng.randrange(1, len(text) - 1)], text[:-1] + ",}", text.replace('"', "'"),
                text.replace('"name"', "name"), text[:-1] + ', "x": NaN}', text + "}", text + " " + text,
            ])
            return unit(broken, "rejected")
        if kind == "nul":
            text = self.text(record)
            cut = rng.randrange(1, len(text))
            return unit(text[:cut] + "\x00" * rng.randint(1, 3) + text[cut:], "rejected")
        if kind in ("nul-escape", "surrogate-escape"):
            name = rng.choice(["name", "state", "transaction_datetime"])
            escape = "\\u0000" if kind == "nul-escape" else rng.choice(["\\ud800", "\\udfff", "\\ud83d"])
            value = json.dumps(record.fields[name])
            cut = rng.randint(1, len(value) - 1)  # anywhere inside the quotes, at the very end too
            text = self.text(record, raw={name: value[:cut] + escape + value[cut:]})
            if rng.random() < 0.3:  # in a member's name and value too
                text = text[:-1] + f', "k{escape}": "v{escape}"}}'
            return unit(text, "rejected")
        if kind == "extra-fields":
            extra = {"comment": json.dumps("paid at counter 9876543210"), "tags": '["a", {"b": [1, 2.5, null]}]',
                     "ok": "true", "n": "1e400"}
            return unit(self.text(record, raw=dict(rng.sample(sorted(extra.items()), rng.randint(1, 4)))), "stored")
        if kind == "huge-exponent":
            name = rng.choice(["transaction_amount", "customer_id", "pincode", "extra"])
            number = rng.choice([HUGE_EXPONENT, "-" + HUGE_EXPONENT, "1E+9999999999999999999"])
            return unit(self.text(record, raw={name: number}), "rejected")
        if kind == "broken-line":  # a raw newline inside a string: two lines, neither JSON
            text = self.text(record)
            cut = text.index('"name"') + 10
            return unit(text[:cut] + "\n" + text[cut:], "rejected")
        if kind == "field-count":
            fields = dict(record.fields)
            name = rng.choice(TRANSACTION_FIELDS)
            if rng.random() < 0.5:
                del fields[name]
                return unit(self.text(Record(fields, record.key)), "rejected")
            return unit(self.text(record, raw={name: "null"}), "rejected")
        if kind == "invalid-value":
            name, value = rng.choice(INVALID_VALUES)
            content = (self.text(Record(dict(record.fields, **{name: value}), record.key)) + "\n").encode()
            return Unit(content, kind, "rejected",
                        record.key if name not in ("customer_id", "transaction_datetime") else None)
        raise AssertionError(kind)


@contextmanager
def csv_field_limit(limit: int) -> Iterator[None]:
    """The csv module's limit is the process's: the import sets it, so it is put back after."""
    previous = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(previous)


# --- The oracle ---------------------------------------------------------------------------------


def non_blank_lines(content: bytes) -> int:
    """Lines as the import splits them (on b"\\n"), decoded leniently; blank once stripped: not rows."""
    return sum(1 for line in content.split(b"\n") if line.decode("utf-8", errors="replace").strip())


def mostly_nul_lines_at_the_start(content: bytes) -> bool:
    """Whether at least half of the lines in the first 8 KB hold NUL bytes: no text file then."""
    lines = [line for line in content[:SNIFF_BYTES].split(b"\n") if line.decode("utf-8", errors="replace").strip()]
    return 2 * sum(b"\x00" in line for line in lines) >= len(lines)


def rows_at_risk(hostile: HostileFile) -> list[bool]:
    """For each unit, whether an earlier one may have taken it in.

    A row that does not end with b"\\n" (``\\r`` alone, a UTF-16 newline) runs into the next line.
    In CSV, a quote opened and never closed takes in every line up to the next quote (at most up
    to the field limit); the line with that quote closes it, and the rows after it are read as
    rows again.
    """
    at_risk = []
    runs_on = in_quote = False
    for unit in hostile.units:
        at_risk.append(runs_on or in_quote)
        if in_quote and b'"' in unit.content:
            in_quote = False
        if unit.opens_quote:
            in_quote = True
        runs_on = not unit.content.endswith(b"\n")
    return at_risk


@dataclass
class Figures:
    files: Counter = field(default_factory=Counter)
    rows: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)

    def summary(self, *, seed: int, seconds: float) -> str:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.rows.items()))
        errors = "; ".join(f"{n} × {error!r}" for error, n in self.errors.items()) or "none"
        return (
            f"import fuzz, seed {seed}: {self.files['all']} files "
            f"({self.files['csv']} CSV, {self.files['ndjson']} NDJSON; "
            f"{self.files['bytes']:,} bytes; {self.files['resumed']} killed and resumed, "
            f"{self.files['small chunks']} in small chunks, {self.files['nul head']} with a NUL in the first 8 KB) "
            f"in {seconds:.1f} s\n"
            f"  outcome: done {self.files['done']}, failed {self.files['failed']} ({errors})\n"
            f"  rows processed {self.counts['rows_processed']:,} = created {self.counts['created']:,} + duplicates "
            f"{self.counts['duplicates']:,} + conflicts {self.counts['conflicts']:,} + rejected "
            f"{self.counts['rejected']:,}; "
            f"keys checked stored {self.counts['keys stored']:,}, checked absent {self.counts['keys absent']:,}, "
            f"rows checked rejected at their line {self.counts['reported rejected']:,}, "
            f"rows left unchecked (at risk) {self.counts['at risk']:,}\n"
            f"  rows written by kind: {kinds}"
            + "".join(f"\n  failed: {description}" for description in self.failed)
        )


# --- The test -----------------------------------------------------------------------------------


@slow
class HostileFileImportFuzzTests(ImportTestCase):
    def setUp(self):
        super().setUp()
        self.task_errors: list[str] = []

        def remember_failure(sender, task_result, **kwargs):
            for error in task_result.errors:
                if not error.exception_class_path.endswith(".WorkerDied"):
                    self.task_errors.append(error.traceback)

        task_finished.connect(remember_failure, weak=False, dispatch_uid="import-fuzz")
        self.addCleanup(task_finished.disconnect, dispatch_uid="import-fuzz")

    def test_no_hostile_file_fails_for_one_row_and_every_row_is_accounted_for(self):
        seed, count = fuzz_seed(), fuzz_files()
        files = HostileFiles(seed)
        figures = Figures()
        started = time.monotonic()
        for index in range(count):
            hostile = files.file(index)
            context = (f"seed {seed}, file {index} ({hostile.description()}); replay: CDP_IMPORT_FUZZ_SEED={seed} "
                       f"CDP_IMPORT_FUZZ_FILES={index + 1}")
            with self.subTest(file=index), transaction.atomic():
                self.check_import(hostile, context=context, figures=figures)
        print("\n" + figures.summary(seed=seed, seconds=time.monotonic() - started))

    def import_hostile(self, hostile: HostileFile) -> int:
        chunk_rows = {"CDP_IMPORT_CHUNK_ROWS": hostile.chunk_rows} if hostile.chunk_rows else {}
        with override_settings(**chunk_rows), self.assertLogs(level="DEBUG") as logs:
            if hostile.dies_after_chunks:
                with mock.patch.object(services.imports, "_import_chunk", dying_after(hostile.dies_after_chunks)):
                    job_id = self.import_file(hostile.name, hostile.content)
                # A restarted worker takes the job over from its last chunk (a no-op if it had finished).
                tasks.run_import.enqueue(job_id=job_id)
            else:
                job_id = self.import_file(hostile.name, hostile.content)
        self.logged_errors = [logging.Formatter().format(record) for record in logs.records
                              if record.levelno >= logging.ERROR and record.name != "django_tasks"]
        return job_id

    def check_import(self, hostile: HostileFile, *, context: str, figures: Figures) -> None:
        self.task_errors.clear()
        job_id = self.import_hostile(hostile)
        troubles = "".join(f"\n{text[-3000:]}" for text in self.task_errors + self.logged_errors)
        try:
            answer = self.api.get(f"{IMPORTS_URL}{job_id}/").json()
        except DatabaseError as exc:  # the import left the connection unusable
            raise AssertionError(f"{context}\n{exc!r}{troubles}") from exc
        counts = {name: answer[name] for name in COUNT_FIELDS}
        context = f"{context}\nanswer: {answer['status']} {counts} {answer['error']!r}{troubles}"

        figures.files.update({"all": 1, hostile.file_format: 1, "bytes": len(hostile.content), answer["status"]: 1,
                              "resumed": bool(hostile.dies_after_chunks), "small chunks": bool(hostile.chunk_rows),
                              "nul head": b"\x00" in hostile.content[:SNIFF_BYTES]})
        figures.rows.update(unit.kind for unit in hostile.units)
        if answer["status"] == "failed":
            figures.errors[answer["error"]] += 1
            figures.failed.append(f"file {hostile.index} ({hostile.description()})")
            # Only a whole-file problem may fail a file; the only one generated: most first lines binary.
            self.assertTrue(answer["error"] == NOT_TEXT and mostly_nul_lines_at_the_start(hostile.content), context)
            self.assertEqual(counts, dict.fromkeys(COUNT_FIELDS, 0), context)
            return
        self.assertEqual(answer["status"], "done", context)
        figures.counts.update(counts)

        # Every row accounted for, and each rejected one stored with its reason and line.
        self.assertEqual(sum(counts[name] for name in COUNT_FIELDS[1:]), counts["rows_processed"], context)
        rejected = list(RejectedRow.objects.filter(job_id=job_id).values_list("line_number", "reason"))
        self.assertEqual(len(rejected), counts["rejected"], context)
        lines = hostile.content.count(b"\n") + (not hostile.content.endswith(b"\n"))
        first_row_line = 2 if hostile.file_format == "csv" else 1
        bad = [(line, reason) for line, reason in rejected if not reason or not first_row_line <= line <= lines]
        self.assertEqual(bad, [], context)
        with csv_field_limit(4 * MAX_LINE_BYTES):  # a rejected over-long line is listed whole (1 MiB and "...")
            listed = self.rejected_csv(job_id)
        self.assertEqual(len(listed), counts["rejected"] + 1, context)

        # Rows as the reader counts them.
        at_risk = rows_at_risk(hostile)
        body_lines = non_blank_lines(hostile.content[hostile.header_bytes:])
        if hostile.file_format == "ndjson":
            self.assertEqual(counts["rows_processed"], body_lines, context)
        else:
            surely_rows = sum(1 for unit, risk in zip(hostile.units, at_risk) if not unit.blank and not risk)
            self.assertLessEqual(surely_rows, counts["rows_processed"], context)
            self.assertLessEqual(counts["rows_processed"], body_lines, context)

        # Nothing lost; nothing stored that breaks a rule.
        safe = [(n, unit) for n, (unit, risk) in enumerate(zip(hostile.units, at_risk), 1) if not risk]
        figures.counts["at risk"] += sum(at_risk)
        customer_ids = {unit.key[0] for _, unit in safe if unit.key}
        stored = set(Transaction.objects.filter(customer_id__in=customer_ids)
                     .values_list("customer_id", "transaction_datetime"))
        must_be_stored = [(n, unit) for n, unit in safe if unit.expect == "stored"]
        breaking_a_rule = [(n, unit) for n, unit in safe if unit.expect == "rejected"]
        must_be_absent = [(n, unit) for n, unit in breaking_a_rule if unit.key]  # a bad id or date: no key
        lost = [f"#{n} line {unit.first_line} {unit.kind} {unit.content[:200]!r}"
                for n, unit in must_be_stored if unit.key not in stored]
        wrongly_stored = [f"#{n} line {unit.first_line} {unit.kind} {unit.content[:200]!r}"
                          for n, unit in must_be_absent if unit.key in stored]
        reasons = "".join(f"\n  line {line}: {reason[:200]}" for line, reason in rejected[:40])
        self.assertEqual(lost, [], f"{context}\nrejected rows:{reasons}")
        self.assertEqual(wrongly_stored, [], context)
        # ... and each such row reported where it starts: rejected if it breaks a rule, else not.
        rejected_lines = {line for line, _ in rejected}
        unreported = [f"#{n} line {unit.first_line} {unit.kind}" for n, unit in breaking_a_rule
                      if unit.first_line not in rejected_lines]
        misreported = [f"#{n} line {unit.first_line} {unit.kind}" for n, unit in must_be_stored
                       if unit.first_line in rejected_lines]
        self.assertEqual((unreported, misreported), ([], []), f"{context}\nrejected rows:{reasons}")
        figures.counts.update({"keys stored": len(must_be_stored), "keys absent": len(must_be_absent),
                               "reported rejected": len(breaking_a_rule)})
