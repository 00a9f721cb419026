"""Contract fuzzing: schemathesis generates requests from our own OpenAPI schema and sends them
to a live server, authenticated with a real token, throttling off.

Checked on every response (schemathesis' checks, all but one):
- not_a_server_error: no 5xx, whatever was sent;
- status_code_conformance: the status is one the schema documents for that operation;
- response_schema_conformance / content_type_conformance / response_headers_conformance: the
  body, its media type and headers are those documented;
- negative_data_rejection: a request that breaks the schema is refused with a 4xx;
- unsupported_method, missing_required_header, ignored_auth, use_after_free,
  ensure_resource_availability: undocumented methods are 405, no credentials are 401, ...
Left out: positive_data_acceptance. The contract has rules JSON Schema cannot state (at most
two decimal places of a binary float, 7-15 digits once separators are stripped, years
1000-9999, a trimmed name that is not blank), so schema-valid requests are rightly refused
with 400 now and then; that check would report the contract, not a bug.

The upload endpoint is fuzzed too: it only stores the file and queues the job (202), which
needs no worker.

How much: CDP_FUZZ_MAX_EXAMPLES (test cases per operation and phase) bounds the count; the
whole run is also bounded in time (FUZZ_TIMEOUT). Its subject is our request handling, not the
database, so it is a slow test and runs once (in `make test`, on MariaDB), as the full fuzz
(about 3,000 requests). The database's own limits on values (bigint ranges, text without NUL)
are tested on every database by tests/hardening/test_hostile_input.py and the import tests. See
docs/RELIABILITY.md for the figures of actual runs.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.test import LiveServerTestCase, override_settings
from rest_framework.authtoken.models import Token

from tests.support import clear_caches, make_user, slow
from transactions.models import Transaction

FULL_EXAMPLES = 200
FUZZ_TIMEOUT = 480  # seconds; schemathesis is stopped (and the test fails) past this
# Every status the schema documents for some operation; anything else is a finding.
DOCUMENTED_STATUSES = {200, 201, 202, 400, 401, 403, 404, 405, 409, 413, 415}

NO_THROTTLING = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": None, "user": None}}


def max_examples() -> int:
    return int(os.environ.get("CDP_FUZZ_MAX_EXAMPLES") or FULL_EXAMPLES)


@slow
@override_settings(REST_FRAMEWORK=NO_THROTTLING)
class ContractFuzzTests(LiveServerTestCase):
    def setUp(self):
        clear_caches()
        self.work_dir = Path(self.enterContext(tempfile.TemporaryDirectory(prefix="cdp-fuzz-")))
        self.enterContext(override_settings(CDP_IMPORT_DIR=self.work_dir / "imports"))
        self.token = Token.objects.create(user=make_user("fuzzer")).key

    def run_schemathesis(self, examples: int) -> tuple[subprocess.CompletedProcess, dict, list[dict]]:
        reports = self.work_dir / "reports"
        command = [
            sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
            "run", f"{self.live_server_url}/api/schema/",
            "--header", f"Authorization: Token {self.token}",
            "--checks", "all",
            "--exclude-checks", "positive_data_acceptance",
            "--max-examples", str(examples),
            "--seed", os.environ.get("CDP_FUZZ_SEED", "20241124"),
            # One worker: two hit a thread-safety bug of CPython 3.11's ast module inside hypothesis
            # ("AST constructor recursion depth mismatch"), failing the run at random.
            "--workers", "1",
            "--request-timeout", "60",
            "--generation-database", "none",
            "--no-color",
            "--report", "json,har",
            "--report-json-path", str(reports / "run.json"),
            "--report-har-path", str(reports / "requests.har"),
        ]
        try:
            finished = subprocess.run(
                command, cwd=self.work_dir, capture_output=True, text=True, timeout=FUZZ_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired as exc:
            self.fail(f"schemathesis ran past {FUZZ_TIMEOUT} s:\n{(exc.stdout or b'')[-5000:]!r}")
        output = finished.stdout + finished.stderr
        self.assertTrue((reports / "run.json").exists(), output[-5000:])
        run = json.loads((reports / "run.json").read_text())
        entries = json.loads((reports / "requests.har").read_text())["log"]["entries"]
        return finished, run, entries

    def test_generated_requests_get_documented_answers_and_never_a_5xx(self):
        examples = max_examples()
        finished, run, entries = self.run_schemathesis(examples)
        output = (finished.stdout + finished.stderr)[-20000:]

        statuses = collections.Counter(entry["response"]["status"] for entry in entries)
        by_operation = collections.Counter(
            f'{entry["request"]["method"]} {entry["response"]["status"]}' for entry in entries
        )
        summary = (
            f"\nschemathesis on {connection.vendor}: {len(entries)} requests, "
            f"{run['test_cases']['generated']} generated test cases, max-examples {examples}, "
            f"{run['running_time']:.0f} s; statuses {dict(sorted(statuses.items()))}"
        )
        print(summary)  # the figures docs/RELIABILITY.md quotes
        self.assertEqual(run["failures"], [], output)
        self.assertEqual(run["errors"], [], output)
        self.assertEqual(finished.returncode, 0, output)
        self.assertTrue(run["complete"], output)
        self.assertEqual(sorted(status for status in statuses if status >= 500), [], summary)
        self.assertLessEqual(set(statuses), DOCUMENTED_STATUSES, summary)
        # Bounded in count, and not vacuous: every phase ran and every operation was reached.
        self.assertEqual(
            {name: phase["status"] for name, phase in run["phases"].items()},
            {"examples": "success", "coverage": "success", "fuzzing": "success", "stateful": "success"},
        )
        self.assertGreaterEqual(len(entries), examples * 12, summary)
        self.assertLessEqual(len(entries), examples * 60, summary)
        for method_and_status in ("POST 201", "POST 202", "POST 400", "GET 200", "GET 404", "POST 401"):
            self.assertIn(method_and_status, by_operation, summary)
        # Whatever the fuzzer managed to store went through validation: all rows are valid.
        for row in Transaction.objects.all():
            self.assertTrue(1 <= row.customer_id and row.transaction_amount > 0 and len(row.pincode) == 6)
