"""What each role may do in the API and the admin, and where mobile numbers are masked."""

from __future__ import annotations

import csv
import io
import json

from django.contrib.admin.templatetags.admin_list import results
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils.html import strip_tags

from tests.admin import (
    CUSTOMER_LIST,
    TRANSACTION_LIST,
    TRANSACTIONS,
    AdminTestCase,
    make_role_user,
    total,
    transaction_url,
)
from tests.support import make_user, record, token_client
from transactions import services
from transactions.models import Transaction

ANALYST_PERMISSIONS = {"transactions.view_transaction", "transactions.view_customer", "transactions.add_transaction"}
API_CLIENT_PERMISSIONS = {"transactions.add_transaction", "transactions.view_transaction"}
OPERATOR_PERMISSIONS = ANALYST_PERMISSIONS | {
    "transactions.change_transaction", "transactions.delete_transaction", "transactions.change_customer",
    "transactions.view_pii", "transactions.view_historicaltransaction", "transactions.view_historicalcustomer",
}
NEW_RECORD = record(customer_id=50, name="dev", transaction_amount="75.00", transaction_datetime="2024-01-05T00:00:00Z")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


class RoleTests(AdminTestCase):
    def assertCanIngestAndQuery(self, user: User) -> None:
        api = token_client(user)
        created = api.post("/api/ingest-data", NEW_RECORD, format="json")
        self.assertEqual(created.status_code, 201, created.content)
        self.assertEqual(json.loads(created.content)["status"], "created")
        ranged = api.post("/api/query-transaction-range", {"min_amount": 0, "max_amount": 80}, format="json")
        self.assertEqual(ranged.status_code, 200)
        self.assertEqual(json.loads(b"".join(ranged.streaming_content) if ranged.streaming else ranged.content),
                         [{"customer_id": 50, "name": "dev", "total_transaction_amount": 75.0}])
        top = api.post("/api/top-customers", {"state": "punjab"}, format="json")
        self.assertEqual(json.loads(top.content), {"pincode_140001": [total(3, "chitra", "400.00")]})

    def assertAdminSendsToLogin(self, user: User) -> None:
        client = logged_in(user)
        for url in ("/admin/", TRANSACTION_LIST, transaction_url(Transaction.objects.first())):
            with self.subTest(url=url):
                self.assertRedirects(client.get(url), f"/admin/login/?next={url}", fetch_redirect_response=False)

    def test_each_role_holds_exactly_its_permissions_and_only_operators_are_staff(self):
        for role, expected in (
            ("analyst", ANALYST_PERMISSIONS), ("operator", OPERATOR_PERMISSIONS), ("api-client", API_CLIENT_PERMISSIONS)
        ):
            with self.subTest(role=role):
                user = make_role_user(f"someone-{role}", role)
                user = User.objects.get(pk=user.pk)  # permissions are cached on the instance
                self.assertEqual(user.get_all_permissions(), expected)
                self.assertEqual(user.is_staff, role == "operator")
                self.assertEqual(list(user.groups.values_list("name", flat=True)), [role])

    def test_ensure_roles_is_idempotent_and_restores_a_trimmed_role(self):
        Group.objects.get(name="operator").permissions.clear()

        services.ensure_roles()
        services.ensure_roles()

        self.assertEqual(Group.objects.filter(name__in=services.ROLE_PERMISSIONS).count(), 3)
        operator = User.objects.get(pk=self.operator.pk)
        self.assertEqual(operator.get_all_permissions(), OPERATOR_PERMISSIONS)

    def test_unknown_role_is_refused(self):
        with self.assertRaisesMessage(ValueError, "Unknown role 'admin'"):
            services.assign_role(user=self.operator, role="admin")

    def test_analyst_cannot_open_the_admin_but_can_ingest_and_query_with_a_token(self):
        analyst = make_role_user("ana", "analyst")
        self.assertAdminSendsToLogin(analyst)
        self.assertCanIngestAndQuery(analyst)

    def test_api_client_can_ingest_and_query_but_cannot_open_the_admin(self):
        self.assertAdminSendsToLogin(self.api_user)
        self.assertCanIngestAndQuery(self.api_user)

    def test_operator_can_ingest_and_query_too(self):
        self.assertCanIngestAndQuery(self.operator)

    def test_user_without_a_role_is_refused_by_the_api(self):
        nobody = token_client(make_user("nobody", permissions=()))
        answers = {
            "/api/ingest-data": (NEW_RECORD, "You do not have permission to ingest transactions."),
            "/api/query-transaction-range": (
                {"min_amount": 0, "max_amount": 10}, "You do not have permission to view transaction reports."
            ),
            "/api/top-customers": ({"state": "Delhi"}, "You do not have permission to view transaction reports."),
        }
        for url, (body, message) in answers.items():
            with self.subTest(url=url):
                response = nobody.post(url, body, format="json")
                self.assertEqual(response.status_code, 403)
                self.assertEqual(json.loads(response.content), {"detail": message})
        self.assertFalse(Transaction.objects.filter(customer_id=50).exists())

    def test_operator_can_change_and_delete_transactions_and_change_customers(self):
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        for url in ("/admin/", TRANSACTION_LIST, CUSTOMER_LIST, transaction_url(row), transaction_url(row, "delete"),
                    transaction_url(row, "history"), "/admin/transactions/customer/1/change/"):
            with self.subTest(url=url):
                self.assertEqual(self.admin.get(url).status_code, 200)
        response = self.post_change(transaction_url(row), transaction_amount="101.00")
        self.assertRedirects(response, TRANSACTION_LIST)
        response = self.post_change("/admin/transactions/customer/1/change/", name="asha k")
        self.assertRedirects(response, CUSTOMER_LIST)
        self.assertEqual(self.range_report()[1], total(1, "asha k", "301.00"))

    def test_operator_is_kept_out_of_users_and_imports(self):
        for url in ("/admin/auth/user/", "/admin/auth/group/", "/admin/transactions/importjob/"):
            with self.subTest(url=url):
                self.assertEqual(self.admin.get(url).status_code, 403)

    def test_staff_with_view_permission_only_sees_but_cannot_change(self):
        viewer = make_user("viewer", permissions=("view_transaction", "view_customer"), is_staff=True)
        client = logged_in(viewer)
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        listing = client.get(TRANSACTION_LIST)
        self.assertEqual(
            listing.context["action_form"].fields["action"].choices,
            [("", "---------"), ("export_as_csv", "Export the selected transactions as CSV")],
        )
        self.assertEqual(client.get(transaction_url(row)).status_code, 200)

        data = self.change_form_data(transaction_url(row), transaction_amount="1.00")
        self.assertEqual(client.post(transaction_url(row), data).status_code, 403)
        self.assertEqual(client.post(transaction_url(row, "delete"), {"post": "yes"}).status_code, 403)
        delete_action = client.post(
            TRANSACTION_LIST, {"action": "delete_selected", "_selected_action": [str(row.pk)], "post": "yes"}
        )
        # An action not offered is not run: back to the list, with "No action selected".
        self.assertRedirects(delete_action, TRANSACTION_LIST, fetch_redirect_response=False)
        row.refresh_from_db()
        self.assertEqual(str(row.transaction_amount), "100.00")

    def test_assign_role_command_makes_an_operator(self):
        call_command("assign_role", "newbie", "operator", "--create", stdout=io.StringIO())

        newbie = User.objects.get(username="newbie")
        self.assertEqual((newbie.is_staff, newbie.get_all_permissions()), (True, OPERATOR_PERMISSIONS))
        with self.assertRaises(CommandError):
            call_command("assign_role", "missing", "analyst", stdout=io.StringIO())

    def test_create_api_client_command_gives_a_working_token(self):
        out = io.StringIO()
        call_command("create_api_client", "robot", stdout=out)

        api = Client(HTTP_AUTHORIZATION=f"Token {out.getvalue().strip()}")
        response = api.post("/api/top-customers", {"state": "Punjab"}, content_type="application/json")
        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(response.content), {"pincode_140001": [{"customer_id": 3, "name": "chitra",
                                                                           "total_transaction_amount": 400.0}]})
        robot = User.objects.get(username="robot")
        self.assertEqual((robot.is_staff, robot.get_all_permissions()), (False, API_CLIENT_PERMISSIONS))


