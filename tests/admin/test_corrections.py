"""Corrections made through the admin's forms and actions, each followed by the reports' answers."""

from __future__ import annotations

import csv
import io
import json

from django.contrib.admin.widgets import AutocompleteSelect
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.admin import (
    CUSTOMER_LIST,
    DELHI_BEFORE,
    PUNJAB_BEFORE,
    RANGE_BEFORE,
    TRANSACTION_LIST,
    AdminTestCase,
    customer_url,
    total,
    transaction_url,
)
from tests.support import record
from transactions.admin import COUNT_LIMIT
from transactions.models import Customer, CustomerPincodeTotal, Transaction


class TransactionCorrectionTests(AdminTestCase):
    def test_the_data_set_gives_the_answers_the_other_tests_start_from(self):
        self.assertRangeReport(**RANGE_BEFORE)
        self.assertTopCustomers("Delhi", **DELHI_BEFORE)
        self.assertTopCustomers("Punjab", **PUNJAB_BEFORE)

    def test_the_change_form_has_the_seven_fields_and_the_customer_is_an_autocomplete(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        response = self.admin.get(transaction_url(row))
        form = response.context["adminform"].form
        self.assertEqual(
            self.change_form_data(transaction_url(row)),
            {
                "customer": "1", "name": "asha", "mob_no": "9876543210", "transaction_amount": "100.00",
                "transaction_datetime": "2024-01-10T10:00:00+00:00", "pincode": "110001", "state": "Delhi",
            },
        )
        self.assertIsInstance(form.fields["customer"].widget.widget, AutocompleteSelect)
        # An autocomplete renders the chosen customer only, never a <select> of every customer.
        self.assertContains(response, '<option value="1" selected>asha (1)</option>', html=True)
        self.assertNotContains(response, '<option value="2"')

    def test_amount_edit_changes_every_report(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        response = self.post_change(transaction_url(row), transaction_amount="150.00")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        self.assertRangeReport(
            all_time=[total(3, "chitra", "400.00"), total(1, "asha", "350.00"), total(2, "bala", "300.00")],
            window=[total(3, "chitra", "400.00"), total(2, "bala", "250.00"), total(1, "asha", "150.00")],
        )
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(1, "asha", "350.00"), total(2, "bala", "250.00")],
                "pincode_110002": [total(2, "bala", "50.00")],
            },
            window={"pincode_110001": [total(2, "bala", "250.00"), total(1, "asha", "150.00")]},
        )

    def test_pincode_edit_moves_the_customer_between_pincode_cards(self):
        row = self.transaction_at(2, "2024-01-15T10:00:00Z")

        response = self.post_change(transaction_url(row), pincode="110002")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(1, "asha", "300.00")],
                "pincode_110002": [total(2, "bala", "300.00")],
            },
            window={
                "pincode_110001": [total(1, "asha", "100.00")],
                "pincode_110002": [total(2, "bala", "250.00")],
            },
        )
        self.assertRangeReport(**RANGE_BEFORE)
        self.assertEqual(
            sorted(CustomerPincodeTotal.objects.filter(customer_id=2).values_list("pincode", "total_amount")),
            [("110002", 300)],
        )

    def test_state_edit_moves_the_transaction_to_the_other_states_answer(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        # Cleaned as the API cleans it, and matched case-insensitively from then on.
        response = self.post_change(transaction_url(row), state="  punjab ", pincode="140001")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        row.refresh_from_db()
        self.assertEqual((row.state, row.state_key, row.pincode), ("punjab", "punjab", "140001"))
        self.assertTopCustomers(
            "PUNJAB",
            all_time={"pincode_140001": [total(3, "chitra", "400.00"), total(1, "asha", "100.00")]},
            window={"pincode_140001": [total(3, "chitra", "400.00"), total(1, "asha", "100.00")]},
        )
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(2, "bala", "250.00"), total(1, "asha", "200.00")],
                "pincode_110002": [total(2, "bala", "50.00")],
            },
            window={"pincode_110001": [total(2, "bala", "250.00")]},
        )
        self.assertRangeReport(**RANGE_BEFORE)

    def test_datetime_edit_changes_which_windows_count_it(self):
        row = self.transaction_at(1, "2024-02-10T10:00:00Z")

        # An offset is converted to UTC, as the API does: 00:00 in India is 18:30 UTC the day before.
        response = self.post_change(transaction_url(row), transaction_datetime="2024-01-05T00:00:00+05:30")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        row.refresh_from_db()
        self.assertEqual(row.transaction_datetime.isoformat(), "2024-01-04T18:30:00+00:00")
        self.assertRangeReport(
            all_time=RANGE_BEFORE["all_time"],
            window=[total(3, "chitra", "400.00"), total(1, "asha", "300.00"), total(2, "bala", "250.00")],
        )
        self.assertTopCustomers(
            "Delhi",
            all_time=DELHI_BEFORE["all_time"],
            window={"pincode_110001": [total(1, "asha", "300.00"), total(2, "bala", "250.00")]},
        )

    def test_moving_a_transaction_to_another_customer_moves_its_amount(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        response = self.post_change(transaction_url(row), customer="2")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        # Tied totals: customer_id ascending.
        self.assertRangeReport(
            all_time=[total(2, "bala", "400.00"), total(3, "chitra", "400.00"), total(1, "asha", "200.00")],
            window=[total(3, "chitra", "400.00"), total(2, "bala", "350.00")],
        )
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(2, "bala", "350.00"), total(1, "asha", "200.00")],
                "pincode_110002": [total(2, "bala", "50.00")],
            },
            window={"pincode_110001": [total(2, "bala", "350.00")]},
        )
        self.assertEqual(
            list(Customer.objects.filter(pk__in=[1, 2]).order_by("pk").values_list("total_amount", "transaction_count")),
            [(200, 1), (400, 3)],
        )

    def test_moving_a_customers_only_transaction_away_drops_them_from_the_reports(self):
        row = self.transaction_at(3, "2024-01-20T10:00:00Z")

        response = self.post_change(transaction_url(row), customer="1")

        self.assertRedirects(response, "/admin/transactions/transaction/")
        self.assertRangeReport(
            all_time=[total(1, "asha", "700.00"), total(2, "bala", "300.00")],
            window=[total(1, "asha", "500.00"), total(2, "bala", "250.00")],
        )
        self.assertTopCustomers("Punjab", all_time={"pincode_140001": [total(1, "asha", "400.00")]},
                                window={"pincode_140001": [total(1, "asha", "400.00")]})

    def test_deleting_a_transaction_from_its_delete_page(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        confirmation = self.admin.get(transaction_url(row, "delete"))
        self.assertContains(confirmation, "Are you sure")

        response = self.admin.post(transaction_url(row, "delete"), {"post": "yes"})

        self.assertRedirects(response, TRANSACTION_LIST)
        self.assertFalse(Transaction.objects.filter(pk=row.pk).exists())
        self.assertRangeReport(
            all_time=[total(3, "chitra", "400.00"), total(2, "bala", "300.00"), total(1, "asha", "200.00")],
            window=[total(3, "chitra", "400.00"), total(2, "bala", "250.00")],
        )
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(2, "bala", "250.00"), total(1, "asha", "200.00")],
                "pincode_110002": [total(2, "bala", "50.00")],
            },
            window={"pincode_110001": [total(2, "bala", "250.00")]},
        )

    def test_deleting_selected_transactions_with_the_bulk_action(self):
        selected = [self.transaction_at(1, "2024-01-10T10:00:00Z").pk, self.transaction_at(3, "2024-01-20T10:00:00Z").pk]
        action = {"action": "delete_selected", "_selected_action": [str(pk) for pk in selected]}
        confirmation = self.admin.post(TRANSACTION_LIST, action)
        self.assertContains(confirmation, "Are you sure you want to delete the selected transactions?")

        response = self.admin.post(TRANSACTION_LIST, {**action, "post": "yes"})

        self.assertRedirects(response, TRANSACTION_LIST)
        self.assertEqual(Transaction.objects.filter(pk__in=selected).count(), 0)
        self.assertRangeReport(
            all_time=[total(2, "bala", "300.00"), total(1, "asha", "200.00")],
            window=[total(2, "bala", "250.00")],
        )
        self.assertTopCustomers("Punjab", all_time={}, window={})
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(2, "bala", "250.00"), total(1, "asha", "200.00")],
                "pincode_110002": [total(2, "bala", "50.00")],
            },
            window={"pincode_110001": [total(2, "bala", "250.00")]},
        )

    def test_datetime_taken_by_another_transaction_of_the_customer_is_a_form_error(self):
        row = self.transaction_at(1, "2024-02-10T10:00:00Z")

        # The same instant as asha's January transaction, written with an offset.
        response = self.post_change(transaction_url(row), transaction_datetime="2024-01-10T15:30:00+05:30")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors,
            {"transaction_datetime": ["This customer already has another transaction at this date and time."]},
        )
        self.assertContains(response, "This customer already has another transaction at this date and time.")
        row.refresh_from_db()
        self.assertEqual(row.transaction_datetime.isoformat(), "2024-02-10T10:00:00+00:00")
        self.assertEqual(row.history.count(), 0)
        self.assertRangeReport(**RANGE_BEFORE)

    def test_moving_to_a_customer_who_has_a_transaction_at_that_time_is_a_form_error(self):
        row = self.transaction_at(2, "2024-01-15T10:00:00Z")

        response = self.post_change(transaction_url(row), customer="1", transaction_datetime="2024-01-10T10:00:00Z")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            response.context["adminform"].form.errors,
            {"transaction_datetime": ["This customer already has another transaction at this date and time."]},
        )
        row.refresh_from_db()
        self.assertEqual((row.customer_id, row.transaction_datetime.isoformat()), (2, "2024-01-15T10:00:00+00:00"))
        self.assertRangeReport(**RANGE_BEFORE)

    def test_invalid_values_are_refused_with_the_apis_messages(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        invalid = {"transaction_amount": "10.123", "pincode": "012345", "mob_no": "12345"}
        api_answer = self.api.post("/api/ingest-data", record(**invalid), format="json")
        self.assertEqual(api_answer.status_code, 400)

        response = self.post_change(transaction_url(row), **invalid)

        self.assertEqual(response.status_code, 200)
        errors = {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()}
        self.assertEqual(errors, json.loads(api_answer.content))
        self.assertEqual(
            errors,
            {
                "transaction_amount": ["Enter an amount with at most 2 decimal places."],
                "pincode": ["Enter a pincode of exactly 6 digits that does not start with 0."],
                "mob_no": ["Enter a mobile number of 7 to 15 digits (spaces, dashes and a leading + are allowed)."],
            },
        )
        row.refresh_from_db()
        self.assertEqual((str(row.transaction_amount), row.pincode, row.mob_no), ("100.00", "110001", "9876543210"))
        self.assertRangeReport(**RANGE_BEFORE)

    def test_amount_datetime_and_state_out_of_the_apis_bounds_are_refused(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        response = self.post_change(
            transaction_url(row), transaction_amount="0", transaction_datetime="2024-02-30T10:00:00", state="x" * 51
        )

        self.assertEqual(
            {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()},
            {
                "transaction_amount": ["Enter an amount greater than 0."],
                "transaction_datetime": [
                    "Enter an ISO 8601 datetime, e.g. 2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."
                ],
                "state": ["Enter a state of 1 to 50 characters."],
            },
        )

    def test_text_is_cleaned_as_the_api_cleans_it(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        # 17 characters, 13 digits: longer than the column, valid for the API.
        formatted = {"mob_no": "+91 98765 432 109", "name": "  asha   rao ", "pincode": " 110005 ", "state": " new  delhi"}
        api_answer = self.api.post(
            "/api/ingest-data", record(customer_id=9, **formatted), format="json"
        )
        self.assertEqual(api_answer.status_code, 201, api_answer.content)

        response = self.post_change(transaction_url(row), **formatted)

        self.assertRedirects(response, TRANSACTION_LIST)
        stored = Transaction.objects.values("mob_no", "name", "pincode", "state")
        self.assertEqual(stored.get(pk=row.pk), stored.get(customer_id=9))
        self.assertEqual(
            stored.get(pk=row.pk),
            {"mob_no": "9198765432109", "name": "asha rao", "pincode": "110005", "state": "new delhi"},
        )

    def test_blank_text_is_refused_with_the_apis_messages(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")

        response = self.post_change(transaction_url(row), name="   ", state="", pincode="", mob_no="")

        self.assertEqual(
            {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()},
            {
                "name": ["Enter a name of 1 to 100 characters."],
                "state": ["This field is required."],
                "pincode": ["This field is required."],
                "mob_no": ["This field is required."],
            },
        )


class CustomerCorrectionTests(AdminTestCase):
    def test_name_edit_shows_in_every_report(self):
        response = self.post_change(customer_url(1), name="Asha Rao")

        self.assertRedirects(response, CUSTOMER_LIST)
        self.assertRangeReport(
            all_time=[total(3, "chitra", "400.00"), total(1, "Asha Rao", "300.00"), total(2, "bala", "300.00")],
            window=[total(3, "chitra", "400.00"), total(2, "bala", "250.00"), total(1, "Asha Rao", "100.00")],
        )
        self.assertTopCustomers(
            "Delhi",
            all_time={
                "pincode_110001": [total(1, "Asha Rao", "300.00"), total(2, "bala", "250.00")],
                "pincode_110002": [total(2, "bala", "50.00")],
            },
            window={"pincode_110001": [total(2, "bala", "250.00"), total(1, "Asha Rao", "100.00")]},
        )

    def test_a_corrected_name_survives_a_later_transaction_correction(self):
        self.post_change(customer_url(1), name="Asha Rao")
        row = self.transaction_at(1, "2024-02-10T10:00:00Z")

        response = self.post_change(transaction_url(row), transaction_amount="250.00")

        self.assertRedirects(response, TRANSACTION_LIST)
        self.assertRangeReport(
            all_time=[total(3, "chitra", "400.00"), total(1, "Asha Rao", "350.00"), total(2, "bala", "300.00")],
            window=[total(3, "chitra", "400.00"), total(2, "bala", "250.00"), total(1, "Asha Rao", "100.00")],
        )

    def test_mobile_number_edit_is_stored_as_the_api_stores_it(self):
        response = self.post_change(customer_url(2), mob_no="+91 99999-00000")

        self.assertRedirects(response, CUSTOMER_LIST)
        self.assertEqual(
            Customer.objects.filter(pk=2).values("name", "mob_no", "total_amount", "transaction_count").get(),
            {"name": "bala", "mob_no": "919999900000", "total_amount": 300, "transaction_count": 2},
        )
        listing = self.admin.get(CUSTOMER_LIST, {"q": "919999900000"})
        self.assertEqual([c.pk for c in listing.context["cl"].result_list], [2])
        self.assertContains(listing, "<td class=\"field-mobile_number\">919999900000</td>", html=True)
        # Reports carry no mobile number; their answers are unchanged.
        self.assertRangeReport(**RANGE_BEFORE)

    def test_invalid_name_and_mobile_number_are_refused_with_the_apis_messages(self):
        response = self.post_change(customer_url(1), name="x" * 101, mob_no="12-34")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            {field: list(messages) for field, messages in response.context["adminform"].form.errors.items()},
            {
                "name": ["Enter a name of 1 to 100 characters."],
                "mob_no": ["Enter a mobile number of 7 to 15 digits (spaces, dashes and a leading + are allowed)."],
            },
        )
        self.assertEqual(Customer.objects.filter(pk=1).values_list("name", "mob_no").get(), ("asha", "9876543210"))

    def test_customers_can_be_neither_added_nor_deleted_in_the_admin(self):
        self.assertEqual(self.admin.get(f"{CUSTOMER_LIST}add/").status_code, 403)
        self.assertEqual(self.admin.post(customer_url(1, "delete"), {"post": "yes"}).status_code, 403)
        self.assertTrue(Customer.objects.filter(pk=1).exists())


class ChangelistTests(AdminTestCase):
    def listed_ids(self, url: str, **params) -> list[int]:
        response = self.admin.get(url, params)
        self.assertEqual(response.status_code, 200)
        return [row.pk for row in response.context["cl"].result_list]

    def ids_of(self, *keys: tuple[int, str]) -> list[int]:
        return [self.transaction_at(customer_id, moment).pk for customer_id, moment in keys]

    def test_search_by_customer_id_name_and_mobile_number(self):
        bala = self.ids_of((2, "2024-03-01T10:00:00Z"), (2, "2024-01-15T10:00:00Z"))  # newest first
        self.assertEqual(self.listed_ids(TRANSACTION_LIST, q="2"), bala)
        self.assertEqual(self.listed_ids(TRANSACTION_LIST, q="BAL"), bala)
        self.assertEqual(self.listed_ids(TRANSACTION_LIST, q="9123456789"), bala)
        self.assertEqual(self.listed_ids(TRANSACTION_LIST, q="912345678"), [])  # mobile numbers match whole
        self.assertEqual(self.listed_ids(CUSTOMER_LIST, q="3"), [3])
        self.assertEqual(self.listed_ids(CUSTOMER_LIST, q="chit"), [3])
        self.assertEqual(self.listed_ids(CUSTOMER_LIST, q="9876543210"), [1])

    def test_filters_by_state_pincode_and_date(self):
        self.assertEqual(
            self.listed_ids(TRANSACTION_LIST, state="punjab"), self.ids_of((3, "2024-01-20T10:00:00Z"))
        )
        self.assertEqual(
            self.listed_ids(TRANSACTION_LIST, state="delhi", pincode="110002"), self.ids_of((2, "2024-03-01T10:00:00Z"))
        )
        self.assertEqual(
            self.listed_ids(TRANSACTION_LIST, transaction_datetime__year="2024", transaction_datetime__month="1"),
            self.ids_of((3, "2024-01-20T10:00:00Z"), (2, "2024-01-15T10:00:00Z"), (1, "2024-01-10T10:00:00Z")),
        )

    def test_pincode_filter_offers_the_pincodes_of_the_chosen_state(self):
        def choices(**params):
            cl = self.admin.get(TRANSACTION_LIST, params).context["cl"]
            return {spec.parameter_name: spec.lookup_choices for spec in cl.filter_specs}

        # Without a state the pincode filter offers nothing and is left off the page.
        self.assertEqual(choices(), {"state": [("delhi", "Delhi"), ("punjab", "Punjab")]})
        self.assertEqual(
            choices(state="delhi"),
            {"state": [("delhi", "Delhi"), ("punjab", "Punjab")], "pincode": [("110001", "110001"), ("110002", "110002")]},
        )

    def test_customer_autocomplete_finds_customers_by_name_and_id(self):
        def autocomplete(term):
            response = self.admin.get(
                "/admin/autocomplete/",
                {"app_label": "transactions", "model_name": "transaction", "field_name": "customer", "term": term},
            )
            self.assertEqual(response.status_code, 200)
            return json.loads(response.content)["results"]

        self.assertEqual(autocomplete("bal"), [{"id": "2", "text": "bala (2)"}])
        self.assertEqual(autocomplete("3"), [{"id": "3", "text": "chitra (3)"}])

    def changelist_queries(self, url: str, *, rows: int) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            response = self.admin.get(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(len(response.context["cl"].result_list), rows)
        return [query["sql"] for query in queries.captured_queries]

    def add_customers(self, count: int) -> None:
        self.ingest(
            [
                record(customer_id=1000 + n, name=f"extra {n}", transaction_datetime=f"2024-05-01T10:{n:02d}:00Z")
                for n in range(count)
            ]
        )

    def test_transaction_list_runs_the_same_queries_for_5_rows_as_for_60(self):
        few = self.changelist_queries(TRANSACTION_LIST, rows=5)
        self.add_customers(55)

        many = self.changelist_queries(TRANSACTION_LIST, rows=60)

        self.assertEqual(len(many), len(few), "\n".join(many))

    def test_customer_list_runs_the_same_queries_for_3_rows_as_for_58(self):
        few = self.changelist_queries(CUSTOMER_LIST, rows=3)
        self.add_customers(55)

        many = self.changelist_queries(CUSTOMER_LIST, rows=58)

        self.assertEqual(len(many), len(few), "\n".join(many))

    def test_list_pages_count_at_most_a_limited_subquery_never_the_whole_table(self):
        pages = ((TRANSACTION_LIST, "transactions_transaction", 5), (CUSTOMER_LIST, "transactions_customer", 3))
        for url, table, rows in pages:
            with self.subTest(url=url):
                queries = self.changelist_queries(url, rows=rows)
                counts = [sql for sql in queries if "COUNT(" in sql.upper()]
                self.assertEqual(len(counts), 1, counts)
                self.assertIn(f"LIMIT {COUNT_LIMIT + 1}", counts[0])
                self.assertIn(table, counts[0])
                self.assertTrue(counts[0].upper().startswith("SELECT COUNT(*) FROM (SELECT"), counts[0])


class ActionTests(AdminTestCase):
    def test_export_as_csv_holds_the_selected_rows_with_whole_mobile_numbers_for_an_operator(self):
        asha = self.transaction_at(1, "2024-01-10T10:00:00Z")
        chitra = self.transaction_at(3, "2024-01-20T10:00:00Z")

        response = self.admin.post(
            TRANSACTION_LIST, {"action": "export_as_csv", "_selected_action": [str(chitra.pk), str(asha.pk)]}
        )

        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertEqual(response["Content-Disposition"], 'attachment; filename="transactions.csv"')
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(
            rows,
            [
                ["id", "customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state"],
                [str(asha.pk), "1", "asha", "9876543210", "100.00", "2024-01-10T10:00:00+00:00", "110001", "Delhi"],
                [str(chitra.pk), "3", "chitra", "9988776655", "400.00", "2024-01-20T10:00:00+00:00", "140001", "Punjab"],
            ],
        )

    def test_recompute_totals_repairs_corrupted_running_totals(self):
        Customer.objects.filter(pk=1).update(total_amount=5, transaction_count=9)
        CustomerPincodeTotal.objects.filter(customer_id=1).update(total_amount=5)
        # The all-time answers read the running totals, so the corruption shows there.
        self.assertEqual(self.range_report()[-1], total(1, "asha", "5.00"))

        response = self.admin.post(
            CUSTOMER_LIST, {"action": "recompute_totals", "_selected_action": ["1"]}, follow=True
        )

        self.assertEqual(response.redirect_chain, [(CUSTOMER_LIST, 302)])
        self.assertEqual([str(m) for m in response.context["messages"]], ["Recomputed the totals of 1 customer(s)."])
        self.assertEqual(
            Customer.objects.filter(pk=1).values_list("name", "total_amount", "transaction_count").get(),
            ("asha", 300, 2),
        )
        self.assertRangeReport(**RANGE_BEFORE)
        self.assertTopCustomers("Delhi", **DELHI_BEFORE)
