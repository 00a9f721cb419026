"""File imports over the API (/api/imports/): upload, background processing, counts, rejected
rows, whole-file failures, resuming an interrupted import, access rules and pruning.

The import runs inside the test: the upload enqueues it with ``transaction.on_commit``, which
``captureOnCommitCallbacks(execute=True)`` fires, and the immediate task backend runs it there
and then. The real worker process is exercised in ``tests/test_import_worker.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from unittest import mock

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient

from tests.support import ApiClientMixin, make_user, record, token_client
from transactions import services, tasks
from transactions.generation import generate_records
from transactions.import_files import MAX_LINE_BYTES
from transactions.models import Customer, ImportJob, RejectedRow, Transaction
from transactions.validation import TRANSACTION_FIELDS, RecordInvalid, parse_transaction_record

IMPORTS_URL = "/api/imports/"
IMMEDIATE_TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}
DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
COUNT_FIELDS = ("rows_processed", "created", "duplicates", "conflicts", "rejected")
NO_ROWS = dict.fromkeys(COUNT_FIELDS, 0)
UTF8_MESSAGE = "The row is not valid UTF-8 text."
NOT_TEXT_MESSAGE = "The file is not a text file (it contains binary data)."


# --- The rules of API.md, written out here rather than taken from the import code ----------


def expected_import(rows: Iterable[dict], *, stored: dict | None = None) -> tuple[dict, dict]:
    """The counts an import of `rows` must report, and the rows stored afterwards.

    API.md: a record breaking a rule is rejected; the first record of a key (customer_id, UTC
    datetime) is created; a later one with the same amount, pincode and state (ignoring case)
    is a duplicate, any other a conflict. `stored` holds what the database had before, keyed
    the same way; it is not modified.
    """
    stored = dict(stored or {})
    counts = dict(NO_ROWS)
    for row in rows:
        counts["rows_processed"] += 1
        try:
            # Which values break a rule is defined once, in transactions.validation; the
            # keys, repeats and counting below are the reference's own.
            valid = parse_transaction_record(row)
        except RecordInvalid:
            counts["rejected"] += 1
            continue
        key = (valid.customer_id, valid.transaction_datetime)
        if key not in stored:
            stored[key] = (valid.name, valid.mob_no, valid.transaction_amount, valid.pincode, valid.state)
            counts["created"] += 1
            continue
        _, _, amount, pincode, state = stored[key]
        same = (amount, pincode, state.casefold()) == (
            valid.transaction_amount, valid.pincode, valid.state.casefold()
        )
        counts["duplicates" if same else "conflicts"] += 1
    return counts, stored


def stored_rows() -> dict:
    """Every stored transaction as the reference above keys and describes it."""
    return {
        (row.customer_id, row.transaction_datetime): (
            row.name, row.mob_no, row.transaction_amount, row.pincode, row.state
        )
        for row in Transaction.objects.all()
    }


def customer_totals_of(rows: dict) -> dict[int, tuple[Decimal, int]]:
    totals: dict[int, tuple[Decimal, int]] = {}
    for (customer_id, _), (_, _, amount, _, _) in rows.items():
        total, count = totals.get(customer_id, (Decimal("0"), 0))
        totals[customer_id] = (total + amount, count + 1)
    return totals


def csv_file(records: Iterable[dict], *, columns: Sequence[str] = TRANSACTION_FIELDS, bom: bool = False,
             line_end: str = "\n") -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator=line_end)
    writer.writeheader()
    writer.writerows(records)
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def ndjson_file(records: Iterable[dict]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")

def committed_records(records: list[dict], *, line_number: int, progress: dict | None, first_line: int) -> list[dict]:
    """The records (one a line from ``first_line``: 2 after a CSV header, 1 in NDJSON) that an
    import's resume marker says are committed: every line up to its ``line_number``, and in the
    chunk after it (and the one after that, under ``"next"``: two chunks are written at once),
    the lines of each part up to where ``progress`` (its ``chunk_in_progress``) says that part
    was committed (``services.imports`` splits a chunk by customer: part 0 holds the rejected
    rows too)."""
    chunks = [progress, progress.get("next")] if progress else []
    chunks = [chunk for chunk in chunks if chunk]
    committed = []
    for index, fields in enumerate(records):
        line = index + first_line
        if line <= line_number:
            committed.append(fields)
            continue
        chunk = next((chunk for chunk in chunks if line <= chunk["end_line"]), None)
        if chunk is None:
            continue
        try:
            part = services.imports.part_of(parse_transaction_record(fields).customer_id,
                                            ways=chunk["ways"], block=chunk.get("block", 1))
        except RecordInvalid:
            part = 0
        if line <= chunk["done"].get(str(part), 0):
            committed.append(fields)
    return committed



def sample_records(*, rows: int, seed: int) -> list[dict]:
    """Generated records (about 1% repeat a key) plus repeats and mistakes written by hand."""
    records = list(generate_records(rows=rows, customers=max(rows // 8, 1), seed=seed))
    first, second = records[0], records[1]
    moment = dt.datetime.fromisoformat(first["transaction_datetime"].replace("Z", "+00:00"))
    records += [
        # The same instant written with an offset is the same key: a duplicate.
        dict(first, transaction_datetime=moment.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat()),
        dict(first, state=first["state"].upper()),  # state compared ignoring case: a duplicate
        dict(first, name="Somebody Else", mob_no="9000000000"),  # other details, same payment: a duplicate
        dict(second, transaction_amount="1.01"),  # another amount: a conflict
        dict(second, pincode="999999"),  # another pincode: a conflict
        dict(first, transaction_amount="-5"),  # breaks a rule: rejected
        dict(first, pincode="012345"),
        dict(first, transaction_datetime="yesterday"),
        dict(first, customer_id="0"),
    ]
    return records


def expected_import_answer(job_id: int, *, status: str, counts: dict, error: str = "") -> dict:
    """The whole status answer: what the test expects, plus the job's own upload metadata."""
    job = ImportJob.objects.select_related("owner").get(pk=job_id)
    assert (job.finished_at is not None) == (status in ("done", "failed")), job.finished_at
    assert (job.started_at is not None) == (status != "queued"), job.started_at
    url = f"http://testserver/api/imports/{job_id}/"
    return {
        "id": job_id,
        "status": status,
        "original_name": job.original_name,
        "format": job.format,
        "size_bytes": job.size_bytes,
        "owner": job.owner.username,
        **counts,
        "error": error,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "status_url": url,
        "rejected_url": url + "rejected.csv",
    }


def iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


# --- Test cases --------------------------------------------------------------------------------


