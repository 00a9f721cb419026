"""The file import's fast write path: rows written as SQL while the next chunk is read, a writer
thread of its own, per-pincode totals updated through their ids, and unquoted CSV lines split
without the CSV reader. Each is checked against the rules written out in tests/api/test_imports.
"""

from __future__ import annotations

import csv
import io
import tempfile
import threading
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from unittest import mock

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import Count, Sum
from django.test import TestCase, TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from tests.api.test_imports import (
    IMMEDIATE_TASKS, committed_records, customer_totals_of, csv_file, expected_import, sample_records, stored_rows,
)
from tests.support import SummaryAssertionsMixin, make_user, record
from transactions.sql import operations
from transactions import import_files, services
from transactions.models import Customer, CustomerPincodeTotal, ImportJob, Transaction
from transactions.validation import TRANSACTION_FIELDS, parse_transaction_record

# Text that SQL literals must carry exactly: quotes, backslashes, percent signs, commas, non-ASCII.
AWKWARD_NAMES = [
    "O'Brien",
    'Say "hi"',
    "Back\\slash \\' \\\\",
    "100% Pure, Ltd",
    "Zoë Ærøskøbing",
    "Ravi 😀 Kumar",
    "'; DROP TABLE transactions_transaction; --",
]


def awkward_records() -> list[dict]:
    return [
        record(customer_id=7000 + i, name=name, state=f"Tamil Nadu {name[:10]}",
               transaction_datetime=f"2024-03-{i + 1:02d}T10:00:00Z")
        for i, name in enumerate(AWKWARD_NAMES)
    ]


def pincode_totals_of(rows: dict) -> dict[tuple[int, str, str], tuple[Decimal, int]]:
    totals: dict[tuple[int, str, str], list] = defaultdict(lambda: [Decimal("0"), 0])
    for (customer_id, _), (_, _, amount, pincode, state) in rows.items():
        entry = totals[(customer_id, state.casefold(), pincode)]
        entry[0] += amount
        entry[1] += 1
    return {key: tuple(value) for key, value in totals.items()}


def stored_pincode_totals() -> dict[tuple[int, str, str], tuple[Decimal, int]]:
    return {
        (row.customer_id, row.state_key, row.pincode): (row.total_amount, row.transaction_count)
        for row in CustomerPincodeTotal.objects.filter(transaction_count__gt=0)
    }


