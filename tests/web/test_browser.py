"""The dashboard in a real browser: Playwright driving Debian's Chromium against a live server.

Covers what view tests can't: HTMX swaps, the upload's two progress bars, Chart.js drawing,
downloads, and the layout at phone and desktop widths. Each test saves a screenshot of its
page under docs/screenshots/ for the README.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import tempfile
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.contrib.staticfiles.testing import StaticLiveServerTestCase
from django.test import override_settings
from playwright.sync_api import expect, sync_playwright

from tests.support import ANALYST, clear_caches, make_user, record, slow, store


# Playwright's sync API runs an event loop in this thread; Django's ORM calls from the test
# itself (creating users and data) are still synchronous and safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "docs" / "screenshots"
PASSWORD = "a-long-test-password"  # tests.support.make_user's
IMMEDIATE_TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend", "QUEUES": ["default"]}}
STATES = ["Punjab", "Delhi", "Karnataka"]
PINCODES = {"Punjab": ["141001", "160001"], "Delhi": ["110001"], "Karnataka": ["560001"]}


def sample_data() -> None:
    """75 customers over three states and a year, enough for two pages of the range report."""
    records = []
    for customer_id in range(1, 76):
        state = STATES[customer_id % 3]
        for month in range(1, 1 + customer_id % 6 + 1):
            records.append(record(
                customer_id=customer_id,
                name=f"Customer {customer_id:02d}",
                mob_no=f"98765{customer_id:05d}",
                transaction_amount=f"{customer_id * 37 + month * 11}.{customer_id % 100:02d}",
                transaction_datetime=f"2024-{month:02d}-{customer_id % 28 + 1:02d}T10:00:00Z",
                pincode=PINCODES[state][customer_id % len(PINCODES[state])],
                state=state,
            ))
    store(*records)


@slow
@override_settings(TASKS=IMMEDIATE_TASKS)
class DashboardInBrowserTests(StaticLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.playwright = sync_playwright().start()
        cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        cls.playwright.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        clear_caches()
        self.import_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-browser-imports-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.import_dir))
        make_user("analyst", permissions=ANALYST)
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page.on("console", self.record_console_error)
        self.page.on("pageerror", lambda error: self.console_errors.append(str(error)))

    def record_console_error(self, message) -> None:
        # A form with errors is answered 400 on purpose; the browser logs that as a failed load.
        if message.type == "error" and "status of 400" not in message.text:
            self.console_errors.append(message.text)

    def tearDown(self):
        self.context.close()
        self.assertEqual(self.console_errors, [], "the page logged JavaScript errors")
        super().tearDown()

    # --- helpers ----------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.live_server_url}{path}"

    def log_in(self, next_path: str = "/") -> None:
        self.page.goto(self.url(next_path))
        expect(self.page).to_have_url(self.url(f"/accounts/login/?next={quote(next_path, safe='/')}"))
        self.page.get_by_label("Username").fill("analyst")
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Log in").click()
        expect(self.page).to_have_url(self.url(next_path))

    def screenshot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def api_post(self, path: str, body: dict):
        """The JSON API, with this browser's session cookie and CSRF token."""
        csrf = next(cookie["value"] for cookie in self.context.cookies() if cookie["name"] == "csrftoken")
        return self.page.request.post(
            self.url(path), data=json.dumps(body),
            headers={"Content-Type": "application/json", "X-CSRFToken": csrf, "Referer": self.url("/")},
        )

    def range_rows_on_page(self) -> list[tuple[int, Decimal]]:
        rows = self.page.locator("[data-testid=range-rows] tbody tr")
        return [
            (int(row.locator("[data-customer-id]").get_attribute("data-customer-id")),
             Decimal(row.locator("[data-total]").get_attribute("data-total")))
            for row in rows.all()
        ]

    def download_csv(self, link_name: str) -> list[list[str]]:
        with self.page.expect_download() as download_info:
            self.page.get_by_role("link", name=link_name).click()
        path = download_info.value.path()
        return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))

    # --- tests ------------------------------------------------------------------------------

    def test_log_in_and_see_the_overview(self):
        sample_data()
        self.page.goto(self.url("/"))
        expect(self.page.get_by_role("heading", name="Log in")).to_be_visible()
        self.screenshot("login")
        self.log_in()
        expect(self.page.get_by_role("heading", name="Overview")).to_be_visible()
        expect(self.page.get_by_test_id("total-customers")).to_have_text("75")
        expect(self.page.locator("figure.chart.chart--drawn")).to_have_count(1)  # Chart.js drew it
        self.screenshot("overview")

    def test_upload_a_file_and_watch_both_progress_bars_reach_done(self):
        self.log_in("/upload/")
        header = "customer_id,name,transaction_amount,mob_no,transaction_datetime,pincode,state\n"
        rows = "".join(
            f"{i},Uploaded {i},{i}00.00,98765432{i:02d},2024-0{i % 9 + 1}-01T10:00:00Z,110001,Delhi\n" for i in range(1, 41)
        )
        bad_row = "41,Broken,-5,123,not a date,000000,\n"
        content = (header + rows + bad_row + rows.splitlines(keepends=True)[0]).encode()
        self.page.get_by_label("CSV or NDJSON file").set_input_files(
            {"name": "transactions.csv", "mimeType": "text/csv", "buffer": content}
        )
        self.page.get_by_role("button", name="Upload and import").click()
        upload_bar = self.page.locator("#upload-progress")
        expect(upload_bar).to_have_attribute("data-state", "done")
        expect(upload_bar).to_have_js_property("value", 100)
        expect(self.page.locator("#upload-progress-text")).to_have_text("Uploaded")
        processing_bar = self.page.locator("#processing-progress")
        expect(processing_bar).to_have_attribute("data-state", "done")
        self.assertEqual(processing_bar.evaluate("bar => bar.value / bar.max"), 1)
        expect(self.page.get_by_test_id("import-state")).to_have_text("Done")
        counts = {name: self.page.locator(f"[data-count={name}]").inner_text() for name in
                  ("created", "duplicates", "conflicts", "rejected")}
        self.assertEqual(counts, {"created": "40", "duplicates": "1", "conflicts": "0", "rejected": "1"})
        rejected = self.download_csv("Download the rejected rows as sent (CSV)")
        self.assertEqual(rejected[0], ["line_number", "raw", "reason"])
        self.assertEqual([row[0] for row in rejected[1:]], ["42"])
        # The first rejected rows are on the page, and the file to fix has the seven fields.
        expect(self.page.get_by_test_id("rejected-rows").locator("tbody tr")).to_have_count(1)
        expect(self.page.get_by_test_id("rejected-rows")).to_contain_text("41,Broken,-5,123,not a date,000000,")
        to_fix = self.download_csv("Download the rejected rows to fix (CSV)")
        self.assertEqual(
            to_fix[0],
            ["customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state", "reason"],
        )
        self.assertEqual(to_fix[1][:7], ["41", "Broken", "123", "-5", "not a date", "000000", ""])
        self.assertTrue(to_fix[1][7].startswith("Line 42: "), to_fix[1][7])
        self.screenshot("upload")

    def test_range_report_rows_match_the_api_and_export(self):
        sample_data()
        self.log_in("/reports/range/")
        self.page.get_by_label("Minimum total").fill("200")
        self.page.get_by_label("Maximum total").fill("100000")
        self.page.get_by_label("Up to (optional)").fill("2038-01-01T00:00:00")
        self.page.get_by_role("button", name="Run report").click()
        expect(self.page.locator("#range-results")).to_be_visible()
        # The query is in the address bar, so the report can be bookmarked and shared.
        expect(self.page).to_have_url(
            self.url(
                "/reports/range/?min_amount=200&max_amount=100000&period=&start=&time_period=2038-01-01T00%3A00%3A00"
                "&state=&pincode=&sort="
            )
        )
        query = {"min_amount": 200, "max_amount": 100000, "time_period": "2038-01-01T00:00:00"}
        api = self.api_post("/api/query-transaction-range", {**query, "limit": 50})
        self.assertEqual(api.status, 200)
        expected = [(row["customer_id"], Decimal(str(row["total_transaction_amount"]))) for row in api.json()]
        total = int(api.headers["x-total-count"])
        self.assertGreater(total, 50)
        self.assertEqual(self.range_rows_on_page(), expected)
        expect(self.page.get_by_test_id("total-count")).to_have_text(f"{total} customers match.")
        expect(self.page.locator("figure.chart.chart--drawn")).to_have_count(1)
        self.screenshot("range-report")

        self.page.get_by_role("link", name="Next →").click()
        expect(self.page.get_by_text("Page 2 of 2", exact=True)).to_be_visible()
        second = self.api_post("/api/query-transaction-range", {**query, "limit": 50, "offset": 50})
        self.assertEqual(
            self.range_rows_on_page(),
            [(row["customer_id"], Decimal(str(row["total_transaction_amount"]))) for row in second.json()],
        )

        exported = self.download_csv("Export CSV")
        whole = self.api_post("/api/query-transaction-range", query).json()
        self.assertEqual(exported[0], ["customer_id", "name", "total_transaction_amount"])
        self.assertEqual(
            [(int(row[0]), row[1], Decimal(row[2])) for row in exported[1:]],
            [(row["customer_id"], row["name"], Decimal(str(row["total_transaction_amount"]))) for row in whole],
        )

        # A shared link opens the same report; the layout holds at a phone's width.
        phone = self.browser.new_context(viewport={"width": 375, "height": 800}, storage_state=self.context.storage_state())
        try:
            small = phone.new_page()
            small.goto(self.page.url)
            expect(small.get_by_text("Page 2 of 2", exact=True)).to_be_visible()
            self.assertLessEqual(small.evaluate("document.documentElement.scrollWidth"), 375)
            small.screenshot(path=str(SCREENSHOTS / "range-report-375.png"), full_page=True)
        finally:
            phone.close()

    def test_validation_message_appears_next_to_the_field(self):
        self.log_in("/reports/range/")
        self.page.get_by_label("Minimum total").fill("500")
        self.page.get_by_label("Maximum total").fill("100")
        self.page.get_by_role("button", name="Run report").click()
        error = self.page.locator("#id_max_amount_error")
        expect(error).to_have_text("The maximum total must not be less than the minimum total.")
        expect(self.page.get_by_label("Maximum total")).to_have_attribute("aria-invalid", "true")

    def test_focus_moves_to_the_results_or_the_refused_field_after_an_htmx_update(self):
        sample_data()
        self.log_in("/reports/range/")
        focused = "() => document.activeElement.id || document.activeElement.tagName"
        self.page.get_by_label("Minimum total").fill("0")
        self.page.get_by_label("Maximum total").fill("100000")
        self.page.get_by_role("button", name="Run report").click()
        expect(self.page.locator("#range-results-heading")).to_be_focused()

        self.page.get_by_role("link", name="Next →").click()
        expect(self.page.get_by_text("Page 2 of 2", exact=True)).to_be_visible()
        expect(self.page.locator("#range-results-heading")).to_be_focused()

        self.page.get_by_label("Maximum total").fill("-1")
        self.page.get_by_role("button", name="Run report").click()
        expect(self.page.get_by_label("Maximum total")).to_be_focused()
        self.assertEqual(self.page.evaluate(focused), "id_max_amount")

    def test_a_date_alone_is_sent_and_one_that_cant_be_read_is_refused_beside_its_field(self):
        sample_data()
        self.log_in("/reports/range/")
        self.page.get_by_label("Minimum total").fill("0")
        self.page.get_by_label("Maximum total").fill("100000")
        self.page.get_by_label("From (optional)").fill("2024-03-01")
        self.page.get_by_label("Up to (optional)").fill("2024-03")
        self.page.get_by_role("button", name="Run report").click()
        expect(self.page.locator("#id_time_period_error")).to_have_text(
            "Enter a date (2024-05-31) or a date and time (2024-05-31 14:30), in UTC."
        )
        expect(self.page.locator("#range-results")).to_have_count(0)
        self.page.get_by_label("Up to (optional)").fill("2024-03-31")
        self.page.get_by_role("button", name="Run report").click()
        expect(self.page.locator("#range-results")).to_be_visible()
        expect(self.page).to_have_url(
            self.url(
                "/reports/range/?min_amount=0&max_amount=100000&period=&start=2024-03-01&time_period=2024-03-31"
                "&state=&pincode=&sort="
            )
        )
        api = self.api_post(
            "/api/query-transaction-range",
            {"min_amount": 0, "max_amount": 100000, "start": "2024-03-01T00:00:00", "time_period": "2024-03-31T23:59:59.999999"},
        )
        expect(self.page.get_by_test_id("total-count")).to_have_text(f"{api.headers['x-total-count']} customers match.")

    def test_a_good_upload_clears_the_error_of_a_failed_one(self):
        self.log_in("/upload/")
        self.page.get_by_label("CSV or NDJSON file").set_input_files(
            {"name": "transactions.xlsx", "mimeType": "application/octet-stream", "buffer": b"x"}
        )
        self.page.get_by_role("button", name="Upload and import").click()
        expect(self.page.locator("#id_format_error")).to_contain_text("Name the format")
        header = "customer_id,name,transaction_amount,mob_no,transaction_datetime,pincode,state\n"
        self.page.get_by_label("CSV or NDJSON file").set_input_files(
            {"name": "transactions.csv", "mimeType": "text/csv",
             "buffer": (header + "1,amit,100.50,9876543210,2024-09-24T15:30:00Z,110001,Delhi\n").encode()}
        )
        self.page.get_by_role("button", name="Upload and import").click()
        expect(self.page.get_by_test_id("import-state")).to_have_text("Done")
        expect(self.page.locator("#upload-form .errorlist")).to_have_count(0)
        expect(self.page.locator("#upload-form [aria-invalid]")).to_have_count(0)
        expect(self.page.get_by_text("Name the format")).to_have_count(0)

    def test_the_overviews_total_amount_stays_on_one_line_at_1366_px(self):
        store(
            record(customer_id=1, transaction_amount="999999999999.99", transaction_datetime="2024-01-01T00:00:00Z"),
            record(customer_id=2, transaction_amount="999999999999.99", transaction_datetime="2024-01-02T00:00:00Z"),
        )
        self.page.set_viewport_size({"width": 1366, "height": 900})
        self.log_in("/")
        total = self.page.get_by_test_id("total-amount")
        expect(total).to_have_text("₹19,99,99,99,99,999.98")  # rupees, in lakhs and crores
        lines = total.evaluate(
            "dd => { const range = document.createRange(); range.selectNodeContents(dd);"
            " return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size; }"
        )
        self.assertEqual(lines, 1)
        self.assertLessEqual(total.evaluate("dd => dd.scrollWidth - dd.clientWidth"), 0)
        self.assertLessEqual(self.page.evaluate("document.documentElement.scrollWidth"), 1366)

    def test_report_works_without_javascript(self):
        sample_data()
        context = self.browser.new_context(java_script_enabled=False)
        try:
            page = context.new_page()
            page.goto(self.url("/accounts/login/?next=/reports/range/"))
            page.get_by_label("Username").fill("analyst")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.get_by_label("Minimum total").fill("0")
            page.get_by_label("Maximum total").fill("100000")
            page.get_by_role("button", name="Run report").click()
            expect(page.get_by_test_id("total-count")).to_have_text("75 customers match.")
            # Without Chart.js the chart's numbers are shown as a table.
            expect(page.locator(".chart__data caption")).to_be_visible()
        finally:
            context.close()

    def test_state_picker_top_customers_export_and_open_a_customer(self):
        sample_data()
        self.log_in("/reports/top-customers/")
        picker = self.page.get_by_label("State")
        self.assertIn("Punjab (", picker.locator("option", has_text="Punjab").inner_text())
        picker.select_option("Punjab")  # choosing a state runs the report at once
        expect(self.page.locator(".pincode-card")).to_have_count(2)
        expect(self.page).to_have_url(self.url("/reports/top-customers/?state=Punjab&limit=&start=&time_period=&pincode=&order=pincode"))
        api = self.api_post("/api/top-customers", {"state": "Punjab"}).json()
        for pincode, ranked in api.items():
            card = self.page.locator(f".pincode-card[data-pincode='{pincode.removeprefix('pincode_')}']")
            self.assertEqual(
                [link.inner_text() for link in card.locator("tbody a").all()], [entry["name"] for entry in ranked]
            )
        expect(self.page.locator("figure.chart.chart--drawn")).to_have_count(2)
        self.screenshot("top-customers")

        exported = self.download_csv("Export CSV")
        self.assertEqual(exported[0], ["pincode", "rank", "customer_id", "name", "total_transaction_amount"])
        self.assertEqual(len(exported) - 1, sum(len(ranked) for ranked in api.values()))

        first = api["pincode_141001"][0]
        self.page.locator(".pincode-card[data-pincode='141001'] tbody a").first.click()
        expect(self.page).to_have_url(self.url(f"/customers/{first['customer_id']}/"))
        expect(self.page.get_by_role("heading", level=1)).to_have_text(first["name"])
        expect(self.page.get_by_test_id("mob-no")).to_have_text("98******" + f"{first['customer_id']:02d}"[-2:])
        expect(self.page.locator("figure.chart.chart--drawn")).to_have_count(1)
        self.screenshot("customer")

    def test_the_customer_pages_by_pincode_table_fits_a_375_px_phone(self):
        # Long state names and big figures: the table is wider than a phone's screen.
        store(*[
            record(customer_id=7, name="Meera", transaction_amount="999999999.99", pincode=f"{110001 + i}",
                   state="Dadra and Nagar Haveli and Daman and Diu", transaction_datetime=f"2024-0{i + 1}-01T00:00:00Z")
            for i in range(3)
        ])
        self.page.set_viewport_size({"width": 375, "height": 800})
        self.log_in("/customers/7/")
        self.assertLessEqual(self.page.evaluate("document.documentElement.scrollWidth"), 375)
        for table in ("customer-pincodes", "customer-transactions"):
            # Every cell is on the screen as it is: no part of a row lies beyond the edge or
            # behind a sideways scroll.
            scroller = self.page.get_by_test_id(table).locator("xpath=..")
            self.assertLessEqual(scroller.evaluate("box => box.scrollWidth - box.clientWidth"), 0, table)
            for cell in self.page.get_by_test_id(table).locator("tbody td").all():
                box = cell.bounding_box()
                self.assertLessEqual(box["x"] + box["width"], 375, table)
        expect(self.page.get_by_test_id("customer-pincodes").locator("tbody tr").first).to_contain_text(
            "Dadra and Nagar Haveli and Daman and Diu"
        )
        small_screenshot = SCREENSHOTS / "customer-375.png"
        self.page.screenshot(path=str(small_screenshot), full_page=True)

    def test_range_report_name_opens_the_customer(self):
        sample_data()
        self.log_in("/reports/range/?min_amount=0&max_amount=100000")
        link = self.page.locator("[data-testid=range-rows] tbody a").first
        name = link.inner_text()
        link.click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text(name)

    def test_api_docs_render_under_the_content_security_policy(self):
        self.log_in("/")
        response = self.page.goto(self.url("/api/docs/"))
        self.assertIn("script-src 'self'", response.headers["content-security-policy"])
        # Swagger UI drew the schema's operations: its scripts ran although none is inline.
        expect(self.page.locator(".swagger-ui .title")).to_contain_text("CDP API")
        expect(self.page.locator(".opblock-summary-path", has_text="/api/query-transaction-range")).to_be_visible()

    # --- issue 15: sorting, presets, drill-down, segments ---------------------------------------

    def click_bar(self, figure, index: int) -> None:
        """Click the middle of one bar of a Chart.js chart, where a user would."""
        figure.locator("canvas").scroll_into_view_if_needed()
        point = figure.evaluate(
            "(fig, i) => { const bar = fig._chart.getDatasetMeta(0).data[i];"
            " return {x: bar.x, y: (bar.y + bar.base) / 2}; }",
            index,
        )
        figure.locator("canvas").click(position=point)

    def test_sort_a_report_by_a_column_heading_and_back(self):
        sample_data()
        self.log_in("/reports/range/?min_amount=0&max_amount=100000")
        self.page.get_by_role("link", name="Customer", exact=True).click()
        expect(self.page).to_have_url(self.url("/reports/range/?min_amount=0&max_amount=100000&sort=name"))
        expect(self.page.locator("th[aria-sort=ascending]")).to_have_text("Customer ▲")
        names = [link.inner_text() for link in self.page.locator("[data-testid=range-rows] tbody td a").all()]
        self.assertEqual(names, [f"Customer {i:02d}" for i in range(1, 51)])
        self.page.get_by_role("link", name="Customer", exact=True).click()  # the arrow is hidden from its name
        expect(self.page.locator("th[aria-sort=descending]")).to_have_text("Customer ▼")
        expect(self.page.locator("[data-testid=range-rows] tbody td a").first).to_have_text("Customer 75")
        # Sorting keeps the query, and paging keeps the order.
        self.page.get_by_role("link", name="Next →").click()
        expect(self.page.locator("[data-testid=range-rows] tbody td a").first).to_have_text("Customer 25")
        self.page.get_by_role("link", name="Total", exact=True).click()
        api = self.api_post("/api/query-transaction-range", {"min_amount": 0, "max_amount": 100000, "limit": 50}).json()
        expect(self.page.locator("th[aria-sort=descending]")).to_have_text("Total ▼")
        self.assertEqual(
            self.range_rows_on_page(), [(row["customer_id"], Decimal(str(row["total_transaction_amount"]))) for row in api]
        )

        # A customer's transactions sort by amount, in place.
        self.page.goto(self.url("/customers/5/"))
        self.page.get_by_test_id("customer-transactions").get_by_role("link", name="Amount").click()
        expect(self.page).to_have_url(self.url("/customers/5/?sort=-amount"))
        amounts = [Decimal(cell.get_attribute("data-amount"))
                   for cell in self.page.locator("[data-testid=customer-transactions] [data-amount]").all()]
        self.assertEqual(amounts, sorted(amounts, reverse=True))
        self.assertGreater(len(amounts), 1)

    def test_a_date_preset_sets_the_dates_and_runs_the_report(self):
        sample_data()  # 2024: outside every preset but "last year" in 2025
        today = dt.datetime.now(dt.timezone.utc).date()
        store(
            record(customer_id=501, name="Recent", transaction_amount="100.00",
                   transaction_datetime=f"{(today - dt.timedelta(days=3)).isoformat()}T09:00:00Z"),
            record(customer_id=502, name="Two months ago", transaction_amount="100.00",
                   transaction_datetime=f"{(today - dt.timedelta(days=60)).isoformat()}T09:00:00Z"),
        )
        self.log_in("/reports/range/")
        self.page.get_by_label("Minimum total").fill("0")
        self.page.get_by_label("Maximum total").fill("100000")
        self.page.get_by_label("Period").select_option("last-30-days")  # runs the report at once
        expect(self.page.get_by_test_id("total-count")).to_have_text("1 customer matches.")
        expect(self.page.get_by_label("From (optional)")).to_have_value((today - dt.timedelta(days=29)).isoformat())
        expect(self.page.get_by_label("Up to (optional)")).to_have_value(today.isoformat())
        self.assertIn("period=last-30-days", self.page.url)
        self.page.get_by_label("Period").select_option("last-90-days")
        expect(self.page.get_by_test_id("total-count")).to_have_text("2 customers match.")
        names = {link.inner_text() for link in self.page.locator("[data-testid=range-rows] tbody td a").all()}
        self.assertEqual(names, {"Recent", "Two months ago"})

    def test_drill_down_from_a_histogram_band_and_from_a_month_bar(self):
        sample_data()
        self.log_in("/reports/range/?min_amount=0&max_amount=100000")
        histogram = self.page.locator("figure.chart.chart--drawn")
        expect(histogram).to_have_count(1)
        first_band = self.page.locator("[data-band]").first.get_attribute("href")
        band_customers = int(self.page.locator(".chart__data tbody td[data-value]").first.get_attribute("data-value"))
        self.click_bar(histogram, 0)
        expect(self.page).to_have_url(self.url(first_band))
        expect(self.page.get_by_test_id("total-count")).to_have_text(
            f"{band_customers} customer{'s' if band_customers != 1 else ''} match{'es' if band_customers == 1 else ''}."
        )
        # Every customer in the band lies in it.
        low, high = (Decimal(value) for value in (self.page.get_by_label("Minimum total").input_value(),
                                                  self.page.get_by_label("Maximum total").input_value()))
        self.assertTrue(all(low <= total <= high for _, total in self.range_rows_on_page()))

        self.page.goto(self.url("/"))
        months = self.page.locator("figure.chart.chart--drawn")
        expect(months).to_have_count(1)
        self.click_bar(months, 1)  # February 2024
        expect(self.page).to_have_url(
            self.url("/reports/range/?min_amount=0&max_amount=999999999999999999.99&start=2024-02-01&time_period=2024-02-29")
        )
        api = self.api_post(
            "/api/query-transaction-range",
            {"min_amount": 0, "max_amount": "999999999999999999.99", "start": "2024-02-01T00:00:00",
             "time_period": "2024-02-29T23:59:59.999999"},
        )
        expect(self.page.get_by_test_id("total-count")).to_have_text(f"{api.headers['x-total-count']} customers match.")
        self.assertEqual(
            self.range_rows_on_page(),
            [(row["customer_id"], Decimal(str(row["total_transaction_amount"]))) for row in api.json()[:50]],
        )

    def test_save_a_segment_then_export_it_and_see_who_entered(self):
        sample_data()
        self.log_in("/reports/range/")
        self.page.get_by_label("Minimum total").fill("500")
        self.page.get_by_label("Maximum total").fill("100000")
        self.page.get_by_label("State (optional)").select_option("Punjab")
        self.page.get_by_role("button", name="Run report").click()
        expect(self.page.locator("#range-results")).to_be_visible()
        report_count = self.page.get_by_test_id("total-count").inner_text().split()[0]
        report_rows = self.range_rows_on_page()
        self.page.get_by_label("Segment name").fill("Punjab, ₹500 and up")
        self.page.get_by_role("button", name="Save as segment").click()
        expect(self.page.get_by_role("heading", level=1)).to_have_text("Punjab, ₹500 and up")
        segment_id = int(self.page.url.rstrip("/").rsplit("/", 1)[1])
        expect(self.page.get_by_test_id("segment-count")).to_have_text(report_count)
        self.assertEqual(self.range_rows_on_page(), report_rows)
        expect(self.page.get_by_test_id("segment-last-export")).to_have_text("never")
        members = self.page.request.get(self.url(f"/api/segments/{segment_id}/customers/"))
        self.assertEqual(members.headers["x-total-count"], report_count)

        exported = self.download_csv_by_button("Export CSV")
        self.assertEqual(exported[0], ["customer_id", "name", "total_transaction_amount"])
        self.assertEqual(
            [(int(row[0]), row[1], Decimal(row[2])) for row in exported[1:]],
            [(row["customer_id"], row["name"], Decimal(str(row["total_transaction_amount"]))) for row in members.json()],
        )
        # A new big spender in Punjab enters the segment; the page says so after the export.
        self.api_post("/api/ingest-data", record(customer_id=900, name="Newcomer", transaction_amount="9000.00",
                                                 state="Punjab", pincode="141001", transaction_datetime="2024-07-01T00:00:00Z"))
        self.page.reload()
        expect(self.page.get_by_test_id("segment-entered")).to_have_text("1")
        expect(self.page.get_by_test_id("segment-left")).to_have_text("0")
        expect(self.page.get_by_test_id("entered-list")).to_have_text("Newcomer (900)")
        self.assertNotEqual(self.page.get_by_test_id("segment-last-export").inner_text(), "never")
        self.screenshot("segment")

        self.page.get_by_role("navigation", name="Main").get_by_role("link", name="Segments").click()
        row = self.page.locator(f"[data-testid=segments] tr[data-segment-id='{segment_id}']")
        expect(row.locator("[data-members]")).to_have_text(str(int(report_count) + 1))
        self.screenshot("segments")

    def test_dark_mode_follows_the_system_setting(self):
        sample_data()
        self.log_in("/reports/range/?min_amount=0&max_amount=100000")
        background = "() => getComputedStyle(document.documentElement).backgroundColor"
        self.assertEqual(self.page.evaluate(background), "rgb(245, 247, 250)")
        dark = self.browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme="dark", storage_state=self.context.storage_state()
        )
        try:
            page = dark.new_page()
            page.goto(self.page.url)
            expect(page.locator("figure.chart.chart--drawn")).to_have_count(1)
            self.assertEqual(page.evaluate(background), "rgb(18, 22, 28)")
            # The chart's bars take the scheme's brand colour.
            bar = page.locator("figure.chart").evaluate("fig => fig._chart.data.datasets[0].backgroundColor")
            self.assertEqual(bar, "#8fb4ff")
            page.screenshot(path=str(SCREENSHOTS / "range-report-dark.png"), full_page=False)
        finally:
            dark.close()

    def download_csv_by_button(self, button_name: str) -> list[list[str]]:
        with self.page.expect_download() as download_info:
            self.page.get_by_role("button", name=button_name).click()
        path = download_info.value.path()
        return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8"))))

    def test_top_customer_cards_by_total_and_a_pincode_search(self):
        sample_data()
        self.log_in("/reports/top-customers/?state=Punjab")
        expect(self.page.locator(".pincode-card")).to_have_count(2)
        self.page.get_by_label("Cards by").select_option("total")
        expect(self.page).to_have_url(self.url("/reports/top-customers/?state=Punjab&limit=&start=&time_period=&pincode=&order=total"))
        totals = [Decimal(card.get_attribute("data-card-total")) for card in self.page.locator("[data-card-total]").all()]
        self.assertEqual(totals, sorted(totals, reverse=True))
        self.page.get_by_label("Pincode (optional)").fill("16")
        self.page.get_by_role("button", name="Show top customers").click()
        expect(self.page.locator(".pincode-card")).to_have_count(1)
        expect(self.page.locator(".pincode-card")).to_have_attribute("data-pincode", "160001")
        self.page.get_by_test_id("pincode-jump").get_by_role("link", name="160001").click()
        expect(self.page).to_have_url(self.url("/reports/top-customers/?state=Punjab&limit=&start=&time_period=&pincode=16&order=total#pincode-160001"))
