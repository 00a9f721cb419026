from django.conf import settings
from rest_framework import throttling


class _RatesFromSettingsMixin:
    """Read the rate at request time, so a changed setting takes effect without a restart.

    DRF's own classes copy the rates once at import time.
    """

    def get_rate(self):
        return settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(self.scope)


class AnonRateThrottle(_RatesFromSettingsMixin, throttling.AnonRateThrottle):
    pass


class UserRateThrottle(_RatesFromSettingsMixin, throttling.UserRateThrottle):
    pass
