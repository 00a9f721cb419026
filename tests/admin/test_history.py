"""The audit trail: who changed or deleted what, when, from which values to which, and restoring."""

from __future__ import annotations

from django.utils import timezone

from tests.admin import RANGE_BEFORE, TRANSACTION_LIST, AdminTestCase, customer_url, total, transaction_url
from tests.support import record
from transactions.models import Customer, Transaction

BEFORE_CORRECTION = "As stored before an operator's correction"


def history_rows(response) -> list[tuple]:
    """The history page's rows, newest first: (type, changed by, reason, [(field, old, new)]).

    The changes are sorted by field: simple-history lists them in set order, which varies.
    """
    return [
        (
            entry.history_type,
            entry.history_user.username if entry.history_user else None,
            entry.history_change_reason,
            sorted(
                (change["field"], str(change["old"]), str(change["new"]))
                for change in getattr(entry, "history_delta_changes", [])
            ),
        )
        for entry in response.context["page_obj"]
    ]


class TransactionHistoryTests(AdminTestCase):
    def test_history_page_lists_the_change_with_the_operator_and_the_old_and_new_amounts(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        before = timezone.now()

        self.post_change(transaction_url(row), transaction_amount="150.00")

        response = self.admin.get(transaction_url(row, "history"))
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            history_rows(response),
            [
                ("~", "olga", None, [("Transaction amount", "100.00", "150.00")]),
                # Ingest records no history; the values it stored are kept when first corrected.
                ("+", None, BEFORE_CORRECTION, []),
            ],
        )
        changed, stored = row.history.all()
        self.assertEqual((stored.transaction_amount, changed.transaction_amount), (100, 150))
        self.assertEqual(stored.history_date, row.created_at)
        self.assertTrue(before <= changed.history_date <= timezone.now())
        self.assertContains(response, "olga")
        self.assertContains(response, "100.00")
        self.assertContains(response, "150.00")

    def test_every_correction_is_a_history_entry_with_its_own_before_and_after(self):
        row = self.transaction_at(2, "2024-01-15T10:00:00Z")
        self.post_change(transaction_url(row), pincode="110002")
        self.post_change(transaction_url(row), state="Haryana", transaction_datetime="2024-01-16T10:00:00Z")

        response = self.admin.get(transaction_url(row, "history"))

        self.assertEqual(
            history_rows(response),
            [
                (
                    "~", "olga", None,
                    [
                        ("State", "Delhi", "Haryana"),
                        ("State key", "delhi", "haryana"),
                        ("Transaction datetime", "2024-01-15 10:00:00+00:00", "2024-01-16 10:00:00+00:00"),
                    ],
                ),
                ("~", "olga", None, [("Pincode", "110001", "110002")]),
                ("+", None, BEFORE_CORRECTION, []),
            ],
        )

    def test_a_failed_correction_records_nothing(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        response = self.post_change(transaction_url(row), transaction_amount="-1")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(row.history.count(), 0)

    def test_a_deletion_is_recorded_with_who_and_the_values_deleted(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        other = self.transaction_at(3, "2024-01-20T10:00:00Z")

        self.admin.post(transaction_url(row, "delete"), {"post": "yes"})
        self.admin.post(
            TRANSACTION_LIST, {"action": "delete_selected", "_selected_action": [str(other.pk)], "post": "yes"}
        )

        deleted = Transaction.history.filter(history_type="-").order_by("history_id")
        self.assertEqual(
            list(deleted.values_list("id", "history_user__username", "customer_id", "transaction_amount", "pincode")),
            [(row.pk, "olga", 1, 100, "110001"), (other.pk, "olga", 3, 400, "140001")],
        )
        # The page of a deleted transaction still opens, from its history.
        response = self.admin.get(transaction_url(row, "history"))
        self.assertEqual(history_rows(response), [("-", "olga", None, [])])

    def test_a_deleted_transaction_is_restored_from_its_history(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        self.admin.post(transaction_url(row, "delete"), {"post": "yes"})
        self.assertEqual(self.range_report()[-1], total(1, "asha", "200.00"))

        history_page = self.admin.get(transaction_url(row, "history"))
        [deletion] = history_page.context["page_obj"]
        revert_url = f"/admin/transactions/transaction/{row.pk}/history/{deletion.history_id}/"
        self.assertContains(history_page, f'href="{revert_url}"')
        revert_page = self.admin.get(revert_url)
        self.assertEqual(revert_page.status_code, 200)
        form = revert_page.context["adminform"].form
        values = {name: "" if form[name].value() is None else str(form[name].value()) for name in form.fields}

        response = self.admin.post(revert_url, values)

        self.assertRedirects(response, TRANSACTION_LIST)
        restored = Transaction.objects.values(
            "id", "customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state",
            "state_key",
        ).get(pk=row.pk)
        self.assertEqual(
            restored,
            {
                "id": row.pk, "customer_id": 1, "name": "asha", "mob_no": "9876543210",
                "transaction_amount": row.transaction_amount, "transaction_datetime": row.transaction_datetime,
                "pincode": "110001", "state": "Delhi", "state_key": "delhi",
            },
        )
        self.assertRangeReport(**RANGE_BEFORE)
        # The row is inserted again, so its history says it was created, by the operator.
        self.assertEqual(
            list(row.history.values_list("history_type", "history_user__username")), [("+", "olga"), ("-", "olga")]
        )

    def test_restoring_onto_a_key_stored_again_since_is_a_form_error(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        self.admin.post(transaction_url(row, "delete"), {"post": "yes"})
        self.ingest([record(customer_id=1, name="asha", transaction_amount="111.00",
                            transaction_datetime="2024-01-10T10:00:00Z")])
        deletion = row.history.get()
        revert_url = f"/admin/transactions/transaction/{row.pk}/history/{deletion.history_id}/"
        form = self.admin.get(revert_url).context["adminform"].form
        values = {name: "" if form[name].value() is None else str(form[name].value()) for name in form.fields}

        response = self.admin.post(revert_url, values)

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors,
            {"transaction_datetime": ["This customer already has another transaction at this date and time."]},
        )
        self.assertFalse(Transaction.objects.filter(pk=row.pk).exists())
        self.assertEqual(
            self.range_report(),
            [total(3, "chitra", "400.00"), total(1, "asha", "311.00"), total(2, "bala", "300.00")],
        )

    def test_a_change_is_reverted_to_the_values_stored_before_it(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        self.post_change(transaction_url(row), transaction_amount="150.00", pincode="110009")
        stored = row.history.get(history_type="+")
        revert_url = f"/admin/transactions/transaction/{row.pk}/history/{stored.history_id}/"
        form = self.admin.get(revert_url).context["adminform"].form
        values = {name: "" if form[name].value() is None else str(form[name].value()) for name in form.fields}
        self.assertEqual((values["transaction_amount"], values["pincode"]), ("100.00", "110001"))

        response = self.admin.post(revert_url, values)

        self.assertRedirects(response, TRANSACTION_LIST)
        row.refresh_from_db()
        self.assertEqual((str(row.transaction_amount), row.pincode), ("100.00", "110001"))
        self.assertRangeReport(**RANGE_BEFORE)
        self.assertEqual(
            list(row.history.values_list("history_type", "history_user__username", "transaction_amount")),
            [("~", "olga", 100), ("~", "olga", 150), ("+", None, 100)],
        )


class CustomerHistoryTests(AdminTestCase):
    def test_history_page_lists_a_name_change_with_the_operator_and_both_names(self):
        self.post_change(customer_url(1), name="Asha Rao")

        response = self.admin.get(customer_url(1, "history"))

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            history_rows(response),
            [("~", "olga", None, [("Name", "asha", "Asha Rao")]), ("+", None, BEFORE_CORRECTION, [])],
        )

    def test_details_a_newer_transaction_brought_in_between_two_corrections_are_kept(self):
        self.post_change(customer_url(1), name="Asha Rao")
        # A newer transaction brings its own name and number with it, as API.md says.
        self.ingest([record(customer_id=1, name="asha r", mob_no="9000000001", transaction_datetime="2024-06-01T00:00:00Z")])
        self.assertEqual(Customer.objects.filter(pk=1).values_list("name", "mob_no").get(), ("asha r", "9000000001"))

        self.post_change(customer_url(1), mob_no="9000000002")

        response = self.admin.get(customer_url(1, "history"))
        self.assertEqual(
            history_rows(response),
            [
                ("~", "olga", None, [("Mobile number", "9000000001", "9000000002")]),
                (
                    "~", None, BEFORE_CORRECTION,
                    [("Mobile number", "9876543210", "9000000001"), ("Name", "Asha Rao", "asha r")],
                ),
                ("~", "olga", None, [("Name", "asha", "Asha Rao")]),
                ("+", None, BEFORE_CORRECTION, []),
            ],
        )
