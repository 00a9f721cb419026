"""Request and response shapes of the JSON API.

Field rules come from ``transactions.validation``; these classes adapt them to DRF (for the
query bodies and the OpenAPI schema) and never restate them.
"""

from __future__ import annotations

import math
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from transactions import selectors, validation
from transactions.privacy import mob_no_for

MAX_AMOUNT_BOUND = Decimal("999999999999999999.99")  # the largest total a customer can hold
# What ``validation.clean_decimal`` accepts as a numeric string (the range is checked after).
NUMERIC_STRING_PATTERN = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"


class _RuleField(serializers.Field):
    """A serializer field whose parsing is one of the cleaners of ``validation``."""

    def clean(self, value):
        raise NotImplementedError

    def to_internal_value(self, data):
        try:
            return self.clean(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None

    def to_representation(self, value):
        return value


# The schemas below spell out the alternatives shared/API.md accepts (a customer id as a string
# of digits, an amount as a numeric string, a pincode as an integer), so that a client or a
# fuzzer reading the schema knows them. Rules JSON Schema can't say (at most 2 decimal places
# of a binary float, 7-15 digits once separators are stripped, years 1000-9999) stay in
# ``validation`` and answer 400.
@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "format": "int64", "minimum": 1, "maximum": validation.MAX_CUSTOMER_ID},
            {"type": "string", "pattern": r"^\s*[0-9]{1,19}\s*$"},
        ]
    }
)
class CustomerIdField(_RuleField):
    def clean(self, value):
        return validation.clean_customer_id(value)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": validation.NAME_MAX_LENGTH})
class NameField(_RuleField):
    def clean(self, value):
        return validation.clean_name(value)


@extend_schema_field(
    {
        "oneOf": [
            # OpenAPI 3.0 (JSON Schema draft 4): exclusiveMinimum is a flag on minimum.
            {
                "type": "number",
                "minimum": 0,
                "exclusiveMinimum": True,
                "maximum": float(validation.MAX_TRANSACTION_AMOUNT),
                "multipleOf": 0.01,
            },
            {"type": "string", "pattern": NUMERIC_STRING_PATTERN},
        ]
    }
)
class TransactionAmountField(_RuleField):
    def clean(self, value):
        return validation.clean_transaction_amount(value)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^\s*[ -]*\+?([ -]*[0-9]){7,15}[ -]*\s*$", "example": "+91 98765-43210"},
            {"type": "integer", "minimum": 10**6, "maximum": 10**15 - 1},
        ]
    }
)
class MobileNumberField(_RuleField):
    def clean(self, value):
        return validation.clean_mob_no(value)


@extend_schema_field({"type": "string", "format": "date-time"})
class UtcDateTimeField(_RuleField):
    def clean(self, value):
        return validation.clean_datetime(value)

    def to_representation(self, value):
        return value.isoformat().replace("+00:00", "Z")


@extend_schema_field(
    {"oneOf": [{"type": "string", "pattern": r"^\s*[1-9][0-9]{5}\s*$"}, {"type": "integer", "minimum": 100000, "maximum": 999999}]}
)
class PincodeField(_RuleField):
    def clean(self, value):
        return validation.clean_pincode(value)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": validation.STATE_MAX_LENGTH})
class StateField(_RuleField):
    def clean(self, value):
        return validation.clean_state(value)


@extend_schema_field(
    {
        "oneOf": [
            # The largest float not above the bound: float(MAX_AMOUNT_BOUND) rounds up to 1e18.
            {"type": "number", "minimum": 0, "maximum": math.nextafter(float(MAX_AMOUNT_BOUND), 0)},
            {"type": "string", "pattern": NUMERIC_STRING_PATTERN},
        ]
    }
)
class AmountBoundField(_RuleField):
    def clean(self, value):
        amount = validation.clean_decimal(value, what="an amount")
        if not 0 <= amount <= MAX_AMOUNT_BOUND:
            raise DjangoValidationError(f"Enter an amount from 0 to {MAX_AMOUNT_BOUND}.")
        if amount.quantize(validation.CENT) != amount:
            raise DjangoValidationError("Enter an amount with at most 2 decimal places.")
        return amount