@override_settings(TASKS=IMMEDIATE_TASKS)
class ImportTestCase(ApiClientMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir))

    def post_file(self, name: str, content: bytes, *, client: APIClient | None = None, run: bool = True, **fields):
        """POST the file; with `run`, the import enqueued on commit runs before this returns."""
        client = client or self.api
        body = {"file": SimpleUploadedFile(name, content), **fields}
        if not run:
            return client.post(IMPORTS_URL, body, format="multipart")
        with self.captureOnCommitCallbacks(execute=True):
            return client.post(IMPORTS_URL, body, format="multipart")

    def import_file(self, name: str, content: bytes, **fields) -> int:
        response = self.post_file(name, content, **fields)
        self.assertEqual(response.status_code, 202, response.content)
        return response.json()["id"]

    def expected_answer(self, job_id: int, *, status: str, counts: dict, error: str = "") -> dict:
        return expected_import_answer(job_id, status=status, counts=counts, error=error)

    def assertImport(self, job_id: int, *, status: str, counts: dict, error: str = "", client=None) -> dict:
        response = (client or self.api).get(f"{IMPORTS_URL}{job_id}/")
        self.assertEqual(response.status_code, 200, response.content)
        answer = response.json()
        self.assertEqual(answer, self.expected_answer(job_id, status=status, counts=counts, error=error))
        self.assertEqual(sum(counts[name] for name in COUNT_FIELDS[1:]), counts["rows_processed"])
        return answer

    def rejected_csv(self, job_id: int, *, client=None) -> list[list[str]]:
        response = (client or self.api).get(f"{IMPORTS_URL}{job_id}/rejected.csv")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(response["Content-Disposition"], f'attachment; filename="import-{job_id}-rejected.csv"')
        return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))

    def files_in_import_dir(self) -> list[Path]:
        return sorted(path for path in self.import_dir.rglob("*") if path.is_file())


class UploadTests(ImportTestCase):
    def test_upload_answers_202_with_the_queued_job_before_any_row_is_read(self):
        content = csv_file([record()])
        response = self.post_file("september.csv", content, run=False)

        self.assertEqual(response.status_code, 202, response.content)
        job = ImportJob.objects.get()
        self.assertEqual(response.json(), self.expected_answer(job.pk, status="queued", counts=NO_ROWS))
        self.assertEqual(
            (job.original_name, job.format, job.size_bytes, job.owner, job.status),
            ("september.csv", "csv", len(content), self.user, "queued"),
        )
        self.assertEqual(response["Location"], f"http://testserver/api/imports/{job.pk}/")
        self.assertEqual(Transaction.objects.count(), 0)
        # The upload is kept, byte for byte, under CDP_IMPORT_DIR and nowhere else.
        self.assertEqual(self.files_in_import_dir(), [Path(job.file.path)])
        self.assertEqual(Path(job.file.path).read_bytes(), content)

    def test_upload_queues_one_background_task_once_the_job_is_committed(self):
        with override_settings(TASKS=DATABASE_TASKS), self.captureOnCommitCallbacks(execute=True) as callbacks:
            response = self.post_file("september.csv", csv_file([record()]), run=False)
            self.assertEqual(DBTaskResult.objects.count(), 0)  # not before the job row is committed

        self.assertEqual(response.status_code, 202, response.content)
        self.assertEqual(len(callbacks), 1)
        job_id = response.json()["id"]
        task = DBTaskResult.objects.get()
        self.assertEqual(
            (task.task_path, task.status, task.args_kwargs),
            ("transactions.tasks.run_import", "READY", {"args": [], "kwargs": {"job_id": job_id}}),
        )
        # Queued for the worker, not run in the request.
        self.assertImport(job_id, status="queued", counts=NO_ROWS)
        self.assertEqual(Transaction.objects.count(), 0)

    def test_a_small_file_is_imported_and_its_status_reports_done(self):
        job_id = self.import_file("one.csv", csv_file([record()]))

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1))
        stored = Transaction.objects.get()
        self.assertEqual(
            (stored.customer_id, stored.name, stored.transaction_amount, stored.mob_no,
             stored.transaction_datetime, stored.pincode, stored.state),
            (101, "amit", Decimal("1500.75"), "9876543210", dt.datetime(2024, 9, 24, 15, 30, tzinfo=dt.timezone.utc),
             "110001", "Delhi"),
        )
        self.assertEqual(self.rejected_csv(job_id), [["line_number", "raw", "reason"]])

    def test_format_comes_from_the_extension_ndjson_or_jsonl(self):
        for customer_id, name in [(1, "records.ndjson"), (2, "records.JSONL")]:
            with self.subTest(name=name):
                job_id = self.import_file(name, ndjson_file([record(customer_id=customer_id)]))
                answer = self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1))
                self.assertEqual(answer["format"], "ndjson")

    def test_format_field_overrides_the_file_name(self):
        job_id = self.import_file("export.txt", ndjson_file([record()]), format="ndjson")

        answer = self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1))
        self.assertEqual((answer["format"], answer["original_name"]), ("ndjson", "export.txt"))

    def test_a_file_name_that_tells_no_format_is_refused_without_a_job(self):
        response = self.post_file("export.txt", csv_file([record()]))

        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            response.json(),
            {"format": ["Name the format (csv or ndjson), or upload a .csv, .ndjson or .jsonl file."]},
        )
        self.assertEqual(ImportJob.objects.count(), 0)
        self.assertEqual(self.files_in_import_dir(), [])

    def test_an_unknown_format_is_refused(self):
        response = self.post_file("export.csv", csv_file([record()]), format="xml")

        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json(), {"format": ['"xml" is not a valid choice.']})
        self.assertEqual(ImportJob.objects.count(), 0)

    def test_a_file_name_long_in_bytes_is_stored_shortened_and_kept_whole_for_display(self):
        # 85 three-byte letters are 255 bytes, the most a name may hold on most file systems; the
        # name field allows 255 characters (Django's upload parser cuts longer names to that).
        content = csv_file([record()])
        # The last name twice: the second file is stored beside the first under a name of its own.
        names = ["अ" * 90 + ".csv", "ß" * 251 + ".csv", "अ" * 251 + ".csv", "अ" * 251 + ".csv"]
        for number, name in enumerate(names):
            with self.subTest(number=number):
                response = self.post_file(name, content)

                self.assertEqual(response.status_code, 202, response.content)
                job = ImportJob.objects.get(pk=response.json()["id"])
                self.assertEqual((response.json()["original_name"], job.original_name), (name, name))
                stored = Path(job.file.path)
                self.assertLessEqual(len(stored.name.encode()), 255)  # what a file system holds
                self.assertTrue(stored.name.startswith(name[0] * 10), stored.name)
                self.assertEqual(stored.suffix, ".csv")
                self.assertEqual(stored.read_bytes(), content)
                outcome = {"created": 1} if number == 0 else {"duplicates": 1}
                self.assertImport(job.pk, status="done", counts=dict(NO_ROWS, rows_processed=1, **outcome))
        self.assertEqual(len(self.files_in_import_dir()), len(names))

    def test_a_file_name_of_nothing_a_file_system_may_hold_is_stored_under_a_name_of_its_own(self):
        # Django keeps letters, digits, "-", "_" and "." of a name, and refuses a name it empties.
        cases = [("😀😀", {"format": "csv"}, "upload"), ("😀.csv", {}, "upload.csv"),
                 ("...", {"format": "csv"}, "upload..."), ("$ %.csv", {}, "_.csv")]
        for name, fields, stored_name in cases:
            with self.subTest(name=name):
                response = self.post_file(name, csv_file([record()]), run=False, **fields)

                self.assertEqual(response.status_code, 202, response.content)
                job = ImportJob.objects.get(pk=response.json()["id"])
                self.assertEqual((job.original_name, Path(job.file.name).name), (name, stored_name))
                self.assertEqual(Path(job.file.path).parents[3], self.import_dir)  # under YYYY/MM/DD
                self.assertEqual(Path(job.file.path).read_bytes(), csv_file([record()]))

    def test_a_request_without_a_file_is_refused(self):
        response = self.api.post(IMPORTS_URL, {"format": "csv"}, format="multipart")

        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json(), {"file": ["No file was submitted."]})
        self.assertEqual(ImportJob.objects.count(), 0)

    @override_settings(CDP_MAX_UPLOAD_BYTES=2048)
    def test_an_upload_over_the_size_limit_is_refused_with_413(self):
        too_big = csv_file([record(customer_id=n) for n in range(1, 40)])
        self.assertGreater(len(too_big), 2048)

        response = self.post_file("big.csv", too_big)

        self.assertEqual(response.status_code, 413)
        self.assertEqual(response.json(), {"detail": "The file is larger than the limit of 2048 bytes."})
        self.assertEqual(ImportJob.objects.count(), 0)
        self.assertEqual(self.files_in_import_dir(), [])
        # The same limit lets a small file through.
        job_id = self.import_file("small.csv", csv_file([record()]))
        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1))