class ImportWriterThreadTests(TransactionTestCase):
    """A worker runs imports outside any atomic block, so chunks are written by a thread of their own."""

    def setUp(self):
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir, CDP_IMPORT_CHUNK_ROWS=97))
        self.owner = make_user("importer")

    def run_import_of(self, content: bytes) -> ImportJob:
        job = services.start_import(owner=self.owner, uploaded_file=SimpleUploadedFile("t.csv", content))
        threads: list[str] = []
        real_import_chunk = services.imports._import_chunk

        def import_chunk_noting_the_thread(**kwargs):
            threads.append((kwargs["part_index"], threading.current_thread().name))
            return real_import_chunk(**kwargs)

        services.imports._import_chunk = import_chunk_noting_the_thread
        try:
            services.run_import(job_id=job.pk)
        finally:
            services.imports._import_chunk = real_import_chunk
        self.assertTrue(threads)
        # Each chunk in parts by customer, part i of every chunk by one writer thread of its own
        # where the database has row locks; SQLite, one writer at a time, has one part a chunk.
        writers = settings.CDP_IMPORT_WRITERS if operations().has_row_locks else 1
        thread_of_part = dict(threads)
        self.assertEqual(sorted(thread_of_part), list(range(writers)))
        self.assertEqual(set(threads), set(thread_of_part.items()))  # each part always on its thread
        if operations().has_row_locks:
            self.assertEqual(len(set(thread_of_part.values())), writers)
            self.assertTrue(all(name.startswith(f"import-{job.pk}-") for name in thread_of_part.values()), threads)
        job.refresh_from_db()
        return job

    def test_counts_rows_and_every_running_total_match_the_rules(self):
        # Some of the customers and pincodes exist before the import, so their totals are added to.
        earlier = sample_records(rows=300, seed=11)[:150] + awkward_records()[:3]
        services.ingest_transactions(records=[parse_transaction_record(r) for r in earlier])
        before = stored_rows()
        rows = sample_records(rows=900, seed=11) + awkward_records()
        expected_counts, expected_rows = expected_import(rows, stored=before)

        job = self.run_import_of(csv_file(rows))

        self.assertEqual((job.status, job.error), ("done", ""))
        self.assertEqual(
            {name: getattr(job, name) for name in expected_counts}, expected_counts,
        )
        self.assertEqual(stored_rows(), expected_rows)
        customers = {c.customer_id: (c.total_amount, c.transaction_count) for c in Customer.objects.all()}
        self.assertEqual(customers, customer_totals_of(expected_rows))
        self.assertEqual(stored_pincode_totals(), pincode_totals_of(expected_rows))
        # Each customer shows the name of their most recent transaction.
        latest = {}
        for (customer_id, moment), (name, mob_no, *_) in expected_rows.items():
            if customer_id not in latest or moment > latest[customer_id][0]:
                latest[customer_id] = (moment, name, mob_no)
        self.assertEqual(
            {c.customer_id: (c.details_as_of, c.name, c.mob_no) for c in Customer.objects.all()}, latest
        )

    def test_importing_the_same_file_twice_adds_nothing_the_second_time(self):
        content = csv_file(sample_records(rows=400, seed=12) + awkward_records())
        first = self.run_import_of(content)
        totals = Transaction.objects.aggregate(n=Count("id"), amount=Sum("transaction_amount"))
        pincode_totals = stored_pincode_totals()

        second = self.run_import_of(content)

        self.assertEqual(second.created, 0)
        self.assertEqual(second.duplicates + second.conflicts, first.created + first.duplicates + first.conflicts)
        self.assertEqual(Transaction.objects.aggregate(n=Count("id"), amount=Sum("transaction_amount")), totals)
        self.assertEqual(stored_pincode_totals(), pincode_totals)


class WorkerDiedInAPart(BaseException):
    """Stands for a worker killed while one part of a chunk is committed and another is not."""