class TransactionRecordSerializer(serializers.Serializer):
    """One transaction record; unknown fields are ignored."""

    customer_id = CustomerIdField()
    name = NameField()
    transaction_amount = TransactionAmountField()
    mob_no = MobileNumberField()
    transaction_datetime = UtcDateTimeField()
    pincode = PincodeField()
    state = StateField()

    def to_internal_value(self, data):
        try:
            return validation.parse_transaction_record(data)
        except validation.RecordInvalid as exc:
            raise serializers.ValidationError(exc.errors) from None


class StoredTransactionSerializer(serializers.Serializer):
    """A stored transaction; the mobile number is masked unless the user may see PII."""

    id = serializers.IntegerField()
    customer_id = serializers.IntegerField()
    name = serializers.CharField()
    transaction_amount = serializers.DecimalField(max_digits=14, decimal_places=2, coerce_to_string=False)
    mob_no = serializers.SerializerMethodField()
    transaction_datetime = UtcDateTimeField()
    pincode = serializers.CharField()
    state = serializers.CharField()

    def get_mob_no(self, row) -> str:
        return mob_no_for(self.context["request"].user, row.mob_no)


class _WindowSerializer(serializers.Serializer):
    start = UtcDateTimeField(required=False, help_text="Only transactions at or after this time count.")
    time_period = UtcDateTimeField(required=False, help_text="End of the window, inclusive.")

    def validate(self, attrs):
        start, end = attrs.get("start"), attrs.get("time_period")
        if start is not None and end is not None and start > end:
            raise serializers.ValidationError({"start": ["start must not be after time_period."]})
        return attrs


class TransactionRangeQuerySerializer(_WindowSerializer):
    min_amount = AmountBoundField()
    max_amount = AmountBoundField()
    limit = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    # Capped at the largest SQL BIGINT: a larger OFFSET is an error in the database, which
    # would only surface once the answer is being streamed.
    offset = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, default=0)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["min_amount"] > attrs["max_amount"]:
            raise serializers.ValidationError({"max_amount": ["max_amount must not be less than min_amount."]})
        return attrs


class RangeReportQuerySerializer(TransactionRangeQuerySerializer):
    """A range query with the dashboard's filters, as saved in a segment.

    `state` and `pincode` narrow the transactions that count to that state (case-insensitive)
    and pincode; `period` is a window relative to today (``selectors.PERIODS``), instead of
    `start`/`time_period`.
    """

    state = StateField(required=False, help_text="Only transactions in this state count (case-insensitive).")
    pincode = PincodeField(required=False, help_text="Only transactions in this pincode count.")
    period = serializers.ChoiceField(
        choices=list(selectors.PERIODS.items()),
        required=False,
        help_text="A window relative to today, evaluated each time: instead of start and time_period.",
    )

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "period" in attrs and ("start" in attrs or "time_period" in attrs):
            raise serializers.ValidationError({"period": ["Give a period or start/time_period, not both."]})
        return attrs


class SegmentCreateSerializer(RangeReportQuerySerializer):
    """A segment: a name and a range query with the dashboard's filters (no paging)."""

    name = NameField(help_text="Trimmed, inner whitespace collapsed; 1 to 100 characters.")
    limit = None
    offset = None


class TopCustomersQuerySerializer(_WindowSerializer):
    state = StateField()
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=5)


class CustomerTotalSerializer(serializers.Serializer):
    customer_id = serializers.IntegerField()
    name = serializers.CharField()
    total_transaction_amount = serializers.DecimalField(max_digits=30, decimal_places=2, coerce_to_string=False)


INGEST_STATUS_CHOICES = ["created", "duplicate", "conflict"]


class IngestSingleResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=INGEST_STATUS_CHOICES)
    message = serializers.CharField()
    id = serializers.IntegerField(required=False)
    existing = StoredTransactionSerializer(required=False)


class IngestBatchItemSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=INGEST_STATUS_CHOICES)


class IngestBatchResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    conflicts = serializers.IntegerField()
    results = IngestBatchItemSerializer(many=True)


