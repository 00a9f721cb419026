"""What every /api/ endpoint does around its own work: authentication, permissions, CSRF,
methods, body limits, throttling, malformed bodies, database outages, health, schema, docs."""

from __future__ import annotations

import json
import re
from unittest import mock

from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.core.cache import caches
from django.db import OperationalError, connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.support import ApiClientMixin, clear_caches, make_user, record, token_client
from transactions.api import authentication
from transactions.models import Transaction

INGEST_URL = "/api/ingest-data"
RANGE_URL = "/api/query-transaction-range"
TOP_CUSTOMERS_URL = "/api/top-customers"

# A valid body for each endpoint, so that only the property under test can make it fail.
VALID_BODIES = {
    INGEST_URL: record(),
    RANGE_URL: {"min_amount": 0, "max_amount": 100_000},
    TOP_CUSTOMERS_URL: {"state": "Delhi"},
}
CREATED_ANSWER_KEYS = ["status", "message", "id"]


class AuthenticationTests(TestCase):
    def setUp(self):
        clear_caches()

    def test_every_endpoint_answers_401_without_credentials(self):
        for url, body in VALID_BODIES.items():
            with self.subTest(url=url):
                response = APIClient().post(url, body, format="json")
                self.assertEqual(response.status_code, 401)
                self.assertEqual(response.json(), {"detail": "Authentication credentials were not provided."})
                self.assertEqual(response["WWW-Authenticate"], "Token")
        self.assertEqual(Transaction.objects.count(), 0)

    def test_every_endpoint_answers_401_with_an_unknown_token(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
        for url, body in VALID_BODIES.items():
            with self.subTest(url=url):
                response = client.post(url, body, format="json")
                self.assertEqual(response.status_code, 401)
                self.assertEqual(response.json(), {"detail": "Invalid token."})
                self.assertEqual(response["WWW-Authenticate"], "Token")
        self.assertEqual(Transaction.objects.count(), 0)

    def test_the_token_of_an_inactive_user_is_refused(self):
        user = make_user("gone")
        client = token_client(user)
        user.is_active = False
        user.save()

        response = client.post(RANGE_URL, VALID_BODIES[RANGE_URL], format="json")

        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json(), {"detail": "User inactive or deleted."})

    def test_a_valid_token_with_both_permissions_reaches_every_endpoint(self):
        client = token_client(make_user("analyst"))

        ingest = client.post(INGEST_URL, record(transaction_amount="10.00"), format="json")
        report = client.post(RANGE_URL, {"min_amount": 0, "max_amount": 100, "limit": 10}, format="json")
        top = client.post(TOP_CUSTOMERS_URL, {"state": "delhi"}, format="json")

        self.assertEqual(ingest.status_code, 201)
        self.assertEqual(list(ingest.json()), CREATED_ANSWER_KEYS)
        self.assertEqual(report.status_code, 200)
        self.assertEqual(report.json(), [{"customer_id": 101, "name": "amit", "total_transaction_amount": 10.0}])
        self.assertEqual(top.status_code, 200)
        self.assertEqual(
            top.json(), {"pincode_110001": [{"customer_id": 101, "name": "amit", "total_transaction_amount": 10.0}]}
        )


