from django.test import TestCase

from tests.support import make_user, record, token_client
from transactions import services
from transactions.models import Customer, Transaction


class ObjectPagesHideMobileNumbersTest(TestCase):
    """Staff who may view but lack the view-PII permission see no whole number on object pages."""

    def setUp(self):
        created = token_client(make_user("client")).post("/api/ingest-data", record(), format="json")
        self.transaction_id = created.json()["id"]

    def pages(self, user):
        self.client.force_login(user)
        return [
            self.client.get(f"/admin/transactions/transaction/{self.transaction_id}/change/"),
            self.client.get("/admin/transactions/customer/101/change/"),
        ]

    def test_viewer_without_pii_permission_sees_no_mobile_number(self):
        viewer = make_user("viewer", permissions=("view_transaction", "view_customer"), is_staff=True)
        for page in self.pages(viewer):
            self.assertEqual(page.status_code, 200)
            self.assertContains(page, "Delhi" if "transaction/" in page.request["PATH_INFO"] else "amit")
            self.assertNotContains(page, "9876543210")

    def test_viewer_with_pii_permission_sees_the_whole_number(self):
        viewer = make_user("pii-viewer", permissions=("view_transaction", "view_customer", "view_pii"), is_staff=True)
        for page in self.pages(viewer):
            self.assertContains(page, "9876543210")


class HistoryPagesHideMobileNumbersTest(TestCase):
    """The audit trail shows a changed mobile number masked to staff without the view-PII permission."""

    def setUp(self):
        token_client(make_user("client")).post("/api/ingest-data", record(), format="json")
        customer = Customer.objects.get(pk=101)
        customer.mob_no = "9000000002"
        services.save_corrected_customer(customer=customer)
        row = Transaction.objects.get()
        row.mob_no = "9000000003"
        services.save_corrected_transaction(row=row, previous_customer_id=101)
        self.transaction_id = row.pk

    def history_pages(self, user) -> list:
        self.client.force_login(user)
        customer_history = Customer.history.filter(customer_id=101).order_by("history_id")
        transaction_history = Transaction.history.filter(id=self.transaction_id).order_by("history_id")
        urls = [
            "/admin/transactions/customer/101/history/",
            f"/admin/transactions/transaction/{self.transaction_id}/history/",
            *(f"/admin/transactions/customer/101/history/{entry.history_id}/" for entry in customer_history),
            *(f"/admin/transactions/transaction/{self.transaction_id}/history/{entry.history_id}/"
              for entry in transaction_history),
        ]
        return [(url, self.client.get(url)) for url in urls]

    def test_viewer_without_pii_permission_sees_the_changes_masked(self):
        viewer = make_user("viewer", permissions=("view_transaction", "view_customer"), is_staff=True)
        pages = self.history_pages(viewer)
        self.assertEqual(len(pages), 6)
        for url, page in pages:
            with self.subTest(url=url):
                self.assertEqual(page.status_code, 200)
                for whole in ("9876543210", "9000000002", "9000000003"):
                    self.assertNotContains(page, whole)
        customer_changes = [change for entry in pages[0][1].context["page_obj"]
                            for change in getattr(entry, "history_delta_changes", [])]
        self.assertEqual([(change["field"], change["old"], change["new"]) for change in customer_changes],
                         [("Mobile number", "98******10", "90******02")])
        self.assertContains(pages[1][1], "90******03")

    def test_viewer_with_pii_permission_sees_the_whole_numbers(self):
        viewer = make_user("pii-viewer", permissions=("view_transaction", "view_customer", "view_pii"), is_staff=True)
        pages = dict(self.history_pages(viewer))
        self.assertContains(pages["/admin/transactions/customer/101/history/"], "9000000002")
        self.assertContains(pages[f"/admin/transactions/transaction/{self.transaction_id}/history/"], "9000000003")