class AccessTests(ImportTestCase):
    def test_upload_without_credentials_is_401(self):
        response = self.post_file("one.csv", csv_file([record()]), client=APIClient())

        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json(), {"detail": "Authentication credentials were not provided."})
        self.assertEqual(response["WWW-Authenticate"], "Token")
        self.assertEqual((ImportJob.objects.count(), Transaction.objects.count()), (0, 0))

    def test_status_list_and_rejected_rows_need_credentials(self):
        job_id = self.import_file("one.csv", csv_file([record()]))
        for url in (IMPORTS_URL, f"{IMPORTS_URL}{job_id}/", f"{IMPORTS_URL}{job_id}/rejected.csv"):
            with self.subTest(url=url):
                response = APIClient().get(url)
                self.assertEqual(response.status_code, 401)
                self.assertEqual(response.json(), {"detail": "Authentication credentials were not provided."})

    def test_upload_needs_the_add_transaction_permission(self):
        viewer = token_client(make_user("viewer", permissions=("view_transaction",)))

        response = self.post_file("one.csv", csv_file([record()]), client=viewer)

        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json(), {"detail": "You do not have permission to ingest transactions."})
        self.assertEqual((ImportJob.objects.count(), Transaction.objects.count()), (0, 0))
        self.assertEqual(self.files_in_import_dir(), [])

    def test_another_users_import_is_404_and_left_out_of_the_list(self):
        other = token_client(make_user("other-client"))
        theirs = self.import_file("theirs.csv", csv_file([record(customer_id=1, pincode="0")]))
        self.assertEqual(ImportJob.objects.get(pk=theirs).owner.username, "api-client")

        for url in (f"{IMPORTS_URL}{theirs}/", f"{IMPORTS_URL}{theirs}/rejected.csv"):
            with self.subTest(url=url):
                response = other.get(url)
                self.assertEqual(response.status_code, 404)
                self.assertEqual(response.json(), {"detail": "No ImportJob matches the given query."})
        response = other.get(IMPORTS_URL)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), [])

    def test_the_list_holds_the_users_own_imports_newest_first(self):
        other = token_client(make_user("other-client"))
        first = self.import_file("first.csv", csv_file([record(customer_id=1)]))
        self.import_file("not-mine.csv", csv_file([record(customer_id=2)]), client=other)
        second = self.import_file("second.ndjson", ndjson_file([record(customer_id=3), record(customer_id=3)]))

        response = self.api.get(IMPORTS_URL)

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.json(),
            [
                self.expected_answer(second, status="done", counts=dict(NO_ROWS, rows_processed=2, created=1, duplicates=1)),
                self.expected_answer(first, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1)),
            ],
        )

    def test_staff_see_every_import(self):
        staff = token_client(make_user("staff", permissions=(), is_staff=True))
        mine = self.import_file("mine.csv", csv_file([record(customer_id=1)]))
        theirs = self.import_file(
            "theirs.csv", csv_file([record(customer_id=2)]), client=token_client(make_user("other-client"))
        )

        response = staff.get(IMPORTS_URL)

        self.assertEqual(response.status_code, 200)
        self.assertEqual([(job["id"], job["owner"]) for job in response.json()],
                         [(theirs, "other-client"), (mine, "api-client")])
        self.assertImport(theirs, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1), client=staff)
        self.assertEqual(self.rejected_csv(theirs, client=staff), [["line_number", "raw", "reason"]])