class MaskingTests(AdminTestCase):
    def setUp(self):
        super().setUp()
        # Staff who may look at transactions but not at personal data: no role gives this, so
        # it is built here from bare permissions.
        self.viewer = make_user(
            "viewer", permissions=("view_transaction", "view_customer", "change_transaction"), is_staff=True
        )

    def conflict_answer(self, user: User) -> dict:
        clashing = {**TRANSACTIONS[0], "transaction_amount": "999.00"}
        response = token_client(user).post("/api/ingest-data", clashing, format="json")
        self.assertEqual(response.status_code, 409)
        return json.loads(response.content)

    def expected_conflict(self, mob_no: str) -> dict:
        row = self.transaction_at(1, "2024-01-10T10:00:00Z")
        return {
            "status": "conflict",
            "message": "A different transaction is already stored for this customer at this time; not inserted.",
            "existing": {
                "id": row.pk, "customer_id": 1, "name": "asha", "transaction_amount": 100.0, "mob_no": mob_no,
                "transaction_datetime": "2024-01-10T10:00:00Z", "pincode": "110001", "state": "Delhi",
            },
        }

    def test_conflict_answer_masks_the_stored_mobile_number_for_an_api_client(self):
        self.assertEqual(self.conflict_answer(self.api_user), self.expected_conflict("98******10"))

    def test_conflict_answer_shows_the_whole_mobile_number_to_an_operator(self):
        self.assertEqual(self.conflict_answer(self.operator), self.expected_conflict("9876543210"))

    def mobile_column(self, client: Client, url: str, **params) -> list[str]:
        response = client.get(url, params)
        self.assertEqual(response.status_code, 200)
        return [cells[-1] for cells in self.rows_of(response)]

    def rows_of(self, response) -> list[list[str]]:
        """The changelist's cells as text, in the order the page shows them."""
        return [[strip_tags(str(cell)) for cell in row] for row in results(response.context["cl"])]

    def test_transaction_list_masks_mobile_numbers_without_view_pii(self):
        viewer = logged_in(self.viewer)

        response = viewer.get(TRANSACTION_LIST, {"state": "delhi"})

        self.assertEqual(
            [cells[-1] for cells in self.rows_of(response)],
            ["91******89", "98******10", "91******89", "98******10"],
        )
        self.assertNotContains(response, "9876543210")
        self.assertNotContains(response, "9123456789")

    def test_transaction_list_shows_whole_mobile_numbers_to_an_operator(self):
        self.assertEqual(
            self.mobile_column(self.admin, TRANSACTION_LIST, state="delhi"),
            ["9123456789", "9876543210", "9123456789", "9876543210"],
        )

    def test_customer_list_masks_mobile_numbers_without_view_pii(self):
        response = logged_in(self.viewer).get(CUSTOMER_LIST)

        self.assertEqual(
            self.rows_of(response),
            [
                ["", "1", "asha", "300.00", "2", "Feb. 10, 2024, 10 a.m.", "98******10"],
                ["", "2", "bala", "300.00", "2", "March 1, 2024, 10 a.m.", "91******89"],
                ["", "3", "chitra", "400.00", "1", "Jan. 20, 2024, 10 a.m.", "99******55"],
            ],
        )
        self.assertEqual(self.mobile_column(self.admin, CUSTOMER_LIST), ["9876543210", "9123456789", "9988776655"])

    def test_csv_export_masks_mobile_numbers_without_view_pii(self):
        rows = [self.transaction_at(1, "2024-01-10T10:00:00Z"), self.transaction_at(2, "2024-01-15T10:00:00Z")]

        response = logged_in(self.viewer).post(
            TRANSACTION_LIST, {"action": "export_as_csv", "_selected_action": [str(row.pk) for row in rows]}
        )

        self.assertEqual(response.status_code, 200)
        exported = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        self.assertEqual(
            exported,
            [
                ["id", "customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state"],
                [str(rows[0].pk), "1", "asha", "98******10", "100.00", "2024-01-10T10:00:00+00:00", "110001", "Delhi"],
                [str(rows[1].pk), "2", "bala", "91******89", "250.00", "2024-01-15T10:00:00+00:00", "110001", "Delhi"],
            ],
        )

    def test_searching_by_a_whole_mobile_number_needs_view_pii(self):
        # Otherwise a search would tell who a masked number belongs to, one guess at a time.
        viewer = logged_in(self.viewer)
        for url in (TRANSACTION_LIST, CUSTOMER_LIST):
            with self.subTest(url=url):
                self.assertEqual(self.rows_of(viewer.get(url, {"q": "9876543210"})), [])
                self.assertEqual(len(self.rows_of(viewer.get(url, {"q": "1"}))), 2 if url == TRANSACTION_LIST else 1)
                self.assertTrue(all("9876543210" in cells for cells in self.rows_of(self.admin.get(url, {"q": "9876543210"}))))
                self.assertEqual(len(self.rows_of(self.admin.get(url, {"q": "9876543210"}))), 2 if url == TRANSACTION_LIST else 1)