class PermissionTests(TestCase):
    def setUp(self):
        clear_caches()

    def test_a_user_who_may_only_view_cannot_ingest(self):
        viewer = token_client(make_user("viewer", permissions=("view_transaction",)))

        single = viewer.post(INGEST_URL, record(), format="json")
        batch = viewer.post(INGEST_URL, [record()], format="json")

        for response in (single, batch):
            self.assertEqual(response.status_code, 403)
            self.assertEqual(response.json(), {"detail": "You do not have permission to ingest transactions."})
        self.assertEqual(Transaction.objects.count(), 0)
        # The same user may read the reports.
        self.assertEqual(viewer.post(RANGE_URL, {"min_amount": 0, "max_amount": 1, "limit": 1}, format="json").json(), [])
        self.assertEqual(viewer.post(TOP_CUSTOMERS_URL, {"state": "Delhi"}, format="json").json(), {})

    def test_a_user_who_may_only_add_cannot_query(self):
        ingester = token_client(make_user("ingester", permissions=("add_transaction",)))

        for url in (RANGE_URL, TOP_CUSTOMERS_URL):
            with self.subTest(url=url):
                response = ingester.post(url, VALID_BODIES[url], format="json")
                self.assertEqual(response.status_code, 403)
                self.assertEqual(response.json(), {"detail": "You do not have permission to view transaction reports."})
        # The same user may ingest.
        created = ingester.post(INGEST_URL, record(), format="json")
        self.assertEqual(created.status_code, 201)
        self.assertEqual(created.json()["status"], "created")

    def test_a_user_without_permissions_can_do_nothing(self):
        nobody = token_client(make_user("nobody", permissions=()))

        for url, body in VALID_BODIES.items():
            with self.subTest(url=url):
                self.assertEqual(nobody.post(url, body, format="json").status_code, 403)
        self.assertEqual(Transaction.objects.count(), 0)


class KeptCredentialsTests(TestCase):
    """A process keeps a token, its user and the permissions (transactions/api/authentication.py)
    and forgets them as soon as any of them changes."""

    CREDENTIAL_TABLES = ("authtoken_token", "auth_user", "auth_permission", "auth_group")

    def setUp(self):
        clear_caches()
        self.user = make_user("kept", permissions=("add_transaction", "view_transaction"))
        self.api = token_client(self.user)
        self.assertEqual(self.ingest(customer_id=1).status_code, 201)  # the first request keeps them

    def ingest(self, **fields):
        return self.api.post(INGEST_URL, record(transaction_datetime=f"2024-01-0{fields['customer_id']}T00:00:00Z",
                                                **fields), format="json")

    def test_a_kept_token_is_not_read_again(self):
        with CaptureQueriesContext(connection) as queries:
            response = self.ingest(customer_id=2)
        self.assertEqual(response.status_code, 201, response.content)
        read = [q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in self.CREDENTIAL_TABLES)]
        self.assertEqual(read, [])

    def test_a_permission_taken_away_is_refused_at_once(self):
        self.user.user_permissions.remove(Permission.objects.get(codename="add_transaction"))
        response = self.ingest(customer_id=2)
        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json(), {"detail": "You do not have permission to ingest transactions."})

    def test_a_permission_taken_from_the_users_group_is_refused_at_once(self):
        self.user.user_permissions.clear()
        group = Group.objects.create(name="ingesters")
        group.permissions.add(Permission.objects.get(codename="add_transaction"))
        self.user.groups.add(group)
        self.assertEqual(self.ingest(customer_id=2).status_code, 201)

        group.permissions.clear()
        self.assertEqual(self.ingest(customer_id=3).status_code, 403)

    def test_a_deleted_token_is_refused_at_once(self):
        Token.objects.filter(user=self.user).get().delete()
        response = self.ingest(customer_id=2)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json(), {"detail": "Invalid token."})

    def test_a_deactivated_user_is_refused_at_once(self):
        self.user.is_active = False
        self.user.save()
        response = self.ingest(customer_id=2)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json(), {"detail": "User inactive or deleted."})

    def test_a_change_another_process_made_is_seen_through_the_shared_generation(self):
        # Another process's change reaches this one only as a new generation in the shared
        # cache: the permission is removed here without any signal, then the generation moves.
        through = User.user_permissions.through
        through.objects.filter(user=self.user, permission__codename="add_transaction")._raw_delete("default")
        self.assertEqual(self.ingest(customer_id=2).status_code, 201)  # still the kept copy
        caches["default"].set(authentication.GENERATION_KEY, "another-process-changed-something", None)
        self.assertEqual(self.ingest(customer_id=3).status_code, 403)

    def test_a_login_keeps_the_copies(self):
        before = caches["default"].get(authentication.GENERATION_KEY)
        self.client.force_login(self.user)  # saves last_login
        self.assertEqual(caches["default"].get(authentication.GENERATION_KEY), before)


