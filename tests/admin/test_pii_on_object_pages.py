from django.test import TestCase

from tests.support import make_user, record, token_client


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
