from rest_framework.renderers import JSONRenderer

from .json_codec import dumps_exact


class ExactDecimalJSONRenderer(JSONRenderer):
    """DRF's JSON renderer, except that Decimals become exact JSON numbers, not floats."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return dumps_exact(data).encode("utf-8")
