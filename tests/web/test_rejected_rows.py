"""An import's rejected rows on its page and as a seven-field file to fix and upload again."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings

from tests.support import VIEWER, DashboardTestMixin, logged_in_client
from transactions.models import ImportJob, Transaction

IMMEDIATE_TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}
FIX_HEADER = [
    "customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state", "reason",
]
# Columns in another order than the download's, with a column of the client's own.
CSV_FILE = (
    "state,pincode,transaction_datetime,mob_no,transaction_amount,name,customer_id,note\n"
    "Delhi,110001,2024-09-24T15:30:00Z,9876543210,100.50,amit,1,ok\n"
    'Delhi,011001,2024-09-25T10:00:00Z,9876543211,20,"Asha, K",2,bad pincode\n'
    "Punjab,141001,not a date,9876543212,30,Ravi,3,bad date\n"
    "too,few,fields\n"
).encode()


@override_settings(TASKS=IMMEDIATE_TASKS)
class RejectedRowsToFixTests(DashboardTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-web-rejected-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir))

    def upload(self, name: str, content: bytes, client=None) -> ImportJob:
        with self.captureOnCommitCallbacks(execute=True):
            (client or self.client).post("/upload/", {"file": SimpleUploadedFile(name, content)})
        return ImportJob.objects.order_by("-pk").first()

    def download(self, job: ImportJob, client=None) -> list[list[str]]:
        response = (client or self.client).get(f"/imports/{job.pk}/rejected-rows-to-fix.csv")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response["Content-Disposition"], f'attachment; filename="import-{job.pk}-rejected-rows-to-fix.csv"'
        )
        return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))

    def test_the_file_has_the_seven_fields_in_order_and_a_reason(self):
        job = self.upload("sales.csv", CSV_FILE)
        self.assertEqual((job.status, job.created, job.rejected), ("done", 1, 3))
        self.assertEqual(
            self.download(job),
            [
                FIX_HEADER,
                ["2", "Asha, K", "9876543211", "20", "2024-09-25T10:00:00Z", "011001", "Delhi",
                 "Line 3: pincode: Enter a pincode of exactly 6 digits that does not start with 0."],
                ["3", "Ravi", "9876543212", "30", "not a date", "141001", "Punjab",
                 "Line 4: transaction_datetime: " + job.rejected_rows.get(line_number=4).reason.split(": ", 1)[1]],
                ["", "", "", "", "", "", "",
                 "Line 5: Expected 8 fields as in the header, found 3. The row as sent: too,few,fields"],
            ],
        )

    def test_fixed_rows_upload_again_with_the_reason_column_ignored(self):
        job = self.upload("sales.csv", CSV_FILE)
        rows = self.download(job)
        rows[1][5] = "110002"  # the pincode fixed
        rows[2][4] = "2024-09-26T09:00:00Z"  # the date fixed
        del rows[3]  # the unreadable line given up
        fixed = io.StringIO()
        csv.writer(fixed, lineterminator="\n").writerows(rows)

        again = self.upload("fixed.csv", fixed.getvalue().encode())

        self.assertEqual((again.status, again.created, again.rejected, again.error), ("done", 2, 0, ""))
        self.assertEqual(
            sorted(Transaction.objects.values_list("customer_id", "pincode", "state")),
            [(1, "110001", "Delhi"), (2, "110002", "Delhi"), (3, "141001", "Punjab")],
        )

    def test_ndjson_rows_come_out_in_the_seven_fields(self):
        ndjson = (
            b'{"customer_id": 5, "name": "Zoya", "transaction_amount": 12.50, "mob_no": 9876543219,'
            b' "transaction_datetime": "2024-01-01T00:00:00Z", "pincode": "110001", "state": null}\n'
            b"[1, 2]\n"
        )
        job = self.upload("sales.ndjson", ndjson)
        rows = self.download(job)
        self.assertEqual(rows[0], FIX_HEADER)
        self.assertEqual(rows[1][:7], ["5", "Zoya", "9876543219", "12.50", "2024-01-01T00:00:00Z", "110001", ""])
        self.assertTrue(rows[1][7].startswith("Line 1: state: "), rows[1][7])
        self.assertEqual(rows[2][:7], [""] * 7)
        self.assertTrue(rows[2][7].endswith("The row as sent: [1, 2]"), rows[2][7])

    def test_others_without_view_pii_get_the_mobile_numbers_masked(self):
        job = self.upload("sales.csv", CSV_FILE)
        staff = logged_in_client("boss", permissions=VIEWER, is_staff=True)
        rows = self.download(job, staff)
        self.assertEqual([row[2] for row in rows[1:3]], ["98******11", "98******12"])
        self.assertNotIn("9876543211", str(rows))
        self.assertNotIn("9876543211", staff.get(f"/imports/{job.pk}/").content.decode())
        # The owner sent those rows and gets them back as sent.
        self.assertEqual([row[2] for row in self.download(job)[1:3]], ["9876543211", "9876543212"])

    def test_someone_elses_rejected_rows_are_not_found(self):
        job = self.upload("sales.csv", CSV_FILE)
        other = logged_in_client("other")
        self.assertEqual(other.get(f"/imports/{job.pk}/rejected-rows-to-fix.csv").status_code, 404)

    def test_a_pruned_csvs_rows_keep_what_was_sent_in_the_reason(self):
        job = self.upload("sales.csv", CSV_FILE)
        job.file.delete(save=False)
        rows = self.download(job)
        self.assertEqual(rows[1][:7], [""] * 7)
        self.assertEqual(
            rows[1][7],
            "Line 3: pincode: Enter a pincode of exactly 6 digits that does not start with 0. "
            'The row as sent: Delhi,011001,2024-09-25T10:00:00Z,9876543211,20,"Asha, K",2,bad pincode',
        )

    def test_the_page_shows_the_first_rejected_rows_and_both_downloads(self):
        job = self.upload("sales.csv", CSV_FILE)
        page = self.client.get(f"/imports/{job.pk}/")
        self.assertEqual(
            [(row.line_number, row.reason[:8]) for row in page.context["first_rejected"]],
            [(3, "pincode:"), (4, "transact"), (5, "Expected")],
        )
        self.assertContains(
            page,
            '<td data-label="Row"><code class="raw-row">Delhi,011001,2024-09-25T10:00:00Z,9876543211,20,'
            '&quot;Asha, K&quot;,2,bad pincode</code></td>',
            html=True,
        )
        self.assertContains(page, f'href="/imports/{job.pk}/rejected-rows-to-fix.csv"')
        self.assertContains(page, f'href="/api/imports/{job.pk}/rejected.csv"')

    def test_only_the_first_ten_are_shown_and_the_heading_says_so(self):
        bad = "".join(f"{i},n,1,9876543210,2024-01-01T00:00:00Z,000000,Delhi\n" for i in range(1, 13))
        job = self.upload("bad.csv", ("customer_id,name,transaction_amount,mob_no,transaction_datetime,pincode,state\n" + bad).encode())
        page = self.htmx_get(f"/imports/{job.pk}/")
        self.assertEqual([row.line_number for row in page.context["first_rejected"]], list(range(2, 12)))
        self.assertContains(page, "Rejected rows (the first 10 of 12)")
