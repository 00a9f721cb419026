"""Operators' corrections and deletions keep the per-month and per-pincode totals exact.

After each change made through the admin, the stored totals, the overview's chart and the
state picker are compared with the expected figures and with a GROUP BY over the transactions.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from tests.admin import CUSTOMER_LIST, TRANSACTION_LIST, AdminTestCase, transaction_url
from tests.support import (
    SummaryAssertionsMixin,
    monthly_totals,
    monthly_totals_grouped_from_transactions,
    pincode_totals,
)
from transactions import services
from transactions.models import MonthlyTotal

# The data set of tests/admin before any correction.
MONTHS_BEFORE = [("2024-01", 3, Decimal("750.00")), ("2024-02", 1, Decimal("200.00")), ("2024-03", 1, Decimal("50.00"))]
PINCODES_BEFORE = [
    ("delhi", "110001", 3, Decimal("550.00")),
    ("delhi", "110002", 1, Decimal("50.00")),
    ("punjab", "140001", 1, Decimal("400.00")),
]


class CorrectionsKeepSummariesTests(SummaryAssertionsMixin, AdminTestCase):
    def overview_months(self) -> list[tuple[str, int, Decimal]]:
        response = self.admin.get("/")
        self.assertEqual(response.status_code, 200)
        return [(m.month.strftime("%Y-%m"), m.transactions, m.total_amount) for m in response.context["months"]]

    def state_picker(self) -> list[tuple[str, int, int]]:
        response = self.admin.get("/reports/top-customers/")
        return [(s.state, s.transactions, s.pincodes) for s in response.context["states"]]

    def assertSummaries(self, *, months: list, pincodes: list) -> None:
        self.assertEqual(monthly_totals(), months)
        self.assertEqual(pincode_totals(), pincodes)
        self.assertSummariesMatchTransactions()
        self.assertEqual(self.overview_months(), monthly_totals_grouped_from_transactions())

    def test_the_data_set_gives_the_figures_the_other_tests_start_from(self):
        self.assertSummaries(months=MONTHS_BEFORE, pincodes=PINCODES_BEFORE)
        self.assertEqual(self.state_picker(), [("Delhi", 4, 2), ("Punjab", 1, 1)])

    def test_amount_edit_changes_its_month_and_pincode(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        self.assertRedirects(self.post_change(transaction_url(row), transaction_amount="150.05"), TRANSACTION_LIST)

        self.assertSummaries(
            months=[("2024-01", 3, Decimal("800.05")), *MONTHS_BEFORE[1:]],
            pincodes=[("delhi", "110001", 3, Decimal("600.05")), *PINCODES_BEFORE[1:]],
        )

    def test_datetime_edit_moves_the_transaction_to_another_month(self):
        row = self.transaction_at(1, "2024-02-10T10:00:00Z")

        self.assertRedirects(
            self.post_change(transaction_url(row), transaction_datetime="2024-03-15T00:00:00Z", transaction_amount="201.00"),
            TRANSACTION_LIST,
        )

        # February is empty now and leaves the chart; its row stays, at zero.
        self.assertSummaries(
            months=[("2024-01", 3, Decimal("750.00")), ("2024-03", 2, Decimal("251.00"))],
            pincodes=[("delhi", "110001", 3, Decimal("551.00")), *PINCODES_BEFORE[1:]],
        )
        services.fold_summary_deltas()
        self.assertEqual(
            MonthlyTotal.objects.values_list("transaction_count", "total_amount").get(month=dt.date(2024, 2, 1)),
            (0, Decimal("0.00")),
        )

    def test_datetime_edit_into_a_month_without_transactions_by_its_utc_date(self):
        row = self.transaction_at(2, "2024-03-01T10:00:00Z")

        # 23:00 on 30 November in New York is 04:00 on 1 December in UTC.
        self.post_change(transaction_url(row), transaction_datetime="2023-11-30T23:00:00-05:00")

        self.assertSummaries(
            months=[("2023-12", 1, Decimal("50.00")), *MONTHS_BEFORE[:2]],
            pincodes=PINCODES_BEFORE,
        )

    def test_state_and_pincode_edit_moves_the_amount_between_pincodes(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        self.post_change(transaction_url(row), state="PUNJAB", pincode="140001")

        self.assertSummaries(
            months=MONTHS_BEFORE,
            pincodes=[
                ("delhi", "110001", 2, Decimal("450.00")),
                ("delhi", "110002", 1, Decimal("50.00")),
                ("punjab", "140001", 2, Decimal("500.00")),
            ],
        )
        self.assertEqual(self.state_picker(), [("Delhi", 3, 2), ("Punjab", 2, 1)])

    def test_moving_a_transaction_to_another_customer_changes_no_month_or_pincode(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        self.assertRedirects(self.post_change(transaction_url(row), customer="2"), TRANSACTION_LIST)

        self.assertSummaries(months=MONTHS_BEFORE, pincodes=PINCODES_BEFORE)

    def test_deletions_from_the_delete_page_and_the_list_action(self):
        only_in_punjab = self.transaction_at(3, "2024-01-20T10:00:00Z")
        only_in_march = self.transaction_at(2, "2024-03-01T10:00:00Z")
        asha_january = self.transaction_at(1, "2024-01-10T10:00:00Z")

        self.admin.post(transaction_url(only_in_punjab, "delete"), {"post": "yes"})
        self.admin.post(
            TRANSACTION_LIST,
            {"action": "delete_selected", "_selected_action": [str(only_in_march.pk), str(asha_january.pk)], "post": "yes"},
        )

        self.assertSummaries(
            months=[("2024-01", 1, Decimal("250.00")), ("2024-02", 1, Decimal("200.00"))],
            pincodes=[("delhi", "110001", 2, Decimal("450.00"))],
        )
        self.assertEqual(self.state_picker(), [("Delhi", 2, 1)])

    def test_a_deleted_transaction_restored_from_its_history_counts_again(self):
        row = self.transaction_at(3, "2024-01-20T10:00:00Z")
        self.admin.post(transaction_url(row, "delete"), {"post": "yes"})
        self.assertEqual(monthly_totals()[0], ("2024-01", 2, Decimal("350.00")))

        history_page = self.admin.get(transaction_url(row, "history"))
        [deletion] = history_page.context["page_obj"]
        revert_url = f"/admin/transactions/transaction/{row.pk}/history/{deletion.history_id}/"
        form = self.admin.get(revert_url).context["adminform"].form
        values = {name: "" if form[name].value() is None else str(form[name].value()) for name in form.fields}
        self.assertRedirects(self.admin.post(revert_url, values), TRANSACTION_LIST)

        self.assertSummaries(months=MONTHS_BEFORE, pincodes=PINCODES_BEFORE)

    def test_the_customers_recompute_action_also_repairs_the_summaries(self):
        services.fold_summary_deltas()
        MonthlyTotal.objects.filter(month=dt.date(2024, 1, 1)).update(transaction_count=9, total_amount=1)

        response = self.admin.post(CUSTOMER_LIST, {"action": "recompute_totals", "_selected_action": ["1"]})

        self.assertRedirects(response, CUSTOMER_LIST)
        self.assertSummaries(months=MONTHS_BEFORE, pincodes=PINCODES_BEFORE)