class SessionAuthenticationTests(TestCase):
    def setUp(self):
        clear_caches()
        self.user = make_user("browser")

    def logged_in_client(self) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        self.assertTrue(client.login(username="browser", password="a-long-test-password"))
        return client

    def csrf_token_of(self, client: APIClient) -> str:
        # The login page sets the CSRF cookie whose value the API wants back in the header.
        page = client.get("/accounts/login/")
        self.assertEqual(page.status_code, 200)
        return client.cookies[settings.CSRF_COOKIE_NAME].value

    def test_a_logged_in_post_without_the_csrf_token_is_refused(self):
        client = self.logged_in_client()

        for url, body in VALID_BODIES.items():
            with self.subTest(url=url):
                response = client.post(url, body, format="json")
                self.assertEqual(response.status_code, 403)
                self.assertEqual(response.json(), {"detail": "CSRF Failed: CSRF cookie not set."})
        self.assertEqual(Transaction.objects.count(), 0)

    def test_a_logged_in_post_with_a_wrong_csrf_token_is_refused(self):
        client = self.logged_in_client()
        self.csrf_token_of(client)

        response = client.post(INGEST_URL, record(), format="json", HTTP_X_CSRFTOKEN="x" * 64)

        self.assertEqual(response.status_code, 403)
        self.assertTrue(response.json()["detail"].startswith("CSRF Failed:"), response.json())
        self.assertEqual(Transaction.objects.count(), 0)

    def test_a_logged_in_post_with_the_csrf_token_is_served(self):
        client = self.logged_in_client()
        token = self.csrf_token_of(client)

        ingest = client.post(INGEST_URL, record(transaction_amount="42.50"), format="json", HTTP_X_CSRFTOKEN=token)
        report = client.post(
            RANGE_URL, {"min_amount": 0, "max_amount": 100, "limit": 5}, format="json", HTTP_X_CSRFTOKEN=token
        )

        self.assertEqual(ingest.status_code, 201, ingest.content)
        self.assertEqual(ingest.json()["status"], "created")
        self.assertEqual(report.status_code, 200, report.content)
        self.assertEqual(report.json(), [{"customer_id": 101, "name": "amit", "total_transaction_amount": 42.5}])

    def test_a_logged_in_user_without_permission_is_refused_with_403(self):
        make_user("browsing-viewer", permissions=("view_transaction",))
        client = APIClient(enforce_csrf_checks=True)
        self.assertTrue(client.login(username="browsing-viewer", password="a-long-test-password"))
        token = self.csrf_token_of(client)

        response = client.post(INGEST_URL, record(), format="json", HTTP_X_CSRFTOKEN=token)

        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json(), {"detail": "You do not have permission to ingest transactions."})