class ImportCountTests(ImportTestCase):
    def test_counts_follow_the_rules_and_add_up_to_the_rows_in_the_file(self):
        records = sample_records(rows=1500, seed=11)
        counts, rows = expected_import(records)
        # The data must exercise every outcome, or the comparison below proves little.
        self.assertTrue(all(counts[name] > 0 for name in COUNT_FIELDS), counts)

        job_id = self.import_file("sample.csv", csv_file(records))

        self.assertImport(job_id, status="done", counts=counts)
        self.assertEqual(counts["rows_processed"], len(records))
        self.assertEqual(stored_rows(), rows)
        self.assertEqual(RejectedRow.objects.filter(job_id=job_id).count(), counts["rejected"])
        self.assertEqual(
            {c.customer_id: (c.total_amount, c.transaction_count) for c in Customer.objects.all()},
            customer_totals_of(rows),
        )

    def test_csv_and_ndjson_of_the_same_records_give_the_same_counts_and_rows(self):
        records = sample_records(rows=800, seed=12)
        counts, rows = expected_import(records)

        csv_job = self.import_file("sample.csv", csv_file(records))
        from_csv = stored_rows()
        Transaction.objects.all().delete()
        Customer.objects.all().delete()
        ndjson_job = self.import_file("sample.ndjson", ndjson_file(records))
        from_ndjson = stored_rows()

        self.assertImport(csv_job, status="done", counts=counts)
        self.assertImport(ndjson_job, status="done", counts=counts)
        self.assertEqual(from_csv, rows)
        self.assertEqual(from_ndjson, rows)

    def test_importing_the_same_file_again_creates_nothing(self):
        records = sample_records(rows=600, seed=13)
        content = csv_file(records)
        first_counts, rows = expected_import(records)
        again_counts, rows_after = expected_import(records, stored=rows)
        self.assertEqual(again_counts["created"], 0)
        self.assertEqual(rows_after, rows)

        first = self.import_file("sample.csv", content)
        again = self.import_file("sample.csv", content)

        self.assertImport(first, status="done", counts=first_counts)
        self.assertImport(again, status="done", counts=again_counts)
        self.assertEqual(again_counts["duplicates"], first_counts["created"] + first_counts["duplicates"])
        self.assertEqual(stored_rows(), rows)

    def test_a_file_repeating_stored_transactions_counts_them_against_the_database(self):
        self.assertEqual(self.ingest(record(customer_id=7)).status_code, 201)
        self.assertEqual(self.ingest(record(customer_id=8)).status_code, 201)
        records = [record(customer_id=7), record(customer_id=8, transaction_amount="2.00"), record(customer_id=9)]

        job_id = self.import_file("mixed.ndjson", ndjson_file(records))

        self.assertImport(
            job_id, status="done", counts=dict(NO_ROWS, rows_processed=3, created=1, duplicates=1, conflicts=1)
        )
        self.assertEqual(Transaction.objects.filter(customer_id=8).get().transaction_amount, Decimal("1500.75"))


