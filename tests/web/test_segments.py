"""Segments in the dashboard: "Save as segment" on the range report, /segments/, a segment's
page (members paged and sortable, entered and left since the last export) and its export."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

from django.test import Client, TestCase

from tests.support import DashboardTestMixin, logged_in_client, make_user, record, store
from tests.web.test_range_report_bi import three_customers
from transactions import segment_selectors, services
from transactions.models import Segment, SegmentExport

REPORT = "/reports/range/"
QUERY = {"min_amount": "0", "max_amount": "100000", "period": "", "start": "", "time_period": "", "state": "", "pincode": ""}


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


class SaveAsSegmentTests(DashboardTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        three_customers()

    def test_the_range_report_offers_save_as_segment_with_its_query(self):
        response = self.client.get(REPORT, {"min_amount": "100", "max_amount": "400", "state": "Punjab", "start": "2024-01-01"})
        self.assertContains(response, '<form method="post" action="/segments/new/" class="save-segment" data-testid="save-segment">')
        self.assertContains(response, 'name="csrfmiddlewaretoken"')
        for name, value in (("min_amount", "100"), ("max_amount", "400"), ("state", "Punjab"), ("start", "2024-01-01")):
            self.assertContains(response, f'<input type="hidden" name="{name}" value="{value}" id="segment_{name}">', html=True)
        self.assertContains(response, '<button type="submit" class="button button--secondary">Save as segment</button>', html=True)

    def test_saving_stores_the_query_and_opens_the_segment_whose_members_are_the_reports(self):
        query = {**QUERY, "min_amount": "100", "state": "punjab", "start": "2024-02-01", "time_period": "2024-03-31"}
        response = self.client.post("/segments/new/", {**query, "name": " Punjab  spring "})
        segment = Segment.objects.get()
        self.assertRedirects(response, f"/segments/{segment.pk}/", fetch_redirect_response=False)
        self.assertEqual(
            (segment.name, segment.owner, segment.min_amount, segment.state, segment.start.isoformat(), segment.end.isoformat()),
            ("Punjab spring", self.analyst, Decimal("100.00"), "punjab", "2024-02-01T00:00:00+00:00",
             "2024-03-31T23:59:59.999999+00:00"),
        )
        page = self.client.get(f"/segments/{segment.pk}/")
        report = self.client.get(REPORT, query)
        self.assertEqual(page.context["summary"], report.context["summary"])
        self.assertEqual(list(page.context["page"].object_list), list(report.context["page"].object_list))
        self.assertEqual([row["customer_id"] for row in page.context["page"].object_list], [3, 2])
        self.assertContains(page, '<dd data-testid="segment-count">2</dd>', html=True)

    def test_a_period_is_saved_as_the_period_not_its_dates(self):
        self.client.post("/segments/new/", {**QUERY, "period": "last-90-days", "start": "2001-01-01", "name": "recent"})
        segment = Segment.objects.get()
        self.assertEqual((segment.period, segment.start, segment.end), ("last-90-days", None, None))
        self.assertContains(self.client.get(f"/segments/{segment.pk}/"), "last 90 days (moves with the calendar)")

    def test_a_bad_name_or_query_is_refused_with_400_and_nothing_is_saved(self):
        blank = self.client.post("/segments/new/", {**QUERY, "name": "  "})
        self.assertEqual(blank.status_code, 400)
        self.assertEqual(blank.context["form"].errors, {"name": ["This field is required."]})
        self.assertContains(blank, '<ul class="errorlist" id="id_name_error">', status_code=400)
        backwards = self.client.post("/segments/new/", {**QUERY, "min_amount": "5", "max_amount": "1", "name": "x"})
        self.assertEqual(backwards.status_code, 400)
        self.assertContains(
            backwards, "The maximum total must not be less than the minimum total.", status_code=400
        )
        self.assertEqual(self.client.post("/segments/new/", {"name": "x"}).status_code, 400)
        self.assertEqual(Segment.objects.count(), 0)

    def test_saving_needs_a_login_the_reports_permission_and_the_csrf_token(self):
        self.assertEqual(self.client.get("/segments/new/").status_code, 405)
        anonymous = Client()
        self.assertRedirects(
            anonymous.post("/segments/new/", {**QUERY, "name": "x"}), "/accounts/login/?next=/segments/new/",
            fetch_redirect_response=False,
        )
        no_reports = logged_in_client("uploader", permissions=("add_transaction",))
        self.assertEqual(no_reports.post("/segments/new/", {**QUERY, "name": "x"}).status_code, 403)
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(self.analyst)
        self.assertEqual(strict.post("/segments/new/", {**QUERY, "name": "x"}).status_code, 403)
        self.assertEqual(Segment.objects.count(), 0)


class SegmentPagesTests(DashboardTestMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        three_customers()
        cls.everyone = services.create_segment(
            owner=make_user("colleague"), name="Everyone <all>", min_amount=Decimal("0"), max_amount=Decimal("100000")
        )
        cls.delhi = services.create_segment(
            owner=None, name="Delhi", min_amount=Decimal("0"), max_amount=Decimal("100000"), state="Delhi"
        )

    def test_the_list_shows_every_segment_with_its_live_count_sortable(self):
        response = self.client.get("/segments/")
        self.assertEqual(response.status_code, 200)
        self.assertEqual([(row["segment"].name, row["customers"]) for row in response.context["segments"]],
                         [("Delhi", 2), ("Everyone <all>", 3)])
        self.assertContains(response, f'<a href="/segments/{self.everyone.pk}/">Everyone &lt;all&gt;</a>', html=True)
        self.assertContains(response, "colleague")
        self.assertContains(response, "(deleted user)")
        self.assertContains(response, "Total ₹0.00 – ₹1,00,000.00, all time, in Delhi")
        by_members = self.client.get("/segments/", {"sort": "-members"})
        self.assertEqual([row["segment"].name for row in by_members.context["segments"]], ["Everyone <all>", "Delhi"])
        self.assertContains(by_members, 'aria-sort="descending"')
        self.assertTemplateUsed(self.htmx_get("/segments/", {"sort": "name"}), "web/segments/_segment_list.html")

    def test_the_list_follows_new_transactions(self):
        self.client.get("/segments/")
        store(record(customer_id=50, name="New", transaction_amount="10.00", state="Delhi", transaction_datetime="2024-05-01T00:00:00Z"))
        response = self.client.get("/segments/")
        self.assertEqual([row["customers"] for row in response.context["segments"]], [3, 4])

    def test_a_segments_members_are_paged_and_sortable_and_htmx_gets_the_partial(self):
        response = self.client.get(f"/segments/{self.everyone.pk}/", {"sort": "name"})
        self.assertEqual([row["customer_id"] for row in response.context["page"].object_list], [2, 3, 1])
        self.assertContains(response, "<h1>Everyone &lt;all&gt;</h1>", html=True)
        self.assertContains(response, "Open as a range report")
        self.assertContains(response, f'href="/reports/range/?min_amount=0&amp;max_amount=100000"')
        self.assertContains(response, '<dd data-testid="segment-last-export">never</dd>', html=True)
        partial = self.htmx_get(f"/segments/{self.everyone.pk}/", {"sort": "-total"})
        self.assertTemplateUsed(partial, "web/segments/_segment_members.html")
        self.assertNotContains(partial, "<html")
        self.assertEqual([row["customer_id"] for row in partial.context["page"].object_list], [1, 2, 3])
        self.assertEqual(self.client.get("/segments/999999/").status_code, 404)
        self.assertEqual(self.client.get(f"/segments/{self.everyone.pk}/", {"sort": "bogus", "page": "x"}).status_code, 200)

    def test_more_than_a_page_of_members(self):
        store(*[record(customer_id=100 + i, name=f"c{i}", transaction_amount="1.00", transaction_datetime="2024-01-01T00:00:00Z")
                for i in range(60)])
        first = self.client.get(f"/segments/{self.everyone.pk}/")
        self.assertEqual((len(first.context["page"].object_list), first.context["page"].paginator.num_pages), (50, 2))
        second = self.client.get(f"/segments/{self.everyone.pk}/", {"page": "2"})
        self.assertEqual(len(second.context["page"].object_list), 13)
        self.assertContains(first, f'href="/segments/{self.everyone.pk}/?page=2"')

    def test_export_is_a_csv_of_the_members_and_records_a_snapshot(self):
        response = self.client.post(f"/segments/{self.everyone.pk}/export.csv")
        self.assertEqual(response.status_code, 200)
        self.assertRegex(response["Content-Disposition"], rf'^attachment; filename="segment-{self.everyone.pk}-everyone-all-\d{{4}}-\d\d-\d\d\.csv"$')
        self.assertEqual(
            csv_rows(response),
            [["customer_id", "name", "total_transaction_amount"], ["1", "Zoya", "300.00"], ["2", "amit", "150.00"],
             ["3", "Bela", "150.00"]],
        )
        export = SegmentExport.objects.get()
        self.assertEqual((export.segment, export.exported_by, export.member_count), (self.everyone, self.analyst, 3))
        self.assertEqual(segment_selectors.unpack_member_ids(export.member_ids), [1, 2, 3])
        self.assertEqual(self.client.get(f"/segments/{self.everyone.pk}/export.csv").status_code, 405)
        strict = Client(enforce_csrf_checks=True)
        strict.force_login(self.analyst)
        self.assertEqual(strict.post(f"/segments/{self.everyone.pk}/export.csv").status_code, 403)
        self.assertEqual(SegmentExport.objects.count(), 1)

    def test_entered_and_left_since_the_last_export_are_shown(self):
        segment = services.create_segment(owner=self.analyst, name="100 to 200", min_amount=Decimal("100"), max_amount=Decimal("200"))
        self.client.post(f"/segments/{segment.pk}/export.csv")
        store(
            record(customer_id=2, name="amit", transaction_amount="100.00", transaction_datetime="2024-06-01T00:00:00Z"),
            record(customer_id=7, name="Chandra", transaction_amount="120.00", transaction_datetime="2024-06-01T00:00:00Z"),
        )
        response = self.client.get(f"/segments/{segment.pk}/")
        self.assertContains(response, '<dd data-testid="segment-entered">1</dd>', html=True)
        self.assertContains(response, '<dd data-testid="segment-left">1</dd>', html=True)
        self.assertContains(response, '<ul class="plain-list" data-testid="entered-list"><li><a href="/customers/7/">Chandra</a> <span class="muted">(7)</span></li></ul>', html=True)
        self.assertContains(response, '<ul class="plain-list" data-testid="left-list"><li><a href="/customers/2/">amit</a> <span class="muted">(2)</span></li></ul>', html=True)
        self.assertContains(response, "Last exported by analyst with 2 members.")

    def test_pages_need_the_reports_permission(self):
        client = logged_in_client("uploader", permissions=("add_transaction",))
        for url in ("/segments/", f"/segments/{self.everyone.pk}/"):
            self.assertEqual(client.get(url).status_code, 403, url)
        self.assertEqual(client.post(f"/segments/{self.everyone.pk}/export.csv").status_code, 403)
        self.assertRedirects(Client().get("/segments/"), "/accounts/login/?next=/segments/", fetch_redirect_response=False)
