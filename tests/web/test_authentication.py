"""The dashboard's session user, kept per process (``transactions.web.authentication``)."""

from __future__ import annotations

from unittest import mock

from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from django.db import connection
from django.test import RequestFactory, TestCase
from django.test.utils import CaptureQueriesContext

from tests.support import DashboardTestMixin
from transactions.api.authentication import GENERATION_KEY, MAX_AGE_SECONDS
from transactions.web import authentication
from transactions.web.authentication import forget_session_users, session_user

URL = "/reports/range/"


def _auth_queries(queries) -> list[str]:
    return [query["sql"] for query in queries if "auth_user" in query["sql"] or "auth_permission" in query["sql"]]


class KeptSessionUserTests(DashboardTestMixin, TestCase):
    def setUp(self):
        super().setUp()
        forget_session_users()
        self.addCleanup(forget_session_users)

    def _page(self):
        with CaptureQueriesContext(connection) as queries:
            response = self.client.get(URL)
        return response, _auth_queries(queries.captured_queries)

    def test_the_second_page_reads_neither_the_user_nor_its_permissions(self):
        first, first_reads = self._page()
        second, second_reads = self._page()
        self.assertEqual((first.status_code, second.status_code), (200, 200))
        self.assertEqual(len(first_reads), 3)  # the user, its permissions, its groups' permissions
        self.assertEqual(second_reads, [])
        self.assertContains(second, '<span class="account__name">analyst</span>', html=True)

    def test_a_permission_removed_in_this_process_is_refused_at_once(self):
        self.assertEqual(self._page()[0].status_code, 200)
        self.analyst.user_permissions.remove(Permission.objects.get(codename="view_transaction"))
        response, reads = self._page()
        self.assertEqual(response.status_code, 403)
        self.assertEqual(len(reads), 3)

    def test_a_permission_removed_by_another_process_is_refused_once_it_says_so(self):
        self.assertEqual(self._page()[0].status_code, 200)
        # Removed without signals, as another process's change looks to this one ...
        User.user_permissions.through.objects.filter(
            user=self.analyst, permission__codename="view_transaction"
        ).delete()
        self.assertEqual(self._page()[0].status_code, 200)  # ... kept until told
        # ... which that process does by writing a new generation to the shared cache.
        caches["default"].set(GENERATION_KEY, "changed-elsewhere", timeout=None)
        self.assertEqual(self._page()[0].status_code, 403)

    def test_a_kept_user_is_read_again_after_max_age(self):
        self.assertEqual(self._page()[0].status_code, 200)
        User.user_permissions.through.objects.filter(
            user=self.analyst, permission__codename="view_transaction"
        ).delete()
        later = authentication.time.monotonic() + MAX_AGE_SECONDS + 1
        with mock.patch.object(authentication.time, "monotonic", return_value=later):
            self.assertEqual(self._page()[0].status_code, 403)

    def test_a_password_change_ends_the_session(self):
        self.assertEqual(self._page()[0].status_code, 200)
        self.analyst.set_password("another-long-password")
        self.analyst.save()
        response = self.client.get(URL)
        self.assertRedirects(response, f"/accounts/login/?next={URL}", fetch_redirect_response=False)

    def test_a_session_not_matching_the_kept_users_hash_is_ended(self):
        self.assertEqual(self._page()[0].status_code, 200)  # the user is kept now
        session = self.client.session
        session[HASH_SESSION_KEY] = "0" * 64
        session.save()
        response = self.client.get(URL)
        self.assertRedirects(response, f"/accounts/login/?next={URL}", fetch_redirect_response=False)
        self.assertNotIn(SESSION_KEY, self.client.session)

    def test_a_deactivated_user_is_logged_out(self):
        self.assertEqual(self._page()[0].status_code, 200)
        self.analyst.is_active = False
        self.analyst.save()
        response = self.client.get(URL)
        self.assertRedirects(response, f"/accounts/login/?next={URL}", fetch_redirect_response=False)

    def test_each_request_gets_its_own_copy(self):
        request = RequestFactory().get(URL)
        request.session = self.client.session
        session_user(request)  # read and kept
        first, second = session_user(request), session_user(request)
        first.shown_name = "set by a view"
        self.assertEqual((first.pk, second.pk), (self.analyst.pk, self.analyst.pk))
        self.assertIsNot(first, second)
        self.assertFalse(hasattr(second, "shown_name"))
        self.assertTrue(second.has_perm("transactions.view_transaction"))

    def test_without_a_session_the_user_is_anonymous(self):
        self.client.logout()
        response = self.client.get(URL)
        self.assertRedirects(response, f"/accounts/login/?next={URL}", fetch_redirect_response=False)