class CsvLayoutTests(ImportTestCase):
    def test_header_in_any_order_with_bom_crlf_and_quoted_commas(self):
        records = [
            record(customer_id=1, name="Sharma, Amit", state="Tamil Nadu"),
            record(customer_id=2, name='Priya "P" Iyer', transaction_amount="10,5"),  # a comma is no decimal point
            record(customer_id=3, name="Zoë Ñandú", state="West Bengal", pincode="700001"),
        ]
        columns = ["state", "pincode", "transaction_datetime", "mob_no", "transaction_amount", "name", "customer_id"]
        content = csv_file(records, columns=columns, bom=True, line_end="\r\n")
        self.assertIn(b'"Sharma, Amit"', content)

        job_id = self.import_file("reordered.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=3, created=2, rejected=1))
        when = dt.datetime(2024, 9, 24, 15, 30, tzinfo=dt.timezone.utc)
        self.assertEqual(
            stored_rows(),
            {
                (1, when): ("Sharma, Amit", "9876543210", Decimal("1500.75"), "110001", "Tamil Nadu"),
                (3, when): ("Zoë Ñandú", "9876543210", Decimal("1500.75"), "700001", "West Bengal"),
            },
        )
        self.assertEqual(
            self.rejected_csv(job_id),
            [
                ["line_number", "raw", "reason"],
                ["3", 'Delhi,110001,2024-09-24T15:30:00Z,9876543210,"10,5","Priya ""P"" Iyer",2',
                 "transaction_amount: Enter an amount as a number, e.g. 1500.75."],
            ],
        )

    def test_header_names_ignore_case_and_spaces_and_extra_columns_are_ignored(self):
        content = (
            b" Customer_ID ,NAME,Transaction_Amount,mob_no,transaction_datetime,pincode,State,note\n"
            b"5,amit,99.50,9876543210,2024-01-02T03:04:05+05:30,110001,Delhi,first order\n"
        )

        job_id = self.import_file("upper.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1))
        self.assertEqual(
            stored_rows(),
            {(5, dt.datetime(2024, 1, 1, 21, 34, 5, tzinfo=dt.timezone.utc)):
                ("amit", "9876543210", Decimal("99.50"), "110001", "Delhi")},
        )

    def test_rows_with_too_many_or_too_few_fields_are_rejected_and_the_rest_stored(self):
        header = ",".join(TRANSACTION_FIELDS)
        content = "\n".join([
            header,
            "1,amit,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi",
            "2,amit,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi,surplus",
            "3,amit,10.00",
            "",  # a blank line is not a row
            '4,"amit\nsharma",10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi',  # one row over two lines
            "5,amit",
            "",
        ]).encode()

        job_id = self.import_file("ragged.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=5, created=2, rejected=3))
        self.assertEqual(sorted(Transaction.objects.values_list("customer_id", "name")), [(1, "amit"), (4, "amit sharma")])
        self.assertEqual(
            self.rejected_csv(job_id),
            [
                ["line_number", "raw", "reason"],
                ["3", "2,amit,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi,surplus",
                 "Expected 7 fields as in the header, found 8."],
                ["4", "3,amit,10.00", "Expected 7 fields as in the header, found 3."],
                ["8", "5,amit", "Expected 7 fields as in the header, found 2."],
            ],
        )

    def test_whitespace_lines_holding_a_lone_carriage_return_are_blank_not_rows(self):
        # Given to the CSV reader, " \r \n" was a CSV error: a rejected row of a line holding nothing.
        good = "1,amit,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi\n"
        content = csv_file([]) + (" \r \n" + good + "\r \n\t\r\n" + good.replace("1,", "2,", 1)).encode()

        job_id = self.import_file("blanks.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=2, created=2))
        self.assertEqual(self.rejected_csv(job_id), [["line_number", "raw", "reason"]])

    def test_a_quoted_newline_into_a_line_not_utf8_rejects_that_row_and_not_the_next(self):
        # The row's second line set the reader's "not UTF-8" flag, which stayed set for the next
        # row: a valid row after it was rejected as not UTF-8 too.
        content = csv_file([]) + (
            '1,"Jose\nFern\xe1ndez",10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi\n'.encode("latin-1")
            + b"2,amit,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi\n"
        )
        self.assertIn(b'"Jose\nFern\xe1ndez"', content)  # the second line of the row is the one not UTF-8

        job_id = self.import_file("latin1-newline.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=2, created=1, rejected=1))
        self.assertEqual(list(Transaction.objects.values_list("customer_id", "name")), [(2, "amit")])
        self.assertEqual(
            self.rejected_csv(job_id)[1:],
            [["2", '1,"Jose\nFern\ufffdndez",10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi', UTF8_MESSAGE]],
        )


class RejectedRowTests(ImportTestCase):
    INVALID = [
        record(customer_id="abc"),
        record(transaction_amount="12.345", pincode="12345"),
        record(transaction_datetime="2024-02-30T10:00:00Z"),
        record(mob_no="12"),
        record(name="   "),
        record(state="x" * 51),
        record(transaction_amount="0"),
    ]

    def test_rejected_csv_lists_every_rejected_row_with_line_number_raw_row_and_reason(self):
        records = [record(customer_id=1), *self.INVALID, record(customer_id=2)]
        content = csv_file(records)
        lines = content.decode().splitlines()

        job_id = self.import_file("mistakes.csv", content)

        self.assertImport(job_id, status="done",
                          counts=dict(NO_ROWS, rows_processed=9, created=2, rejected=len(self.INVALID)))
        rejected = self.rejected_csv(job_id)
        self.assertEqual(rejected[0], ["line_number", "raw", "reason"])
        # Line 1 is the header, line 2 the first (valid) record.
        self.assertEqual([(row[0], row[1]) for row in rejected[1:]],
                         [(str(n), lines[n - 1]) for n in range(3, 3 + len(self.INVALID))])

    def test_rejection_reasons_are_the_json_apis_validation_messages(self):
        job_id = self.import_file("mistakes.ndjson", ndjson_file(self.INVALID))

        reasons = [row[2] for row in self.rejected_csv(job_id)[1:]]

        expected = []
        for body in self.INVALID:
            response = self.ingest(body)
            self.assertEqual(response.status_code, 400)
            expected.append("; ".join(f"{field}: {' '.join(messages)}" for field, messages in response.json().items()))
        self.assertEqual(reasons, expected)
        self.assertIn("pincode: Enter a pincode of exactly 6 digits that does not start with 0.", reasons[1])
        self.assertEqual(Transaction.objects.count(), 0)

    def test_bad_ndjson_lines_are_rejected_one_by_one(self):
        content = b"\n".join([
            json.dumps(record(customer_id=1)).encode(),
            b"{not json",
            b"",
            b"[1, 2]",
            json.dumps({"customer_id": 2}).encode(),
            json.dumps(record(customer_id=3, name=None)).encode(),
            json.dumps(record(customer_id=4)).encode(),
        ]) + b"\n"

        job_id = self.import_file("lines.ndjson", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=6, created=2, rejected=4))
        required = "This field is required."
        self.assertEqual(
            self.rejected_csv(job_id)[1:],
            [
                ["2", "{not json", "The line is not valid JSON: Expecting property name enclosed in double quotes "
                                   "or '}': line 1 column 2 (char 1)."],
                ["4", "[1, 2]", "non_field_errors: Expected a transaction record (a JSON object)."],
                ["5", '{"customer_id": 2}', "; ".join(
                    f"{field}: {required}" for field in TRANSACTION_FIELDS if field != "customer_id")],
                ["6", json.dumps(record(customer_id=3, name=None)), "name: This field may not be null."],
            ],
        )

    def test_a_number_beyond_decimals_range_rejects_its_line_and_the_rest_are_stored(self):
        huge = "1e1000000000000000000"
        out_of_range = json.dumps(record(customer_id=2, comment="N")).replace('"N"', huge)
        content = "\n".join([
            json.dumps(record(customer_id=1)),
            out_of_range,
            json.dumps(record(customer_id=3, transaction_amount="N")).replace('"N"', huge),
            json.dumps(record(customer_id=4)),
        ]).encode() + b"\n"

        job_id = self.import_file("huge.ndjson", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=4, created=2, rejected=2))
        reason = "The line is not valid JSON: a number is out of range (its exponent is too large)."
        self.assertEqual(self.rejected_csv(job_id)[1:], [["2", out_of_range, reason], ["3", content.decode().splitlines()[2], reason]])
        self.assertEqual(sorted(Transaction.objects.values_list("customer_id", flat=True)), [1, 4])
        # In a CSV file the same text is a string, which the amount's rule refuses.
        csv_job = self.import_file("huge.csv", csv_file([record(customer_id=5, transaction_amount=huge)]))
        self.assertEqual(self.rejected_csv(csv_job)[1][2], "transaction_amount: Enter an amount as a number, e.g. 1500.75.")

    def test_a_datetime_followed_by_nul_bytes_is_rejected_not_stored_as_the_datetime_before_them(self):
        # Python 3.11's datetime.fromisoformat stops reading at a NUL: the row was stored.
        row = "2,amit,10.00,9876543210,2024-01-01T00:00:00Z\x00\x00,110001,Delhi"
        content = csv_file([record(customer_id=1)]) + row.encode() + b"\n"

        job_id = self.import_file("nul-datetime.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=2, created=1, rejected=1))
        self.assertEqual(list(Transaction.objects.values_list("customer_id", flat=True)), [1])
        self.assertEqual(
            self.rejected_csv(job_id)[1:],
            [["3", row.replace("\x00", "\ufffd"), "transaction_datetime: Enter an ISO 8601 datetime, e.g. "
              "2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."]],
        )

    def test_a_lone_surrogate_escape_rejects_its_line_and_the_rest_are_stored(self):
        # The line's fields, written again with the mobile number masked, held the lone
        # surrogate itself, which no database text can hold: the import failed on its chunk.
        in_name = json.dumps(record(customer_id=2, name="NAME")).replace("NAME", "a\\ud800b")
        in_a_key = json.dumps(record(customer_id=3, transaction_amount="-1"))[:-1] + ', "k\\udfff": "v\\ud83d"}'
        content = "\n".join([json.dumps(record(customer_id=1)), in_name, in_a_key,
                             json.dumps(record(customer_id=4))]).encode() + b"\n"

        job_id = self.import_file("surrogates.ndjson", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=4, created=2, rejected=2))
        self.assertEqual(sorted(Transaction.objects.values_list("customer_id", flat=True)), [1, 4])
        reasons = ["name: Enter a name as valid Unicode text.", "transaction_amount: Enter an amount greater than 0."]
        self.assertEqual(self.rejected_csv(job_id)[1:], [["2", in_name, reasons[0]], ["3", in_a_key, reasons[1]]])
        # Masked for a reader without view_pii, the escapes are kept as sent.
        staff = token_client(make_user("boss", permissions=("view_transaction",), is_staff=True))
        masked = dict(record(), mob_no="98******10")
        self.assertEqual(
            self.rejected_csv(job_id, client=staff)[1:],
            [["2", json.dumps(dict(masked, customer_id=2, name="NAME"), separators=(",", ":")).replace("NAME", "a\\ud800b"),
              reasons[0]],
             ["3", json.dumps(dict(masked, customer_id=3, transaction_amount="-1"), separators=(",", ":"))[:-1]
              + ',"k\\udfff":"v\\ud83d"}', reasons[1]]],
        )

    def test_over_long_lines_filling_a_chunk_are_stored_in_statements_the_database_accepts(self):
        # Nine lines cut at MAX_LINE_BYTES were one INSERT of ~19 MB of rejected rows, over
        # MariaDB's max_allowed_packet (16 MiB): the chunk failed on every retry, the import never ended.
        long_line = "{n},{name},10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi\n"
        name = "x" * (MAX_LINE_BYTES + 1000)
        content = csv_file([record(customer_id=1)]) + "".join(
            long_line.format(n=n, name=name) for n in range(2, 11)).encode()

        job_id = self.post_file("long-lines.csv", content, run=False).json()["id"]
        with CaptureQueriesContext(connection) as queries:  # the worker's queries, read before a request resets them
            tasks.run_import.enqueue(job_id=job_id)
        table = connection.ops.quote_name(RejectedRow._meta.db_table)
        inserts = [query["sql"] for query in queries.captured_queries if query["sql"].startswith(f"INSERT INTO {table}")]

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=10, created=1, rejected=9))
        # Each line kept as read: its first MAX_LINE_BYTES and "..." (compared as such, not shown whole).
        self.assertEqual(
            [(line, raw == long_line.format(n=line - 1, name=name)[:MAX_LINE_BYTES] + "...", reason)
             for line, raw, reason in RejectedRow.objects.filter(job_id=job_id).values_list("line_number", "raw", "reason")],
            [(n + 1, True, "Expected 7 fields as in the header, found 2.") for n in range(2, 11)],
        )
        # A line as sent and masked is over a statement's budget: one statement each, none near the limit.
        self.assertEqual(len(inserts), 9)
        self.assertLess(max(len(sql) for sql in inserts), 3 * MAX_LINE_BYTES)


class RejectedRowMaskingTests(ImportTestCase):
    """rejected.csv shows mobile numbers whole to the import's owner, who sent them, and to users
    with the view-PII permission; to anyone else (staff read every import) they are masked."""

    CSV_LINES = [
        ",".join(TRANSACTION_FIELDS),
        "1,amit,1500.75,9876543210,2024-09-24T15:30:00Z,110001,Delhi",
        "2,amit,1500.75,9876543210,2024-09-24T15:30:00Z,11001,Delhi",
        '3,amit,0,"+91 98765-43210",2024-09-24T15:30:00Z,110001,Delhi',
        "4,call 9123456789,10,12,2024-09-24T15:30:00Z,110001,Delhi",
        # Too few fields: which one is the mobile number can't be told, so any run of 7 or more
        # digits (spaced or dashed, as a mobile number may be written) is masked.
        "5,amit,9123456789,2024-09-24T15:30:00Z",
    ]
    CSV_MASKED = [
        "2,amit,1500.75,98******10,2024-09-24T15:30:00Z,11001,Delhi",
        "3,amit,0,+9***********10,2024-09-24T15:30:00Z,110001,Delhi",
        "4,call 91******89,10,**,2024-09-24T15:30:00Z,110001,Delhi",
        "5,amit,91******89,20******24T15:30:00Z",
    ]
    NDJSON_LINES = [
        json.dumps(record(customer_id=1)),
        json.dumps(record(customer_id=2, mob_no=9876543210, pincode="1")),
        # The number given twice: the parsed record holds the second; the first must not show.
        '{"mob_no": "9876543210", "mob_no": "x", "customer_id": 3}',
        '{"mob_no": "+91 9876543210", oops',
        json.dumps(record(customer_id=4, contact={"phone": "9123456789"}, transaction_amount="-1")),
    ]
    NDJSON_MASKED = [
        '{"customer_id":2,"name":"amit","transaction_amount":"1500.75","mob_no":"98******10",'
        '"transaction_datetime":"2024-09-24T15:30:00Z","pincode":"1","state":"Delhi"}',
        '{"mob_no":"*","customer_id":3}',
        '{"mob_no": "+9**********10", oops',
        json.dumps(record(customer_id=4, contact={"phone": "91******89"}, transaction_amount="-1", mob_no="98******10"),
                   separators=(",", ":")),
    ]

    def setUp(self):
        super().setUp()
        self.csv_job = self.import_file("mobiles.csv", ("\n".join(self.CSV_LINES) + "\n").encode())
        self.ndjson_job = self.import_file("mobiles.ndjson", ("\n".join(self.NDJSON_LINES) + "\n").encode())

    def raw_rows(self, job_id: int, client) -> list[str]:
        rows = self.rejected_csv(job_id, client=client)
        self.assertEqual(rows[0], ["line_number", "raw", "reason"])
        return [raw for _, raw, _ in rows[1:]]

    def test_staff_without_view_pii_see_another_users_rejected_rows_masked(self):
        staff = token_client(make_user("boss", permissions=("view_transaction",), is_staff=True))

        self.assertEqual(self.raw_rows(self.csv_job, staff), self.CSV_MASKED)
        self.assertEqual(self.raw_rows(self.ndjson_job, staff), self.NDJSON_MASKED)
        for job_id in (self.csv_job, self.ndjson_job):
            body = b"".join(staff.get(f"{IMPORTS_URL}{job_id}/rejected.csv").streaming_content).decode()
            for whole in ("9876543210", "98765-43210", "9123456789"):
                self.assertNotIn(whole, body)
        # Line numbers and reasons are the same for every reader.
        self.assertEqual([(row[0], row[2]) for row in self.rejected_csv(self.csv_job, client=staff)],
                         [(row[0], row[2]) for row in self.rejected_csv(self.csv_job)])

    def test_the_owner_and_users_with_view_pii_see_the_rows_as_sent(self):
        pii_staff = token_client(make_user("operator", permissions=("view_transaction", "view_pii"), is_staff=True))
        for client in (self.api, pii_staff):
            with self.subTest(client=client):
                self.assertEqual(self.raw_rows(self.csv_job, client), self.CSV_LINES[2:])
                self.assertEqual(self.raw_rows(self.ndjson_job, client), self.NDJSON_LINES[1:])


class WholeFileOutcomeTests(ImportTestCase):
    """Each broken file ends in a clear state: the job failed with a message, or rows rejected."""

    def assertFailed(self, job_id: int, error: str) -> None:
        self.assertImport(job_id, status="failed", counts=NO_ROWS, error=error)
        self.assertEqual(Transaction.objects.count(), 0)

    def test_an_empty_file_fails_the_job(self):
        for name, content in [("empty.csv", b""), ("empty.ndjson", b""), ("blank.csv", b"\r\n\n  \n"),
                              ("bom-only.csv", b"\xef\xbb\xbf")]:
            with self.subTest(name=name):
                self.assertFailed(self.import_file(name, content), "The file is empty.")

    def test_a_csv_with_only_a_header_is_done_with_no_rows(self):
        job_id = self.import_file("header.csv", csv_file([]))

        self.assertImport(job_id, status="done", counts=NO_ROWS)
        self.assertEqual(self.rejected_csv(job_id), [["line_number", "raw", "reason"]])

    def test_a_csv_missing_a_column_fails_the_job_naming_it(self):
        columns = [field for field in TRANSACTION_FIELDS if field not in ("pincode", "state")]
        content = csv_file([{k: v for k, v in record().items() if k in columns}], columns=columns)

        self.assertFailed(
            self.import_file("short.csv", content),
            "The header row is missing the column(s) pincode, state; it must name all of customer_id, name, "
            "transaction_amount, mob_no, transaction_datetime, pincode, state.",
        )

    def test_a_binary_file_fails_the_job(self):
        png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
        for name in ("photo.csv", "photo.ndjson"):
            with self.subTest(name=name):
                self.assertFailed(self.import_file(name, png), "The file is not a text file (it contains binary data).")

    def test_a_utf16_file_fails_the_job(self):
        records = [record(customer_id=1), record(customer_id=2, name="José")]
        for name, text in [("utf16.csv", csv_file(records).decode()), ("utf16.ndjson", ndjson_file(records).decode())]:
            for codec in ("utf-16", "utf-16-le", "utf-16-be"):
                with self.subTest(name=name, codec=codec):
                    self.assertFailed(self.import_file(name, text.encode(codec)), NOT_TEXT_MESSAGE)

    def test_a_header_with_a_nul_byte_fails_the_job(self):
        content = csv_file([record()]).replace(b"\n", b",\x00\n", 1)  # a last column named NUL

        self.assertFailed(self.import_file("nul-header.csv", content), NOT_TEXT_MESSAGE)

    def test_a_few_rows_with_nul_bytes_in_the_first_kilobytes_are_rejected_and_the_others_stored(self):
        # A NUL anywhere in the first 8 KB failed the whole file as binary: one row's problem.
        csv_reason = "name: Null characters are not allowed."
        for name, first_id, to_file, nul_lines, reasons in [
            ("nul.csv", 1, csv_file, ["9,am\x00it,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi"] * 2,
             [csv_reason, csv_reason]),
            ("nul.ndjson", 11, ndjson_file, [json.dumps(record(customer_id=19)).replace("amit", "am\x00it"), "\x00" * 3],
             ["The line is not valid JSON: Invalid control character '\\x00' at: line 1 column 32 (char 31).",
              "The line is not valid JSON: Expecting value: line 1 column 1 (char 0)."]),
        ]:
            with self.subTest(name=name):
                ids = [first_id, first_id + 1, first_id + 2]
                good = to_file([record(customer_id=n) for n in ids]).decode().splitlines()
                header = good[:1] if name.endswith(".csv") else []
                rows = good[len(header):]
                # A NUL row first, then two good rows, a NUL row and a good one: the file is 4 KB at most.
                lines = [*header, nul_lines[0], *rows[:2], nul_lines[1], rows[2]]
                job_id = self.import_file(name, ("\n".join(lines) + "\n").encode())

                self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=5, created=3, rejected=2))
                self.assertEqual(sorted(Transaction.objects.filter(customer_id__in=ids).values_list(
                    "customer_id", flat=True)), ids)
                first = len(header) + 1
                self.assertEqual(
                    self.rejected_csv(job_id)[1:],
                    [[str(first), nul_lines[0].replace("\x00", "\ufffd"), reasons[0]],
                     [str(first + 3), nul_lines[1].replace("\x00", "\ufffd"), reasons[1]]],
                )

    def test_a_header_that_is_not_utf8_fails_the_job(self):
        content = csv_file([record()]).replace(b"name", "nämé".encode("latin-1"), 1)

        self.assertFailed(self.import_file("latin1.csv", content),
                          "The file is not UTF-8 text (the header row cannot be decoded).")

    def test_rows_that_are_not_utf8_are_rejected_and_the_others_stored(self):
        for good_id, name, to_file, reason in [
            (1, "mixed.csv", lambda r: csv_file([r]).split(b"\n", 1)[1], UTF8_MESSAGE),
            (3, "mixed.ndjson", lambda r: ndjson_file([r]), "The line is not valid UTF-8 text."),
        ]:
            with self.subTest(name=name):
                good = to_file(record(customer_id=good_id, name="José"))
                bad = to_file(record(customer_id=good_id + 1, name="José")).replace("é".encode(), b"\xe9")
                header = csv_file([]) if name.endswith(".csv") else b""
                job_id = self.import_file(name, header + good + bad)

                self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=2, created=1, rejected=1))
                self.assertEqual(list(Transaction.objects.filter(customer_id__in=[good_id, good_id + 1])
                                      .values_list("customer_id", "name")), [(good_id, "José")])
                [[line, raw, given_reason]] = self.rejected_csv(job_id)[1:]
                self.assertEqual((given_reason, "Jos\ufffd" in raw), (reason, True))

    def test_a_null_byte_after_the_first_kilobytes_rejects_its_row(self):
        # Past the sniffed head the file is read row by row; the row is stored for the user with
        # the NUL shown as U+FFFD, since PostgreSQL text can't hold it.
        padding = [record(customer_id=n, transaction_datetime=f"2024-01-01T00:{n // 60:02d}:{n % 60:02d}Z")
                   for n in range(1, 151)]
        content = csv_file(padding) + b"999,am\x00it,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi\n"
        self.assertGreater(len(content), 8192)

        job_id = self.import_file("nul.csv", content)

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=151, created=150, rejected=1))
        self.assertEqual(
            self.rejected_csv(job_id)[1:],
            [["152", "999,am\ufffdit,10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi",
              "name: Null characters are not allowed."]],
        )

    def test_a_file_gone_before_the_worker_reads_it_fails_the_job(self):
        response = self.post_file("gone.csv", csv_file([record()]), run=False)
        job = ImportJob.objects.get(pk=response.json()["id"])
        os.remove(job.file.path)

        tasks.run_import.enqueue(job_id=job.pk)

        self.assertFailed(job.pk, "The uploaded file cannot be read (No such file or directory).")

    def test_a_finished_import_is_not_run_again(self):
        job_id = self.import_file("one.csv", csv_file([record()]))
        finished = self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1))

        tasks.run_import.enqueue(job_id=job_id)

        self.assertEqual(self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=1, created=1)),
                         finished)
        self.assertEqual(Transaction.objects.count(), 1)


