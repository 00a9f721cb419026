"""The Content Security Policy: django-csp's for documents, a fixed strict one for the rest.

A policy governs what a *document* may load and run. django-csp builds the header from the
settings afresh on every response, which on the API's small JSON answers was the costliest
middleware (3% of a single ingest's time in process). An answer that is not HTML (the API's
JSON, CSV downloads, scripts) cannot be a document, but if a browser were made to open one
as such it should run nothing: it gets ``default-src 'none'; frame-ancestors 'none'`` (what
OWASP's REST Security Cheat Sheet advises for APIs), a constant. HTML answers (the dashboard,
the admin, the API docs) get the policy of ``settings.CONTENT_SECURITY_POLICY``, nonces and
per-view changes included, from django-csp itself.
"""

from __future__ import annotations

from csp.constants import HEADER
from csp.middleware import CSPMiddleware

NOT_A_DOCUMENT_POLICY = "default-src 'none'; frame-ancestors 'none'"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if response.get("Content-Type", "").startswith("text/html"):
            return super().process_response(request, response)
        if HEADER not in response and not getattr(response, "_csp_exempt", False):
            response[HEADER] = NOT_A_DOCUMENT_POLICY
        return response
