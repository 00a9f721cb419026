from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "request_too_large"


class DatabaseUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; try again shortly."
    default_code = "database_unavailable"


def api_exception_handler(exc, context):
    """DRF's handler, plus 503 (not 500) when the database cannot be reached."""
    if isinstance(exc, (OperationalError, InterfaceError)) or (
        isinstance(exc, DatabaseError) and "connect" in str(exc).lower()
    ):
        logger.warning("database unavailable: %s", exc)
        exc = DatabaseUnavailable()
        response = exception_handler(exc, context)
        response["Retry-After"] = "5"
        return response
    return exception_handler(exc, context)