class WorkerDied(BaseException):
    """Stands for a worker killed between two chunks: like SIGKILL, nothing in the worker may catch it."""


def dying_after(chunks: int, *, before_chunk=None):
    """An _import_chunk that commits `chunks` chunks, then dies (or calls `before_chunk`)."""
    real_import_chunk = services.imports._import_chunk
    calls = 0

    def import_chunk(**kwargs):
        nonlocal calls
        calls += 1
        if calls > chunks:
            if before_chunk is None:
                raise WorkerDied()
            before_chunk(kwargs["job_id"])
        real_import_chunk(**kwargs)

    return import_chunk


class ResumeTests(ImportTestCase):
    def interrupted_import(self, name: str, content: bytes, *, chunk_rows: int, chunks: int) -> int:
        with override_settings(CDP_IMPORT_CHUNK_ROWS=chunk_rows), \
                mock.patch.object(services.imports, "_import_chunk", dying_after(chunks)), \
                self.assertLogs("django_tasks", "ERROR"):
            return self.import_file(name, content)

    def test_an_interrupted_import_resumes_from_its_last_chunk_with_the_same_counts(self):
        records = sample_records(rows=1000, seed=21)
        counts, rows = expected_import(records)
        job_id = self.interrupted_import("sample.csv", csv_file(records), chunk_rows=100, chunks=3)

        job = ImportJob.objects.get(pk=job_id)
        self.assertEqual((job.status, job.rows_processed, job.line_number), ("running", 300, 301))
        stopped_at = {name: getattr(job, name) for name in COUNT_FIELDS}
        self.assertEqual(stopped_at, expected_import(records[:300])[0])
        self.assertEqual(Transaction.objects.count(), job.created)

        # A restarted worker requeues it; another chunk size proves the marker is in the file, not in rows.
        with override_settings(CDP_IMPORT_CHUNK_ROWS=70):
            requeued = services.requeue_stale_imports(stale_after=dt.timedelta(0))

        self.assertEqual(requeued, [job_id])
        self.assertImport(job_id, status="done", counts=counts)
        self.assertEqual(stored_rows(), rows)
        self.assertEqual(RejectedRow.objects.filter(job_id=job_id).count(), counts["rejected"])
        self.assertEqual(
            {c.customer_id: (c.total_amount, c.transaction_count) for c in Customer.objects.all()},
            customer_totals_of(rows),
        )

    def test_an_interrupted_ndjson_import_resumes_the_same_way(self):
        records = sample_records(rows=500, seed=22)
        counts, rows = expected_import(records)
        job_id = self.interrupted_import("sample.ndjson", ndjson_file(records), chunk_rows=64, chunks=2)
        self.assertEqual(ImportJob.objects.get(pk=job_id).rows_processed, 128)

        self.assertEqual(services.requeue_stale_imports(stale_after=dt.timedelta(0)), [job_id])

        self.assertImport(job_id, status="done", counts=counts)
        self.assertEqual(stored_rows(), rows)

    def test_an_over_long_line_at_the_end_of_a_chunk_does_not_shift_the_resume_point(self):
        # A line far longer than any record is cut short when read; the resume marker must
        # still point just past it, or the next run would start inside the following row.
        monster = "1," + "x" * (2 * 1024 * 1024 + 100) + ",10.00,9876543210,2024-01-01T00:00:00Z,110001,Delhi"
        after = record(customer_id=123456, transaction_datetime="2024-05-05T05:05:05Z")
        content = csv_file([record(customer_id=1)]) + monster.encode() + b"\n" + csv_file([after]).split(b"\n", 1)[1]
        job_id = self.interrupted_import("monster.csv", content, chunk_rows=2, chunks=1)
        self.assertEqual(ImportJob.objects.get(pk=job_id).rows_processed, 2)

        self.assertEqual(services.requeue_stale_imports(stale_after=dt.timedelta(0)), [job_id])

        self.assertImport(job_id, status="done", counts=dict(NO_ROWS, rows_processed=3, created=2, rejected=1))
        self.assertEqual(sorted(Transaction.objects.values_list("customer_id", flat=True)), [1, 123456])

    def test_a_recently_active_import_is_not_requeued(self):
        records = sample_records(rows=300, seed=23)
        job_id = self.interrupted_import("sample.csv", csv_file(records), chunk_rows=100, chunks=1)

        self.assertEqual(services.requeue_stale_imports(stale_after=dt.timedelta(minutes=1)), [])

        job = ImportJob.objects.get(pk=job_id)
        self.assertEqual((job.status, job.rows_processed), ("running", 100))

    def test_a_run_whose_job_was_taken_over_stops_without_writing_its_chunk(self):
        records = sample_records(rows=300, seed=24)

        def another_run_takes_over(job_id):
            ImportJob.objects.filter(pk=job_id).update(runner="another-run")

        with override_settings(CDP_IMPORT_CHUNK_ROWS=100), \
                mock.patch.object(services.imports, "_import_chunk", dying_after(1, before_chunk=another_run_takes_over)):
            job_id = self.import_file("sample.csv", csv_file(records))

        job = ImportJob.objects.get(pk=job_id)
        first_chunk_counts, first_chunk_rows = expected_import(records[:100])
        self.assertEqual((job.status, job.runner), ("running", "another-run"))
        self.assertEqual({name: getattr(job, name) for name in COUNT_FIELDS}, first_chunk_counts)
        self.assertEqual(stored_rows(), first_chunk_rows)