class ImportInPartsTests(SummaryAssertionsMixin, TransactionTestCase):
    """Where the database has row locks, each chunk is written in parts by customer, at once,
    and a run that stops with some parts of a chunk committed is resumed without them."""

    def setUp(self):
        if not operations().has_row_locks:
            self.skipTest("SQLite writes one transaction at a time: its chunks are written whole")
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir, CDP_IMPORT_CHUNK_ROWS=100, CDP_IMPORT_WRITERS=2))
        self.owner = make_user("importer")

    def stop_with_one_part_of_a_chunk_committed_and_resume(self, *, block: int, resumed_block: int, progress_from_before_blocks=False):
        rows = sample_records(rows=400, seed=14) + awkward_records()
        rows[150] = dict(rows[150], pincode="0")  # a rejected row, in the chunk that stops half-way
        expected_counts = expected_import(rows)[0]
        job = services.start_import(owner=self.owner, uploaded_file=SimpleUploadedFile("t.csv", csv_file(rows)))
        real_import_chunk = services.imports._import_chunk
        parts_seen = []

        def second_chunk_loses_part_one(**kwargs):
            chunk = kwargs["chunk"]
            parts_seen.append((chunk.end_line, kwargs["part_index"]))
            # Part 1 of the second chunk dies, and with it whatever comes after (the writer of
            # part 0 may have gone on to the third chunk meanwhile: see the next test).
            if chunk.end_line > 201 or (chunk.end_line > 101 and kwargs["part_index"] == 1):
                raise WorkerDiedInAPart()
            return real_import_chunk(**kwargs)

        with mock.patch.object(services.imports, "_import_chunk", second_chunk_loses_part_one), \
                mock.patch.object(services.imports, "CUSTOMERS_PER_BLOCK", block), \
                self.assertRaises(WorkerDiedInAPart):
            services.run_import(job_id=job.pk)

        job.refresh_from_db()
        self.assertEqual(sorted(seen for seen in parts_seen if seen[0] <= 201), [(101, 0), (101, 1), (201, 0), (201, 1)])
        self.assertEqual((job.status, job.line_number), ("running", 101))  # the first chunk, whole
        progress = job.chunk_in_progress
        self.assertEqual((progress["end_line"], progress["rows"], progress["ways"], progress["block"]), (201, 100, 2, block))
        self.assertNotIn("next", progress)
        self.assertEqual(progress["done"], {"0": progress["last"]["0"]})  # part 0 committed, part 1 not
        first_part = [r for i, r in enumerate(rows[:200]) if i < 100 or i == 150 or int(r["customer_id"]) // block % 2 == 0]
        self.assertEqual(job.rows_processed, len(first_part))
        self.assertEqual({name: getattr(job, name) for name in expected_counts}, expected_import(first_part)[0])
        self.assertEqual(Transaction.objects.count(), job.created)
        if progress_from_before_blocks:  # as a run from before the blocks saved it
            del progress["block"]
            ImportJob.objects.filter(pk=job.pk).update(chunk_in_progress=progress)

        # Another run, with another chunk size, block and one writer: the stopped chunk is read
        # and split as it was, its committed part left out.
        self.assertResumedWithOtherSettingsAsOneRunWould(job, rows, block=resumed_block)

    def assertResumedWithOtherSettingsAsOneRunWould(self, job: ImportJob, rows: list[dict], *, block: int):
        """Run the stopped import again with 70-row chunks, one writer and blocks of ``block``;
        it must end with what one run over ``rows`` stores."""
        expected_counts, expected_rows = expected_import(rows)
        with override_settings(CDP_IMPORT_CHUNK_ROWS=70, CDP_IMPORT_WRITERS=1), \
                mock.patch.object(services.imports, "CUSTOMERS_PER_BLOCK", block):
            services.run_import(job_id=job.pk)

        job.refresh_from_db()
        self.assertEqual((job.status, job.error, job.chunk_in_progress), ("done", "", None))
        self.assertEqual({name: getattr(job, name) for name in expected_counts}, expected_counts)
        self.assertEqual(job.rows_processed, len(rows))
        self.assertEqual(stored_rows(), expected_rows)
        self.assertEqual(stored_pincode_totals(), pincode_totals_of(expected_rows))
        self.assertEqual(
            {c.customer_id: (c.total_amount, c.transaction_count) for c in Customer.objects.all()},
            customer_totals_of(expected_rows),
        )

    def test_a_run_stopped_with_one_part_of_a_chunk_committed_resumes_with_the_same_counts(self):
        # Blocks of 4 customer ids: the stopped chunk's customers fall in both parts (and blocks
        # of 8 would split them otherwise).
        self.stop_with_one_part_of_a_chunk_committed_and_resume(block=4, resumed_block=8)

    def test_a_chunk_stopped_by_a_run_from_before_the_blocks_is_split_as_it_was(self):
        # Its progress names no block: every id was a block of its own. (Blocks of 2 would split
        # the stopped chunk's customers otherwise.)
        self.stop_with_one_part_of_a_chunk_committed_and_resume(block=1, resumed_block=2, progress_from_before_blocks=True)

    def stop_with_parts_of_two_chunks_committed_and_resume(self, rows: list[dict], *, first: tuple, second: tuple, dies: tuple):
        """A run whose writers commit part ``second`` of the third chunk while part ``first`` of
        the second is still being written; then ``dies`` (a part of the second chunk) dies, and
        every part not committed by then with it. The job then holds the progress of two chunks,
        and another run (other chunk size, block and writers) ends as one run would."""
        expected_counts = expected_import(rows)[0]
        job = services.start_import(owner=self.owner, uploaded_file=SimpleUploadedFile("t.csv", csv_file(rows)))
        real_import_chunk = services.imports._import_chunk
        second_committed = threading.Event()
        parts_seen = []

        def parts_of_two_chunks(**kwargs):
            part = (kwargs["chunk"].end_line, kwargs["part_index"])
            parts_seen.append(part)
            if part == first:
                second_committed.wait(timeout=30)
            if part == dies or (part[0] > 201 and part != second):
                raise WorkerDiedInAPart()
            real_import_chunk(**kwargs)
            if part == second:
                second_committed.set()

        with mock.patch.object(services.imports, "_import_chunk", parts_of_two_chunks), \
                mock.patch.object(services.imports, "CUSTOMERS_PER_BLOCK", 4), \
                self.assertRaises(WorkerDiedInAPart):
            services.run_import(job_id=job.pk)

        self.assertTrue(second_committed.is_set(), parts_seen)
        job.refresh_from_db()
        self.assertEqual((job.status, job.line_number), ("running", 101))  # the first chunk, whole
        progress = job.chunk_in_progress
        self.assertEqual((progress["end_line"], progress["next"]["end_line"]), (201, 301))
        self.assertEqual(progress["next"]["done"], {str(second[1]): progress["next"]["last"][str(second[1])]})
        committed = committed_records(rows, line_number=job.line_number, progress=progress, first_line=2)
        self.assertEqual(job.rows_processed, len(committed))
        self.assertEqual({name: getattr(job, name) for name in expected_counts}, expected_import(committed)[0])
        self.assertEqual(Transaction.objects.count(), job.created)

        self.assertResumedWithOtherSettingsAsOneRunWould(job, rows, block=8)
        return progress

    def test_a_writer_goes_on_to_its_part_of_the_next_chunk_and_a_stopped_run_resumes_both(self):
        # Part 0 of the third chunk is committed while part 1 of the second is written; then
        # that one dies. The second chunk's part 0 was committed before.
        rows = sample_records(rows=400, seed=14) + awkward_records()
        progress = self.stop_with_parts_of_two_chunks_committed_and_resume(rows, first=(201, 1), second=(301, 0), dies=(201, 1))
        self.assertEqual(progress["done"], {"0": progress["last"]["0"]})

    def test_a_part_of_the_next_chunk_committed_before_any_of_the_chunk_before(self):
        # The second chunk's customers are all in part 0 (ids 8n to 8n+3, blocks of 4): part 1's
        # writer goes straight on to the third chunk, and commits its part 1 before anything of
        # the second chunk is committed. The marker must still name the second chunk first.
        rows = sample_records(rows=400, seed=14) + awkward_records()
        for position in range(100, 200):
            rows[position] = dict(rows[position], customer_id=str(8 * int(rows[position]["customer_id"])))
        self.assertEqual({services.imports.part_of(int(r["customer_id"]), ways=2, block=4) for r in rows[100:200]}, {0})
        progress = self.stop_with_parts_of_two_chunks_committed_and_resume(rows, first=(201, 0), second=(301, 1), dies=(201, 0))
        self.assertEqual((progress["done"], list(progress["last"])), ({}, ["0"]))

    def assertPartsWriteWhatOneWriterWould(self, writers: int):
        rows = sample_records(rows=600, seed=15) + awkward_records()
        expected_counts, expected_rows = expected_import(rows)
        # Blocks of 4 customer ids: the sample's few dozen customers fall in every part.
        with override_settings(CDP_IMPORT_WRITERS=writers), mock.patch.object(services.imports, "CUSTOMERS_PER_BLOCK", 4):
            job = services.start_import(owner=self.owner, uploaded_file=SimpleUploadedFile("t.csv", csv_file(rows)))
            services.run_import(job_id=job.pk)
        job.refresh_from_db()
        self.assertEqual((job.status, job.chunk_in_progress), ("done", None))
        self.assertEqual({name: getattr(job, name) for name in expected_counts}, expected_counts)
        self.assertEqual(stored_rows(), expected_rows)
        self.assertEqual(stored_pincode_totals(), pincode_totals_of(expected_rows))
        self.assertEqual(
            {c.customer_id: (c.total_amount, c.transaction_count) for c in Customer.objects.all()},
            customer_totals_of(expected_rows),
        )
        self.assertSummariesMatchTransactions()

    def test_two_parts_write_what_one_writer_would(self):
        self.assertPartsWriteWhatOneWriterWould(2)

    def test_three_parts_write_what_one_writer_would(self):
        self.assertPartsWriteWhatOneWriterWould(3)


class GarbageCollectionTests(TestCase):
    """An import runs Python's cyclic collector itself, every few chunks, and leaves it on as it found it."""

    def setUp(self):
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir, CDP_IMPORT_CHUNK_ROWS=50))

    def test_the_collector_is_off_while_chunks_are_written_and_on_again_after_a_failure_too(self):
        import gc

        owner = make_user("importer")
        seen = []
        real_import_chunk = services.imports._import_chunk

        def noting_the_collector(**kwargs):
            seen.append(gc.isenabled())
            return real_import_chunk(**kwargs)

        for fails in (False, True):
            job = services.start_import(owner=owner, uploaded_file=SimpleUploadedFile(
                "t.csv", csv_file(sample_records(rows=120, seed=16))))
            side_effect = WorkerDiedInAPart() if fails else None
            with mock.patch.object(services.imports, "_import_chunk", side_effect=side_effect, wraps=noting_the_collector):
                if fails:
                    with self.assertRaises(WorkerDiedInAPart):
                        services.run_import(job_id=job.pk)
                else:
                    services.run_import(job_id=job.pk)
            self.assertTrue(gc.isenabled())
        self.assertEqual(seen, [False, False, False])  # three chunks of the first import