class RequestErrorTests(ApiClientMixin, TestCase):
    def test_get_on_an_endpoint_that_only_accepts_post_is_405(self):
        for url in (INGEST_URL, RANGE_URL, TOP_CUSTOMERS_URL):
            with self.subTest(url=url):
                response = self.api.get(url)
                self.assertEqual(response.status_code, 405)
                self.assertEqual(response.json(), {"detail": 'Method "GET" not allowed.'})
                self.assertEqual(response["Allow"], "POST, OPTIONS")

    def test_other_methods_on_ingest_are_405(self):
        for method in ("put", "patch", "delete"):
            with self.subTest(method=method):
                response = getattr(self.api, method)(INGEST_URL, record(), format="json")
                self.assertEqual(response.status_code, 405)
                self.assertEqual(response.json(), {"detail": f'Method "{method.upper()}" not allowed.'})
        self.assertEqual(Transaction.objects.count(), 0)

    @override_settings(CDP_MAX_JSON_BODY_BYTES=1000)
    def test_a_body_over_the_size_limit_is_413_and_one_at_the_limit_is_accepted(self):
        def body_of_length(size: int, customer_id: int) -> bytes:
            text = json.dumps(record(customer_id=customer_id)).encode("utf-8")
            return text + b" " * (size - len(text))  # trailing whitespace is valid JSON

        at_limit = self.api.post(INGEST_URL, body_of_length(1000, 1), content_type="application/json")
        over_limit = self.api.post(INGEST_URL, body_of_length(1001, 2), content_type="application/json")

        self.assertEqual(at_limit.status_code, 201, at_limit.content)
        self.assertEqual(over_limit.status_code, 413)
        self.assertEqual(over_limit.json(), {"detail": "Request body is too large."})
        self.assertEqual(list(Transaction.objects.values_list("customer_id", flat=True)), [1])

    @override_settings(CDP_MAX_JSON_BODY_BYTES=1000)
    def test_a_batch_over_the_size_limit_is_413_and_nothing_is_stored(self):
        batch = [record(customer_id=customer_id) for customer_id in range(1, 20)]
        self.assertGreater(len(json.dumps(batch)), 1000)

        response = self.ingest(batch)

        self.assertEqual(response.status_code, 413)
        self.assertEqual(response.json(), {"detail": "Request body is too large."})
        self.assertEqual(Transaction.objects.count(), 0)

    def test_malformed_json_is_400(self):
        ingest = self.api.post(INGEST_URL, b'{"customer_id": 1,', content_type="application/json")
        report = self.api.post(RANGE_URL, b'{"min_amount": ', content_type="application/json")

        self.assertEqual(ingest.status_code, 400)
        self.assertEqual(ingest.json(), {"detail": "JSON parse error - Expecting property name enclosed in double quotes: line 1 column 19 (char 18)"})
        self.assertEqual(report.status_code, 400)
        self.assertEqual(report.json(), {"detail": "JSON parse error - Expecting value: line 1 column 16 (char 15)"})
        self.assertEqual(Transaction.objects.count(), 0)

    def test_nan_and_infinity_are_not_json(self):
        for constant in ("NaN", "Infinity", "-Infinity"):
            with self.subTest(constant=constant):
                response = self.api.post(
                    RANGE_URL, f'{{"min_amount": 0, "max_amount": {constant}}}'.encode(), content_type="application/json"
                )
                self.assertEqual(response.status_code, 400)
                self.assertEqual(response.json(), {"detail": f"JSON parse error - {constant} is not valid JSON"})

    def test_a_body_that_is_not_utf_8_is_400(self):
        body = '{"state": "Pünjab"}'.encode("latin-1")

        response = self.api.post(TOP_CUSTOMERS_URL, body, content_type="application/json")

        self.assertEqual(response.status_code, 400)
        self.assertEqual(response.json(), {"detail": "JSON parse error - the body is not valid UTF-8."})

    def test_a_body_of_another_media_type_is_415(self):
        response = self.api.post(INGEST_URL, b"customer_id=1", content_type="application/x-www-form-urlencoded")

        self.assertEqual(response.status_code, 415)
        self.assertEqual(
            response.json(), {"detail": 'Unsupported media type "application/x-www-form-urlencoded" in request.'}
        )
        self.assertEqual(Transaction.objects.count(), 0)


class ContentNegotiationTests(ApiClientMixin, TestCase):
    """Accept headers (transactions/api/negotiation.py answers "*/*" without parsing it)."""

    def test_a_client_accepting_json_or_anything_gets_json(self):
        for index, accept in enumerate([None, "*/*", "application/json", "application/*", "text/html, */*;q=0.1"], start=1):
            with self.subTest(accept=accept):
                extra = {} if accept is None else {"HTTP_ACCEPT": accept}
                response = self.ingest(record(customer_id=index), **extra)
                self.assertEqual(response.status_code, 201, response.content)
                self.assertEqual(response["Content-Type"], "application/json")
                self.assertEqual(response.json()["status"], "created")
        self.assertEqual(Transaction.objects.count(), 5)

    def test_a_client_accepting_only_another_media_type_is_406_and_nothing_is_stored(self):
        response = self.ingest(record(customer_id=1), HTTP_ACCEPT="text/html")
        self.assertEqual(response.status_code, 406)
        self.assertEqual(Transaction.objects.count(), 0)

    def test_a_format_asked_in_the_url_is_honoured(self):
        response = self.api.post(INGEST_URL + "?format=xml", record(customer_id=1), format="json")
        self.assertEqual(response.status_code, 404)  # DRF: no renderer for that format
        self.assertEqual(Transaction.objects.count(), 0)


