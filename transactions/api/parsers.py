from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .exceptions import RequestBodyTooLarge
from .json_codec import loads_exact


class ExactDecimalJSONParser(JSONParser):
    """DRF's JSON parser, with exact decimals and a hard cap on the body size.

    DRF reads the raw stream itself, bypassing Django's DATA_UPLOAD_MAX_MEMORY_SIZE, so the
    cap is enforced here: a body over CDP_MAX_JSON_BODY_BYTES is answered with 413.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.CDP_MAX_JSON_BODY_BYTES
        request = (parser_context or {}).get("request")
        declared_length = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared_length and declared_length.isdigit() and int(declared_length) > limit:
            raise RequestBodyTooLarge()
        body = stream.read(limit + 1) if stream is not None else b""
        if len(body) > limit:
            raise RequestBodyTooLarge()
        try:
            return loads_exact(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise ParseError("JSON parse error - the body is not valid UTF-8.") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
