"""The OpenAPI schema and its interactive docs, behind the credentials every endpoint asks for."""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import IsAuthenticated

from .renderers import ExactDecimalJSONRenderer


class _JsonErrorsMixin:
    """Refusals in JSON, as every other endpoint answers them.

    These views render YAML or HTML when they succeed; left to them, a 401 would be a YAML
    document or the text "401 Unauthorized".
    """

    def handle_exception(self, exc):
        self.request.accepted_renderer = ExactDecimalJSONRenderer()
        self.request.accepted_media_type = ExactDecimalJSONRenderer.media_type
        return super().handle_exception(exc)


# drf-spectacular lets anyone read both by default (SERVE_PERMISSIONS). A logged-in session will
# do as well as a token: that is how the docs page, linked from the dashboard, fetches the schema.
class SchemaView(_JsonErrorsMixin, SpectacularAPIView):
    permission_classes = [IsAuthenticated]


class DocsView(_JsonErrorsMixin, SpectacularSwaggerSplitView):
    """Swagger UI; its start-up script is served as a file, so the CSP needs no inline script."""

    permission_classes = [IsAuthenticated]
