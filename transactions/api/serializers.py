"""Request and response shapes of the JSON API.

Field rules come from ``transactions.validation``; these classes adapt them to DRF (for the
query bodies and the OpenAPI schema) and never restate them.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from transactions import validation
from transactions.privacy import mob_no_for

MAX_AMOUNT_BOUND = Decimal("999999999999999999.99")  # the largest total a customer can hold


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


@extend_schema_field({"type": "integer", "format": "int64", "minimum": 1, "maximum": validation.MAX_CUSTOMER_ID})
class CustomerIdField(_RuleField):
    def clean(self, value):
        return validation.clean_customer_id(value)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": validation.NAME_MAX_LENGTH})
class NameField(_RuleField):
    def clean(self, value):
        return validation.clean_name(value)


@extend_schema_field(
    {"type": "number", "exclusiveMinimum": 0, "maximum": float(validation.MAX_TRANSACTION_AMOUNT), "multipleOf": 0.01}
)
class TransactionAmountField(_RuleField):
    def clean(self, value):
        return validation.clean_transaction_amount(value)


@extend_schema_field({"type": "string", "example": "+91 98765-43210"})
class MobileNumberField(_RuleField):
    def clean(self, value):
        return validation.clean_mob_no(value)


@extend_schema_field({"type": "string", "format": "date-time"})
class UtcDateTimeField(_RuleField):
    def clean(self, value):
        return validation.clean_datetime(value)

    def to_representation(self, value):
        return value.isoformat().replace("+00:00", "Z")


@extend_schema_field({"type": "string", "pattern": "^[1-9][0-9]{5}$"})
class PincodeField(_RuleField):
    def clean(self, value):
        return validation.clean_pincode(value)


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": validation.STATE_MAX_LENGTH})
class StateField(_RuleField):
    def clean(self, value):
        return validation.clean_state(value)


@extend_schema_field({"type": "number", "minimum": 0, "maximum": float(MAX_AMOUNT_BOUND)})
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
    offset = serializers.IntegerField(required=False, min_value=0, default=0)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if attrs["min_amount"] > attrs["max_amount"]:
            raise serializers.ValidationError({"max_amount": ["max_amount must not be less than min_amount."]})
        return attrs


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


