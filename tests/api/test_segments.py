"""The segments API: GET/POST /api/segments/, GET /api/segments/<id>/ and
GET /api/segments/<id>/customers/ (paged like the range report, X-Total-Count)."""

from __future__ import annotations

import json
from decimal import Decimal

from django.test import TestCase

from tests.api.test_range_report import answer_of, body_of
from tests.support import ApiClientMixin, make_user, record, token_client
from transactions import segment_selectors, services
from transactions.models import Segment

URL = "/api/segments/"


def spenders() -> list[dict]:
    """Six customers: totals 100, 200, ... 600; the even ones in Punjab, the odd ones in Delhi."""
    return [
        record(customer_id=i, name=f"Customer {i}", mob_no=f"98765432{i:02d}", transaction_amount=f"{i * 100}.00",
               transaction_datetime=f"2024-0{i}-10T00:00:00Z",
               state="Punjab" if i % 2 == 0 else "Delhi", pincode="141001" if i % 2 == 0 else "110001")
        for i in range(1, 7)
    ]


class SegmentApiTests(ApiClientMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        from tests.support import store

        store(*spenders())

    def create(self, body: dict):
        return self.api.post(URL, body, format="json")

    def test_a_segment_is_created_and_read_back_with_its_live_count(self):
        response = self.create({"name": "  Punjab,   big  ", "min_amount": 150, "max_amount": "500", "state": "punjab"})
        self.assertEqual(response.status_code, 201, response.content)
        segment = Segment.objects.get()
        answer = json.loads(response.content, parse_float=Decimal)
        self.assertEqual(response["Location"], f"http://testserver/api/segments/{segment.pk}/")
        self.assertEqual(
            answer,
            {
                "id": segment.pk, "name": "Punjab, big", "owner": "api-client",
                "min_amount": 150, "max_amount": 500, "start": None, "time_period": None, "period": None,
                "state": "punjab", "pincode": None,
                "created_at": segment.created_at.isoformat().replace("+00:00", "Z"),
                "customer_count": 2,  # customers 2 and 4 (200, 400); 6 spent 600
                "last_export": None,
                "url": f"http://testserver/api/segments/{segment.pk}/",
                "customers_url": f"http://testserver/api/segments/{segment.pk}/customers/",
            },
        )
        self.assertEqual(json.loads(self.api.get(answer["url"]).content, parse_float=Decimal), answer)
        self.assertEqual(json.loads(self.api.get(URL).content, parse_float=Decimal), [answer])
        self.assertEqual(self.api.get(URL)["X-Total-Count"], "1")

    def test_members_are_the_range_reports_answer_paged_with_x_total_count(self):
        body = {"min_amount": 150, "max_amount": 100000, "time_period": "2024-05-31T23:59:59Z"}
        segment_url = json.loads(self.create({"name": "to May", **body}).content)["customers_url"]
        whole = self.range_query(body)
        members = self.api.get(segment_url)
        self.assertEqual(members["X-Total-Count"], whole["X-Total-Count"])
        self.assertEqual(answer_of(members), answer_of(whole))
        self.assertEqual([row["customer_id"] for row in answer_of(members)], [5, 4, 3, 2])
        page = self.api.get(segment_url, {"limit": 2, "offset": 1})
        self.assertEqual(answer_of(page), answer_of(self.range_query({**body, "limit": 2, "offset": 1})))
        self.assertEqual(page["X-Total-Count"], "4")
        self.assertEqual(answer_of(self.api.get(segment_url, {"offset": 3})), answer_of(whole)[3:])
        self.assertEqual(answer_of(self.api.get(segment_url, {"limit": 5, "offset": 10})), [])
        by_name = self.api.get(segment_url, {"sort": "-customer_id", "limit": 2})
        self.assertEqual([row["customer_id"] for row in answer_of(by_name)], [5, 4])
        # No mobile numbers, as in the range report.
        self.assertNotIn(b"98765432", body_of(members))

    def test_the_list_is_paged_with_x_total_count_and_each_last_export(self):
        for name in ("c", "a", "b"):
            services.create_segment(owner=self.user, name=name, min_amount=Decimal("0"), max_amount=Decimal("1000"))
        exported = Segment.objects.get(name="b")
        services.record_segment_export(segment=exported, exported_by=self.user, member_ids=[1, 2])
        services.record_segment_export(segment=exported, exported_by=self.user, member_ids=[1, 2, 3])
        whole = self.api.get(URL)
        self.assertEqual(whole["X-Total-Count"], "3")
        rows = json.loads(whole.content)
        self.assertEqual([row["name"] for row in rows], ["a", "b", "c"])
        self.assertEqual([row["last_export"] and row["last_export"]["member_count"] for row in rows], [None, 3, None])
        self.assertEqual([row["customer_count"] for row in rows], [6, 6, 6])
        page = self.api.get(URL, {"limit": 1, "offset": 1})
        self.assertEqual(([row["name"] for row in json.loads(page.content)], page["X-Total-Count"]), (["b"], "3"))
        self.assertEqual(json.loads(self.api.get(URL, {"offset": 5}).content), [])
        for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": ""}, {"offset": "x"}):
            with self.subTest(params=params):
                self.assertEqual(self.api.get(URL, params).status_code, 400)

    def test_a_relative_period_is_saved_as_a_period(self):
        response = self.create({"name": "recent", "min_amount": 0, "max_amount": 1000, "period": "last-90-days"})
        self.assertEqual(response.status_code, 201, response.content)
        answer = json.loads(response.content)
        self.assertEqual((answer["period"], answer["start"], answer["time_period"]), ("last-90-days", None, None))
        self.assertEqual(Segment.objects.get().period, "last-90-days")

    def test_invalid_segments_are_refused_with_400_next_to_the_field(self):
        cases = [
            ({"min_amount": 0, "max_amount": 1}, {"name": ["This field is required."]}),
            ({"name": "   ", "min_amount": 0, "max_amount": 1}, "name"),
            ({"name": "x" * 101, "min_amount": 0, "max_amount": 1}, "name"),
            ({"name": "x", "min_amount": 5, "max_amount": 1}, {"max_amount": ["max_amount must not be less than min_amount."]}),
            ({"name": "x", "min_amount": 0, "max_amount": 1, "period": "last-7-days", "start": "2024-01-01T00:00:00"}, "period"),
            ({"name": "x", "min_amount": 0, "max_amount": 1, "period": "next-week"}, "period"),
            ({"name": "x", "min_amount": 0, "max_amount": 1, "pincode": "012345"}, "pincode"),
            ({"name": "x", "min_amount": "0.001", "max_amount": 1}, "min_amount"),
        ]
        for body, expected in cases:
            with self.subTest(body=body):
                response = self.create(body)
                self.assertEqual(response.status_code, 400, response.content)
                errors = json.loads(response.content)
                if isinstance(expected, dict):
                    self.assertEqual(errors, expected)
                else:
                    self.assertEqual(list(errors), [expected])
        self.assertEqual(self.api.post(URL, "[1, 2]", content_type="application/json").status_code, 400)
        lone_surrogate = self.api.post(URL, '{"name": "\\ud800", "min_amount": 0, "max_amount": 1}', content_type="application/json")
        self.assertEqual((lone_surrogate.status_code, list(json.loads(lone_surrogate.content))), (400, ["name"]))
        self.assertEqual(Segment.objects.count(), 0)

    def test_the_largest_bounds_are_saved_and_read_back(self):
        # SQLite keeps DECIMAL as a float: the largest bound reads back as 1e18, one digit longer.
        response = self.create({"name": "everyone", "min_amount": 0, "max_amount": "999999999999999999.99"})
        self.assertEqual(response.status_code, 201, response.content)
        for url in (URL, json.loads(response.content)["url"]):
            with self.subTest(url=url):
                read = self.api.get(url)
                self.assertEqual(read.status_code, 200, read.content)
                self.assertIn(b'"customer_count":6', read.content)

    def test_bad_paging_is_a_400_and_an_unknown_segment_a_404(self):
        segment_url = json.loads(self.create({"name": "all", "min_amount": 0, "max_amount": 1000}).content)["customers_url"]
        for params in ({"limit": 0}, {"limit": 10_001}, {"offset": -1}, {"limit": "x"}, {"sort": "mob_no"}, {"sort": ""},
                       {"limit": ""}):
            with self.subTest(params=params):
                self.assertEqual(self.api.get(segment_url, params).status_code, 400)
        self.assertEqual(self.api.get("/api/segments/999999/").status_code, 404)
        self.assertEqual(self.api.get("/api/segments/999999/customers/").status_code, 404)
        self.assertEqual(self.api.delete(URL).status_code, 405)

    def test_the_reports_permission_is_needed_and_everyone_sees_every_segment(self):
        services.create_segment(owner=make_user("someone-else"), name="theirs", min_amount=Decimal("0"), max_amount=Decimal("1000"))
        self.assertEqual([row["name"] for row in json.loads(self.api.get(URL).content)], ["theirs"])
        ingest_only = token_client(make_user("ingest-only", permissions=("add_transaction",)))
        self.assertEqual(ingest_only.get(URL).status_code, 403)
        self.assertEqual(ingest_only.post(URL, {"name": "x", "min_amount": 0, "max_amount": 1}, format="json").status_code, 403)
        segment = Segment.objects.get()
        self.assertEqual(ingest_only.get(f"{URL}{segment.pk}/customers/").status_code, 403)
        self.api.credentials()
        self.assertEqual(self.api.get(URL).status_code, 401)
        self.assertEqual(self.api.get(f"{URL}{segment.pk}/").status_code, 401)

    def test_the_last_export_is_shown(self):
        segment = services.create_segment(owner=self.user, name="s", min_amount=Decimal("0"), max_amount=Decimal("250"))
        services.record_segment_export(
            segment=segment, exported_by=self.user,
            member_ids=segment_selectors.member_ids_of(segment_selectors.segment_report(segment)),
        )
        answer = json.loads(self.api.get(f"{URL}{segment.pk}/").content)
        self.assertEqual(answer["last_export"]["member_count"], 2)
        self.assertEqual(answer["customer_count"], 2)

    def test_the_schema_documents_the_segment_endpoints(self):
        schema = self.api.get("/api/schema/", {"format": "json"})
        self.assertEqual(schema.status_code, 200)
        paths = json.loads(schema.content)["paths"]
        self.assertEqual(set(paths["/api/segments/"]), {"get", "post"})
        self.assertEqual({parameter["name"] for parameter in paths["/api/segments/"]["get"]["parameters"]}, {"limit", "offset"})
        self.assertEqual(set(paths["/api/segments/{segment_id}/"]), {"get"})
        customers = paths["/api/segments/{segment_id}/customers/"]["get"]
        self.assertIn("X-Total-Count", customers["responses"]["200"]["headers"])
        self.assertEqual({parameter["name"] for parameter in customers["parameters"]}, {"segment_id", "limit", "offset", "sort"})
        self.assertIn("400", customers["responses"])