class TextKeptExactlyTests(TestCase):
    """Names and states reach the database verbatim, whichever way the rows are written."""

    def test_a_batch_stores_awkward_text_exactly(self):
        records = [parse_transaction_record(r) for r in awkward_records()]
        outcomes = services.ingest_transactions(records=records)
        self.assertEqual({o.status for o in outcomes}, {"created"})
        stored = {t.customer_id: (t.name, t.state, t.state_key) for t in Transaction.objects.all()}
        self.assertEqual(stored, {r.customer_id: (r.name, r.state, r.state.casefold()) for r in records})
        self.assertEqual(
            {c.customer_id: c.name for c in Customer.objects.all()}, {r.customer_id: r.name for r in records}
        )

    def test_repeating_an_awkward_batch_finds_every_record_a_duplicate(self):
        records = [parse_transaction_record(r) for r in awkward_records()]
        services.ingest_transactions(records=records)
        outcomes = services.ingest_transactions(records=records)
        self.assertEqual([o.status for o in outcomes], ["duplicate"] * len(records))


class CsvFastPathTests(TestCase):
    """Lines without quotes are split on commas; the result must be what the CSV reader gives."""

    def rows_of(self, text: str) -> list:
        file = io.BytesIO(text.encode("utf-8"))
        layout = import_files.read_csv_layout(file)
        return list(import_files.csv_rows(file, layout, offset=0, line_number=0))

    def test_plain_and_quoted_spellings_of_a_row_give_the_same_values(self):
        lines = [
            "1,Asha Rao,10.50,9876543210,2024-01-01T00:00:00Z,110001,Delhi",
            " 2 , spaced out ,  7 ,9876543210,2024-01-01T00:00:00Z,110001, Delhi ",
            "3,,,,,,",
            "4,Trailing,1,9876543210,2024-01-01T00:00:00Z,110001,Goa\r",
        ]
        header = ",".join(TRANSACTION_FIELDS)
        plain = self.rows_of(header + "\n" + "\n".join(lines) + "\n")
        quoted_text = io.StringIO()
        writer = csv.writer(quoted_text, quoting=csv.QUOTE_ALL, lineterminator="\n")
        for line in lines:
            writer.writerow(next(csv.reader([line.rstrip("\r")])))
        quoted = self.rows_of(header + "\n" + quoted_text.getvalue())
        self.assertEqual([row.values for row in plain], [row.values for row in quoted])
        self.assertEqual(
            [row.values for row in plain],
            [dict(zip(TRANSACTION_FIELDS, next(csv.reader([line.rstrip("\r")])))) for line in lines],
        )
        self.assertEqual([row.line_number for row in plain], [2, 3, 4, 5])

    def test_a_quoted_field_spanning_lines_is_still_one_row(self):
        text = (
            ",".join(TRANSACTION_FIELDS) + "\n"
            '1,"Two\nLines, Inc",10.50,9876543210,2024-01-01T00:00:00Z,110001,Delhi\n'
            "2,Plain,1,9876543210,2024-01-01T00:00:00Z,110001,Goa\n"
        )
        rows = self.rows_of(text)
        self.assertEqual([row.values["name"] for row in rows], ["Two\nLines, Inc", "Plain"])
        self.assertEqual([(row.line_number, row.end_line) for row in rows], [(2, 3), (4, 4)])
        self.assertEqual(rows[-1].end_offset, len(text.encode("utf-8")))

    def test_blank_and_whitespace_lines_are_not_rows(self):
        text = ",".join(TRANSACTION_FIELDS) + "\n\n   \n1,A,1,9876543210,2024-01-01T00:00:00Z,110001,Goa\n\n"
        rows = self.rows_of(text)
        self.assertEqual([(row.line_number, row.values["customer_id"]) for row in rows], [(4, "1")])


