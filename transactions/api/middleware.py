"""A database outage answered as one: 503 and a page that says so, not a server error."""

from __future__ import annotations

import logging

from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.templatetags.static import static
from django.utils.html import escape

# Nothing from DRF here: this module is loaded with the middleware, before DRF's settings.

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "5"
DATABASE_UNAVAILABLE_DETAIL = "The database is unavailable; try again shortly."


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether an exception means the database can't be reached (or the connection was lost)."""
    return isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DatabaseError) and "connect" in str(exc).lower()
    )


# Written out rather than a template extending base.html: that page asks the database for the
# user (the navigation shows who is logged in), and the database is what is missing. It uses
# the dashboard's stylesheet, which is served without the database.
OUTAGE_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="icon" href="data:,">
  <title>Temporarily unavailable · CDP dashboard</title>
  <link rel="stylesheet" href="{stylesheet}">
</head>
<body>
  <main id="main">
    <section class="card card--narrow">
      <h1>The dashboard is unavailable for a moment</h1>
      <p>We can't reach the database right now. This is usually over within a minute or two.</p>
      <p>If you were saving something, it was not saved: please send it again once the page loads.</p>
      <p><a href="">Try again</a></p>
    </section>
  </main>
</body>
</html>
"""


class DatabaseUnavailableMiddleware:
    """Turn "database unreachable" raised by a view into 503: JSON under /api/, a page elsewhere.

    The API's own views already answer 503 through DRF's exception handler; this covers the
    dashboard, the login page and the admin. The request's user is set to anonymous, so that
    nothing after the view (the request log) asks the database for it again and fails.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not is_database_unavailable(exception):
            return None
        logger.warning("database unavailable: %s", exception)
        request.user = AnonymousUser()
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": DATABASE_UNAVAILABLE_DETAIL}, status=503)
        else:
            page = OUTAGE_PAGE.format(stylesheet=escape(static("css/dashboard.css")))
            response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