class PruneTests(ImportTestCase):
    def test_prune_deletes_old_finished_files_and_keeps_the_job_records(self):
        content = csv_file([record(customer_id=1), record(customer_id=2, pincode="1")])
        old = self.import_file("old.csv", content)
        recent = self.import_file("recent.csv", content)
        queued = self.post_file("queued.csv", content, run=False).json()["id"]
        eight_days_ago = timezone.now() - dt.timedelta(days=8)
        ImportJob.objects.filter(pk__in=[old, queued]).update(created_at=eight_days_ago)
        paths = {job.pk: Path(job.file.path) for job in ImportJob.objects.all()}
        self.assertTrue(all(path.is_relative_to(self.import_dir) for path in paths.values()))
        old_answer = self.assertImport(
            old, status="done", counts=dict(NO_ROWS, rows_processed=2, created=1, rejected=1))

        out = io.StringIO()
        call_command("prune_imports", stdout=out)

        self.assertEqual(out.getvalue(), "Deleted the files of 1 import(s) older than 7 day(s).\n")
        self.assertEqual(self.files_in_import_dir(), sorted([paths[recent], paths[queued]]))
        self.assertEqual(ImportJob.objects.get(pk=old).file.name, "")
        # What was loaded stays on record: the counts and the rejected rows.
        self.assertEqual(self.assertImport(
            old, status="done", counts=dict(NO_ROWS, rows_processed=2, created=1, rejected=1)), old_answer)
        self.assertEqual(len(self.rejected_csv(old)), 2)
        self.assertEqual(Transaction.objects.count(), 1)

    def test_prune_takes_the_retention_from_days(self):
        job_id = self.import_file("one.csv", csv_file([record()]))
        ImportJob.objects.filter(pk=job_id).update(created_at=timezone.now() - dt.timedelta(days=2))

        out = io.StringIO()
        call_command("prune_imports", "--days", "3", stdout=out)
        self.assertEqual(out.getvalue(), "Deleted the files of 0 import(s) older than 3 day(s).\n")
        self.assertEqual(len(self.files_in_import_dir()), 1)

        out = io.StringIO()
        call_command("prune_imports", "--days", "1", stdout=out)
        self.assertEqual(out.getvalue(), "Deleted the files of 1 import(s) older than 1 day(s).\n")
        self.assertEqual(self.files_in_import_dir(), [])