class LongBatchTests(TestCase):
    def test_a_batch_longer_than_one_statement_stores_every_row_and_total(self):
        rows_per_statement = operations().rows_per_statement(len(services.ingest.TRANSACTION_COLUMNS))
        raw = [
            record(customer_id=1 + i % 700, transaction_amount=f"{1 + i % 97}.25",
                   transaction_datetime=f"2024-01-01T{i // 3600:02d}:{i // 60 % 60:02d}:{i % 60:02d}Z")
            for i in range(rows_per_statement + 300)
        ]
        outcomes = services.ingest_transactions(records=[parse_transaction_record(r) for r in raw])
        self.assertEqual([o.status for o in outcomes], ["created"] * len(raw))
        self.assertEqual(Transaction.objects.count(), len(raw))
        expected_total = sum(Decimal(r["transaction_amount"]) for r in raw)
        self.assertEqual(Transaction.objects.aggregate(total=Sum("transaction_amount"))["total"], expected_total)
        self.assertEqual(Customer.objects.aggregate(total=Sum("total_amount"))["total"], expected_total)
        self.assertEqual(CustomerPincodeTotal.objects.aggregate(total=Sum("total_amount"))["total"], expected_total)


class BatchCustomerDetailsTests(TestCase):
    """A batch adds to customers who exist: their details move only to a newer transaction.

    On MySQL a batch adds to the stored customers in SQL (``services.prepare_batch``), without
    reading them first; the rules are the same as for a single record.
    """

    def ingest(self, *records: dict) -> list[str]:
        outcomes = services.ingest_transactions(records=[parse_transaction_record(r) for r in records])
        return [outcome.status for outcome in outcomes]

    def details(self, customer_id: int) -> tuple:
        c = Customer.objects.get(pk=customer_id)
        return (c.name, c.mob_no, c.details_as_of.isoformat(), c.total_amount, c.transaction_count)

    def test_an_older_transaction_in_a_batch_does_not_replace_newer_details(self):
        self.ingest(
            record(customer_id=1, name="new name", mob_no="9000000001", transaction_amount="10.00",
                   transaction_datetime="2024-06-01T00:00:00Z"),
            record(customer_id=2, name="old name", mob_no="9000000002", transaction_amount="20.00",
                   transaction_datetime="2024-01-01T00:00:00Z"),
        )
        statuses = self.ingest(
            record(customer_id=1, name="older", mob_no="9111111111", transaction_amount="1.50",
                   transaction_datetime="2024-03-01T00:00:00Z"),
            record(customer_id=2, name="newer", mob_no="9222222222", transaction_amount="2.25",
                   transaction_datetime="2024-03-01T00:00:00Z"),
            record(customer_id=2, name="newest", mob_no="9333333333", transaction_amount="0.75",
                   transaction_datetime="2024-04-01T00:00:00Z"),
        )
        self.assertEqual(statuses, ["created", "created", "created"])
        self.assertEqual(self.details(1), ("new name", "9000000001", "2024-06-01T00:00:00+00:00", Decimal("11.50"), 2))
        self.assertEqual(self.details(2), ("newest", "9333333333", "2024-04-01T00:00:00+00:00", Decimal("23.00"), 3))

    def test_a_customer_whose_transactions_were_all_deleted_takes_the_batch_details(self):
        self.ingest(
            record(customer_id=3, name="gone", transaction_datetime="2024-09-01T00:00:00Z"),
            record(customer_id=4, name="other", transaction_datetime="2024-09-01T00:00:00Z"),
        )
        services.delete_transactions(rows=Transaction.objects.filter(customer_id=3))
        self.assertEqual(self.details(3)[3:], (Decimal("0"), 0))
        self.ingest(
            record(customer_id=3, name="back", mob_no="9444444444", transaction_amount="5.00",
                   transaction_datetime="2024-02-01T00:00:00Z"),
            record(customer_id=4, name="other", transaction_amount="5.00", transaction_datetime="2024-02-01T00:00:00Z"),
        )
        self.assertEqual(self.details(3), ("back", "9444444444", "2024-02-01T00:00:00+00:00", Decimal("5.00"), 1))

    def test_repeats_in_a_batch_add_nothing_and_leave_the_details(self):
        self.ingest(
            record(customer_id=5, name="first", transaction_amount="10.00", transaction_datetime="2024-05-01T00:00:00Z"),
            record(customer_id=6, name="six", transaction_amount="1.00", transaction_datetime="2024-05-01T00:00:00Z"),
        )
        statuses = self.ingest(
            # A stored key again (a duplicate, then a conflict), and a new one repeated in the batch.
            record(customer_id=5, name="first", transaction_amount="10.00", transaction_datetime="2024-05-01T00:00:00Z"),
            record(customer_id=5, name="renamed?", transaction_amount="99.00", transaction_datetime="2024-05-01T00:00:00Z"),
            record(customer_id=5, name="later", transaction_amount="3.00", transaction_datetime="2024-05-02T00:00:00Z"),
            record(customer_id=5, name="later again", transaction_amount="4.00", transaction_datetime="2024-05-02T00:00:00Z"),
            record(customer_id=7, name="new", transaction_amount="2.00", transaction_datetime="2024-05-03T00:00:00Z"),
            record(customer_id=7, name="new", transaction_amount="2.00", transaction_datetime="2024-05-03T00:00:00Z"),
        )
        self.assertEqual(statuses, ["duplicate", "conflict", "created", "conflict", "created", "duplicate"])
        self.assertEqual(self.details(5)[0], "later")
        self.assertEqual(self.details(5)[3:], (Decimal("13.00"), 2))
        self.assertEqual(self.details(7)[3:], (Decimal("2.00"), 1))
        self.assertEqual(
            stored_pincode_totals(),
            {(5, "delhi", "110001"): (Decimal("13.00"), 2), (6, "delhi", "110001"): (Decimal("1.00"), 1),
             (7, "delhi", "110001"): (Decimal("2.00"), 1)},
        )


