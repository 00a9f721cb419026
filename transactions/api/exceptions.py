from __future__ import annotations

import logging

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.views import exception_handler

from .middleware import DATABASE_UNAVAILABLE_DETAIL, RETRY_AFTER_SECONDS, is_database_unavailable

logger = logging.getLogger(__name__)


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "request_too_large"


class DatabaseUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = DATABASE_UNAVAILABLE_DETAIL
    default_code = "database_unavailable"


def api_exception_handler(exc, context):
    """DRF's handler, plus 503 (not 500) when the database cannot be reached.

    Django's own refusals of a request body reach here too, since DRF reads the body (and so
    trips DATA_UPLOAD_MAX_MEMORY_SIZE) before our parser sees it; left alone they would become
    Django's HTML 400 page. They are answered like DRF's own errors instead: 413 for a body over
    the limit, 400 for the other suspicious bodies (too many form fields or files).
    """
    if isinstance(exc, RequestDataTooBig):
        exc = RequestBodyTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        exc = ParseError(str(exc))
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s", exc)
        request = context.get("request")
        if request is not None:
            # Token authentication failed before it could set the user; without this, the
            # request log would ask the session (and so the database) for it again, and fail.
            request._request.user = AnonymousUser()
        exc = DatabaseUnavailable()
        response = exception_handler(exc, context)
        response["Retry-After"] = RETRY_AFTER_SECONDS
        return response
    return exception_handler(exc, context)

