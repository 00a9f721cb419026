"""The upload page `/upload/` and import status `/imports/<id>/`, over services.start_import."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import TestCase, override_settings

from tests.support import VIEWER, DashboardTestMixin, logged_in_client, make_user
from transactions.models import ImportJob, Transaction


IMMEDIATE_TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}
HEADER = "customer_id,name,transaction_amount,mob_no,transaction_datetime,pincode,state\n"
GOOD_AND_BAD = (
    HEADER
    + "1,amit,100.50,9876543210,2024-09-24T15:30:00Z,110001,Delhi\n"
    + "1,amit,100.50,9876543210,2024-09-24T15:30:00Z,110001,Delhi\n"
    + "2,<b>asha</b>,20,9876543211,2024-09-25T10:00:00Z,011001,Delhi\n"
).encode()


@override_settings(TASKS=IMMEDIATE_TASKS)
class UploadPageTests(DashboardTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-web-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir))

    def upload(self, name: str, content: bytes, *, htmx: bool = False, run: bool = True, **fields):
        headers = {"HX-Request": "true"} if htmx else {}
        body = {"file": SimpleUploadedFile(name, content), **fields}
        with self.captureOnCommitCallbacks(execute=run):
            return self.client.post("/upload/", body, headers=headers)

    def test_form_has_a_labelled_file_input_and_csrf(self):
        response = self.client.get("/upload/")
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, '<label for="id_file">CSV or NDJSON file:</label>', html=True)
        self.assertContains(response, 'enctype="multipart/form-data"')
        self.assertContains(response, 'name="csrfmiddlewaretoken"')
        self.assertContains(response, '<progress id="upload-progress" max="100" value="0" data-state="pending">')

    def test_upload_needs_the_add_permission(self):
        viewer = logged_in_client("viewer", permissions=VIEWER)
        self.assertEqual(viewer.get("/upload/").status_code, 403)
        response = viewer.post("/upload/", {"file": SimpleUploadedFile("a.csv", GOOD_AND_BAD)})
        self.assertEqual(response.status_code, 403)
        self.assertFalse(ImportJob.objects.exists())

    def test_csrf_is_enforced(self):
        from django.test import Client

        client = Client(enforce_csrf_checks=True)
        client.force_login(make_user("csrf-user"))
        response = client.post("/upload/", {"file": SimpleUploadedFile("a.csv", GOOD_AND_BAD)})
        self.assertEqual(response.status_code, 403)

    def test_plain_post_redirects_to_the_import_status_page(self):
        response = self.upload("sales.csv", GOOD_AND_BAD, run=False)
        job = ImportJob.objects.get()
        self.assertRedirects(response, f"/imports/{job.pk}/", fetch_redirect_response=False)
        self.assertEqual((job.original_name, job.format, job.owner.username, job.status), ("sales.csv", "csv", "analyst", "queued"))
        page = self.client.get(f"/imports/{job.pk}/")
        self.assertContains(page, "<h1>Import of sales.csv</h1>", html=True)
        # Still queued: the status polls itself, and without JavaScript the page refreshes.
        self.assertContains(page, 'hx-trigger="every 1s"')
        self.assertContains(page, '<noscript><meta http-equiv="refresh" content="2"></noscript>')

    def test_htmx_upload_answers_the_status_partial_with_the_counts(self):
        upload = self.upload("sales.csv", GOOD_AND_BAD, htmx=True)
        self.assertEqual(upload.status_code, 201)
        self.assertTemplateUsed(upload, "web/imports/_import_status.html")
        self.assertNotContains(upload, "<html", status_code=201)
        job = ImportJob.objects.get()
        # The test's transaction commits only after the answer, so the import runs after it;
        # the next poll shows the outcome.
        self.assertContains(upload, f'hx-get="/imports/{job.pk}/" hx-trigger="every 1s"', status_code=201)
        response = self.htmx_get(f"/imports/{job.pk}/")
        job.refresh_from_db()
        self.assertEqual((job.status, job.created, job.duplicates, job.conflicts, job.rejected), ("done", 1, 1, 0, 1))
        self.assertEqual(Transaction.objects.count(), 1)
        self.assertContains(response, '<dd data-count="created">1</dd>', html=True)
        self.assertContains(response, '<dd data-count="duplicates">1</dd>', html=True)
        self.assertContains(response, '<dd data-count="conflicts">0</dd>', html=True)
        self.assertContains(response, '<dd data-count="rejected">1</dd>', html=True)
        self.assertContains(response, f'href="/api/imports/{job.pk}/rejected.csv"')
        self.assertContains(response, '<progress id="processing-progress" max="1" value="1" data-state="done">')
        self.assertNotContains(response, "hx-trigger")  # done: polling stops

    def test_the_rejected_rows_link_serves_them(self):
        self.upload("sales.csv", GOOD_AND_BAD, htmx=True)
        job = ImportJob.objects.get()
        response = self.client.get(f"/api/imports/{job.pk}/rejected.csv")
        body = b"".join(response.streaming_content).decode()
        self.assertIn("pincode: Enter a pincode of exactly 6 digits", body)

    def test_staff_without_view_pii_get_the_rejected_rows_with_mobile_numbers_masked(self):
        self.upload("sales.csv", GOOD_AND_BAD, htmx=True)
        job = ImportJob.objects.get()
        staff = logged_in_client("boss", permissions=VIEWER, is_staff=True)

        page = staff.get(f"/imports/{job.pk}/")
        self.assertContains(page, f'href="/api/imports/{job.pk}/rejected.csv"')
        response = staff.get(f"/api/imports/{job.pk}/rejected.csv")

        self.assertEqual(
            b"".join(response.streaming_content).decode(),
            "line_number,raw,reason\n"
            "4,\"2,<b>asha</b>,20,98******11,2024-09-25T10:00:00Z,011001,Delhi\","
            "pincode: Enter a pincode of exactly 6 digits that does not start with 0.\n",
        )
        # The owner, who sent the row, gets it back as sent.
        own = b"".join(self.client.get(f"/api/imports/{job.pk}/rejected.csv").streaming_content).decode()
        self.assertIn("9876543211", own)

    def test_polling_partial_reports_progress_until_done(self):
        self.upload("sales.ndjson", b'{"customer_id": 1}\n', run=False)
        job = ImportJob.objects.get()
        self.assertEqual(job.format, "ndjson")
        partial = self.htmx_get(f"/imports/{job.pk}/")
        self.assertNotContains(partial, "<html")
        self.assertContains(partial, 'hx-get="/imports/%d/"' % job.pk)
        self.assertContains(partial, f'<progress id="processing-progress" max="{job.size_bytes}" value="0" data-state="queued">')
        ImportJob.objects.filter(pk=job.pk).update(status="failed", error="The file has no header row.")
        finished = self.htmx_get(f"/imports/{job.pk}/")
        self.assertNotContains(finished, "hx-trigger")
        self.assertContains(finished, "The import failed: The file has no header row.")

    def test_counts_have_thousands_separators(self):
        self.upload("sales.csv", GOOD_AND_BAD, run=False)
        job = ImportJob.objects.get()
        ImportJob.objects.filter(pk=job.pk).update(
            status="done", rows_processed=1234567, created=1234000, duplicates=12345, conflicts=1000, rejected=222
        )
        response = self.htmx_get(f"/imports/{job.pk}/")
        self.assertContains(response, '<dd data-count="created">1,234,000</dd>', html=True)
        self.assertContains(response, '<dd data-count="duplicates">12,345</dd>', html=True)
        self.assertContains(response, '<dd data-count="conflicts">1,000</dd>', html=True)
        self.assertContains(response, '<dd data-count="rejected">222</dd>', html=True)
        self.assertContains(response, "1,234,567 rows read")

    def test_a_failed_imports_bar_stops_where_the_import_did(self):
        self.upload("sales.csv", GOOD_AND_BAD, run=False)
        job = ImportJob.objects.get()
        ImportJob.objects.filter(pk=job.pk).update(status="failed", byte_offset=40, error="The disk is full.")
        response = self.htmx_get(f"/imports/{job.pk}/")
        self.assertContains(
            response,
            f'<progress id="processing-progress" max="{job.size_bytes}" value="40" data-state="failed"'
            ' aria-describedby="import-failure">Failed</progress>',
            html=True,
        )
        self.assertNotContains(response, 'max="1" value="1"')
        self.assertContains(response, '<p id="import-failure" class="form-errors" role="alert">The import failed: The disk is full.</p>', html=True)

    def test_a_file_name_long_in_bytes_is_stored_shortened_and_shown_whole(self):
        name = "अ" * 90 + ".csv"  # 94 characters, 274 bytes: more than a file system holds in a name
        response = self.upload(name, GOOD_AND_BAD, htmx=True)

        self.assertEqual(response.status_code, 201)
        job = ImportJob.objects.get()
        self.assertEqual(job.original_name, name)
        self.assertLessEqual(len(Path(job.file.name).name.encode()), 255)
        self.assertEqual(Path(job.file.name).suffix, ".csv")
        page = self.client.get(f"/imports/{job.pk}/")
        self.assertContains(page, f"<h1>Import of {name}</h1>", html=True)
        job.refresh_from_db()
        self.assertEqual((job.status, job.created, job.duplicates, job.rejected), ("done", 1, 1, 1))

    def test_a_file_name_of_emoji_only_is_accepted_with_a_chosen_format(self):
        response = self.upload("😀😀", GOOD_AND_BAD, run=False, format="csv")

        job = ImportJob.objects.get()
        self.assertRedirects(response, f"/imports/{job.pk}/", fetch_redirect_response=False)
        self.assertEqual((job.original_name, Path(job.file.name).name), ("😀😀", "upload"))

    def test_missing_file_is_refused_next_to_the_field(self):
        response = self.client.post("/upload/", {}, headers={"HX-Request": "true"})
        self.assertEqual(response.status_code, 400)
        self.assertTemplateUsed(response, "web/_upload_form.html")
        self.assertEqual(response.context["form"].errors, {"file": ["This field is required."]})
        self.assertContains(response, '<ul class="errorlist" id="id_file_error">', status_code=400)

    def test_unknown_format_is_refused_with_the_apis_message(self):
        response = self.upload("sales.xlsx", b"x", run=False)
        self.assertEqual(response.status_code, 400)
        self.assertEqual(
            response.context["form"].errors,
            {"format": ["Name the format (csv or ndjson), or upload a .csv, .ndjson or .jsonl file."]},
        )
        self.assertFalse(ImportJob.objects.exists())
        chosen = self.upload("sales.txt", GOOD_AND_BAD, run=False, format="csv")
        self.assertEqual(chosen.status_code, 302)
        self.assertEqual(ImportJob.objects.get().format, "csv")

    @override_settings(CDP_MAX_UPLOAD_BYTES=10)
    def test_a_file_over_the_limit_is_refused(self):
        response = self.upload("sales.csv", GOOD_AND_BAD, run=False)
        self.assertEqual(response.status_code, 413)
        self.assertContains(response, "The file is larger than the limit of 10 bytes.", status_code=413)
        self.assertFalse(ImportJob.objects.exists())

    def test_someone_elses_import_is_not_found(self):
        self.upload("sales.csv", GOOD_AND_BAD, run=False)
        job = ImportJob.objects.get()
        other = logged_in_client("other")
        self.assertEqual(other.get(f"/imports/{job.pk}/").status_code, 404)
        staff = logged_in_client("boss", is_staff=True)
        self.assertEqual(staff.get(f"/imports/{job.pk}/").status_code, 200)