def mysql_without_insert_returning():
    """MySQL (not MariaDB) has no INSERT ... RETURNING: a batch looks stored keys up first."""
    return mock.patch.object(type(connection.features), "can_return_rows_from_bulk_insert", False)


class BatchCustomerDetailsLookingKeysUpFirstTests(BatchCustomerDetailsTests):
    def setUp(self):
        super().setUp()
        self.enterContext(mysql_without_insert_returning())


class ImportRowByRowTests(ImportWriterThreadTests):
    """The import's rules again with every chunk stored row by row (services.ingest's own path,
    that of databases without a bulk loader) on a database that has one."""

    def setUp(self):
        super().setUp()
        if not operations().has_bulk_loader:
            self.skipTest("without a bulk loader every import is stored row by row already")
        # The writer thread has a connection (and operations) of its own: patched where all look.
        self.enterContext(mock.patch.object(services.bulk, "writes_in_bulk", lambda records, minimum=0: False))


class ImportInBulkTests(TestCase):
    """Where the database has a bulk loader, every chunk of an import is stored set-based."""

    def test_every_chunk_is_loaded_into_the_staging_table_once(self):
        if not operations().has_bulk_loader:
            self.skipTest("this database has no bulk loader")
        import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=import_dir, CDP_IMPORT_CHUNK_ROWS=40))
        rows = sample_records(rows=100, seed=13)
        expected_counts, expected_rows = expected_import(rows)
        # The import runs as the on-commit callbacks run, when their block ends: inside the capture.
        with override_settings(TASKS=IMMEDIATE_TASKS), CaptureQueriesContext(connection) as queries, \
                self.captureOnCommitCallbacks(execute=True):
            job = services.start_import(owner=make_user("bulk-importer"), uploaded_file=SimpleUploadedFile("t.csv", csv_file(rows)))
        loads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("LOAD DATA LOCAL INFILE")]
        self.assertEqual(len(loads), -(-len(rows) // 40), "one load a chunk of 40 rows")
        job.refresh_from_db()
        self.assertEqual({name: getattr(job, name) for name in expected_counts}, expected_counts)
        self.assertEqual(stored_rows(), expected_rows)
        self.assertEqual(stored_pincode_totals(), pincode_totals_of(expected_rows))


class ImportLookingKeysUpFirstTests(ImportWriterThreadTests):
    """The import's rules again, on the path MySQL takes."""

    def setUp(self):
        super().setUp()
        self.enterContext(mysql_without_insert_returning())


def statements_of(queries) -> list[str]:
    """The statements run, those sent together in one round trip (services.rows) one by one."""
    return [statement for query in queries.captured_queries for statement in query["sql"].split(";\n")]


class InsertOnceOnMariaDBTests(TestCase):
    """MariaDB (10.5 and later) stores with one INSERT that says what it stored: a single record
    inserts first; a batch looks its keys up first (one SELECT), so a repeat costs no rerun."""

    def setUp(self):
        # Asked here, not in a decorator: on MySQL the answer needs a connection.
        if connection.vendor != "mysql" or not connection.features.can_return_rows_from_bulk_insert:
            self.skipTest("INSERT ... RETURNING is MariaDB's")
        self.ingest(record(customer_id=1, transaction_datetime="2024-01-01T00:00:00Z"),
                    record(customer_id=2, transaction_datetime="2024-01-01T00:00:00Z"))

    def ingest(self, *records: dict) -> list[str]:
        return [o.status for o in services.ingest_transactions(records=[parse_transaction_record(r) for r in records])]

    @staticmethod
    def look_ups(sql: list[str]) -> list[str]:
        return [s for s in sql if s.startswith("SELECT") and "`transactions_transaction`" in s]

    @staticmethod
    def inserts(sql: list[str]) -> list[str]:
        return [s for s in sql if s.startswith("INSERT IGNORE INTO `transactions_transaction`")]

    def test_a_single_new_record_is_stored_without_a_look_up(self):
        with CaptureQueriesContext(connection) as queries:
            statuses = self.ingest(record(customer_id=1, transaction_datetime="2024-01-02T00:00:00Z"))
        self.assertEqual(statuses, ["created"])
        sql = statements_of(queries)
        self.assertEqual(len(self.inserts(sql)), 1, sql)
        self.assertEqual(self.look_ups(sql), [])
        self.assertEqual(Transaction.objects.count(), 3)

    def test_a_batch_of_new_keys_is_looked_up_once_and_inserted_once(self):
        with CaptureQueriesContext(connection) as queries:
            statuses = self.ingest(record(customer_id=1, transaction_datetime="2024-01-02T00:00:00Z"),
                                   record(customer_id=2, transaction_datetime="2024-01-02T00:00:00Z"))
        self.assertEqual(statuses, ["created", "created"])
        sql = statements_of(queries)
        self.assertEqual(len(self.look_ups(sql)), 1, sql)
        self.assertEqual(len(self.inserts(sql)), 1, sql)
        self.assertEqual(Transaction.objects.count(), 4)

    def test_a_batch_repeating_a_stored_key_is_not_run_twice(self):
        with CaptureQueriesContext(connection) as queries:
            statuses = self.ingest(record(customer_id=1, transaction_datetime="2024-01-01T00:00:00Z"),
                                   record(customer_id=2, transaction_datetime="2024-03-01T00:00:00Z"))
        self.assertEqual(statuses, ["duplicate", "created"])
        sql = statements_of(queries)
        # One look-up of both keys tells the duplicate (and its payment) before anything is written.
        [look_up] = self.look_ups(sql)
        self.assertIn("(1,'2024-01-01 00:00:00')", look_up)
        self.assertIn("(2,'2024-03-01 00:00:00')", look_up)
        [insert] = self.inserts(sql)
        self.assertNotIn("'2024-01-01 00:00:00'", insert)
        self.assertEqual(Transaction.objects.count(), 3)