class GenerationRowTests(TestCase):
    """Where the credentials generation lives is worked out once, and again when the settings change."""

    def test_the_row_follows_the_cache_settings(self):
        self.assertEqual(authentication._generation_in_database_table()[0], settings.CACHES["default"]["LOCATION"])
        with override_settings(CACHES={**settings.CACHES, "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "generation-row-test"}}):
            self.assertIsNone(authentication._generation_in_database_table())
        self.assertEqual(authentication._generation_in_database_table()[0], settings.CACHES["default"]["LOCATION"])


class ThrottlingTests(TestCase):
    def setUp(self):
        clear_caches()

    def test_a_user_over_the_rate_is_429_with_retry_after(self):
        rates = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": "2/minute", "user": "2/minute"}}
        hasty = token_client(make_user("hasty"))
        patient = token_client(make_user("patient"))
        body = {"min_amount": 0, "max_amount": 1, "limit": 1}

        with override_settings(REST_FRAMEWORK=rates):
            allowed = [hasty.post(RANGE_URL, body, format="json") for _ in range(2)]
            throttled = hasty.post(RANGE_URL, body, format="json")
            throttled_ingest = hasty.post(INGEST_URL, record(), format="json")
            other_user = patient.post(RANGE_URL, body, format="json")

        self.assertEqual([response.status_code for response in allowed], [200, 200])
        self.assertEqual(throttled.status_code, 429)
        retry_after = int(throttled["Retry-After"])
        self.assertTrue(1 <= retry_after <= 60, retry_after)
        self.assertEqual(throttled.json(), {"detail": f"Request was throttled. Expected available in {retry_after} seconds."})
        self.assertEqual(throttled_ingest.status_code, 429)
        self.assertIn("Retry-After", throttled_ingest)
        self.assertEqual(Transaction.objects.count(), 0)
        # The rate is per user: someone else is still served.
        self.assertEqual(other_user.status_code, 200)
        self.assertEqual(other_user.json(), [])


class DatabaseOutageTests(ApiClientMixin, TestCase):
    def test_a_database_error_in_a_view_is_503_not_500(self):
        # The one mock of the suite: a real outage cannot be staged inside a test transaction.
        outage = OperationalError("could not connect to server: Connection refused")
        with mock.patch("transactions.selectors.range_rows", side_effect=outage) as selector:
            response = self.range_query({"min_amount": 0, "max_amount": 100, "limit": 10})

        selector.assert_called_once()
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.json(), {"detail": "The database is unavailable; try again shortly."})
        self.assertEqual(response["Retry-After"], "5")


class HealthTests(TestCase):
    def test_health_answers_ok_without_credentials(self):
        response = APIClient().get("/api/health/")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok", "database": "ok"})

    def test_health_ignores_bad_credentials(self):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION="Token not-a-token")

        response = client.get("/api/health")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json(), {"status": "ok", "database": "ok"})


