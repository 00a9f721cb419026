"""One structured (JSON) log line per request, tied together by a request id.

The id comes from the reverse proxy's ``X-Request-ID`` when it sends a sane one, else a new
one is made; it is returned in the response's ``X-Request-ID`` so a client's bug report can
name the exact log line.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

logger = logging.getLogger("cdp.requests")
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get("X-Request-ID", "")
        request.request_id = offered if _SANE_REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex
        started = time.perf_counter()
        response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        user = getattr(request, "user", None)
        logger.info(
            "request",
            extra={
                "request_id": request.request_id,
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "user_id": user.pk if user is not None and user.is_authenticated else None,
            },
        )
        return response


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object, with any ``extra`` fields at the top level."""

    _STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in self._STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