class SchemaAndDocsTests(ApiClientMixin, TestCase):
    def test_schema_is_an_openapi_3_document_describing_the_three_endpoints(self):
        response = self.api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

        self.assertEqual(response.status_code, 200)
        schema = json.loads(response.content)
        self.assertTrue(schema["openapi"].startswith("3."), schema["openapi"])
        self.assertEqual(schema["info"]["title"], "CDP API")
        # The routes accept the paths with or without a trailing slash; the schema may show either.
        paths = {path.rstrip("/"): operations for path, operations in schema["paths"].items()}
        for path in ("/api/ingest-data", "/api/query-transaction-range", "/api/top-customers"):
            with self.subTest(path=path):
                self.assertIn(path, paths)
                self.assertIn("post", paths[path])
                self.assertIn("requestBody", paths[path]["post"])
        self.assertEqual(
            set(schema["components"]["schemas"]["TransactionRangeQuery"]["required"]), {"min_amount", "max_amount"}
        )
        self.assertEqual(schema["components"]["schemas"]["TopCustomersQuery"]["required"], ["state"])

    def test_schema_and_docs_answer_401_without_credentials_or_with_an_unknown_token(self):
        unknown_token = APIClient()
        unknown_token.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
        for client, detail in ((APIClient(), "Authentication credentials were not provided."),
                               (unknown_token, "Invalid token.")):
            for url in ("/api/schema/", "/api/schema/?format=json", "/api/docs/", "/api/docs/?script="):
                with self.subTest(url=url, detail=detail):
                    response = client.get(url)
                    self.assertEqual(response.status_code, 401)
                    self.assertEqual(response.json(), {"detail": detail})
                    self.assertEqual(response["WWW-Authenticate"], "Token")

    def test_schema_is_served_to_a_browser_session_as_the_docs_page_fetches_it(self):
        client = APIClient()
        client.force_login(make_user("reader", permissions=()))  # any logged-in user may read the docs

        response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

        self.assertEqual(response.status_code, 200)
        self.assertEqual(json.loads(response.content)["info"]["title"], "CDP API")
        self.assertEqual(client.get("/api/docs/").status_code, 200)

    def test_every_path_the_schema_documents_is_served(self):
        schema = json.loads(self.api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").content)

        for path, operations in schema["paths"].items():
            for method in operations:
                with self.subTest(path=path, method=method):
                    if "{" in path:
                        # A path with an id is served, and a missing object is a JSON 404.
                        response = getattr(self.api, method)(re.sub(r"\{[^}]+\}", "987654", path))
                        self.assertEqual(response.status_code, 404, response.content)
                        self.assertEqual(set(json.loads(response.content)), {"detail"})
                        continue
                    response = getattr(self.api, method)(path, {}, format="json")
                    self.assertNotIn(response.status_code, (404, 405, 500), response.content)

    def test_docs_page_loads_its_assets_from_this_server_only(self):
        client = APIClient()
        client.force_login(self.user)

        response = client.get("/api/docs/")

        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/html"))
        html = response.content.decode("utf-8")
        self.assertNotIn("cdn", html.lower())
        self.assertNotIn("http://", html)
        self.assertNotIn("https://", html)
        assets = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]+)"', html)
        self.assertTrue(assets)
        # Every asset is a file of this server; the start-up script is served by the docs view
        # itself, so the page holds no inline script for the Content Security Policy to refuse.
        for asset in assets:
            self.assertTrue(asset.startswith("/static/") or asset.startswith("/api/docs/?script"), asset)
        self.assertNotRegex(html, r"<script>[^<]")
        bundle = "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
        self.assertIn(f'<script src="{bundle}"></script>', html)
        start_script = client.get("/api/docs/?script=")
        self.assertEqual(start_script.status_code, 200)
        self.assertIn('"/api/schema/"', start_script.content.decode("utf-8"))
        self.assertIn("script-src 'self'", response["Content-Security-Policy"])

        served = client.get(bundle)
        self.assertEqual(served.status_code, 200)
        self.assertIn("javascript", served["Content-Type"])
        # Read through the test client's wrapper, which closes the file without also closing the
        # test's database connection (response.close() alone would fire request_finished).
        script = b"".join(served.streaming_content)
        self.assertEqual(len(script), int(served["Content-Length"]))
        self.assertIn(b"SwaggerUIBundle", script)


class ContentSecurityPolicyTests(ApiClientMixin, TestCase):
    """Documents get the site's policy; every other answer the strictest (cdp_site/csp.py)."""

    def test_a_json_answer_may_load_and_run_nothing_and_a_page_gets_the_sites_policy(self):
        answer = self.api.post("/api/ingest-data", record(), format="json")
        self.assertEqual(answer.status_code, 201)
        self.assertEqual(answer["Content-Type"], "application/json")
        self.assertEqual(answer["Content-Security-Policy"], "default-src 'none'; frame-ancestors 'none'")
        refused = APIClient().get("/api/top-customers?state=Delhi")  # an error answer too
        self.assertEqual(refused.status_code, 401)
        self.assertEqual(refused["Content-Security-Policy"], "default-src 'none'; frame-ancestors 'none'")

        page = self.client.get("/accounts/login/")
        self.assertEqual(page.status_code, 200)
        self.assertTrue(page["Content-Type"].startswith("text/html"))
        policy = page["Content-Security-Policy"]
        for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
            self.assertIn(directive, policy)
