"""The JSON endpoints of shared/API.md. Each view parses, calls one service or selector, renders."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from transactions import selectors, services
from transactions.validation import RecordInvalid, parse_transaction_record

from . import authentication
from .exceptions import DatabaseUnavailable
from .middleware import RETRY_AFTER_SECONDS
from .json_codec import batch_answer_json, customer_totals_json, dumps_exact, pincode_rankings_json
from .permissions import CanIngestTransactions, CanViewTransactions
from .serializers import (
    CustomerTotalSerializer,
    IngestBatchResultSerializer,
    IngestSingleResultSerializer,
    StoredTransactionSerializer,
    TopCustomersQuerySerializer,
    TransactionRangeQuerySerializer,
    TransactionRecordSerializer,
)

INGEST_MESSAGES = {
    "created": "Transaction data ingested successfully",
    "duplicate": "Duplicate transaction found, not inserted.",
    "conflict": "A different transaction is already stored for this customer at this time; not inserted.",
}
INGEST_STATUS_CODES = {"created": 201, "duplicate": 200, "conflict": 409}

SAMPLE_RECORD = {
    "customer_id": 101,
    "name": "amit",
    "transaction_amount": 1500.75,
    "mob_no": "9876543210",
    "transaction_datetime": "2024-09-24T15:30:00",
    "pincode": "110001",
    "state": "gujrat",
}


class IngestTransactionsView(APIView):
    permission_classes = [IsAuthenticated, CanIngestTransactions]
    # A single record's write confirms the request's kept credentials in its own commit
    # (api.authentication): one round trip fewer. Every other answer confirms them first.
    confirms_credentials_when_writing = True

    @extend_schema(
        summary="Ingest one transaction or a batch of up to 10,000",
        request=PolymorphicProxySerializer(
            component_name="TransactionRecordOrBatch",
            serializers=[TransactionRecordSerializer, TransactionRecordSerializer(many=True)],
            resource_type_field_name=None,
            many=False,
        ),
        responses={
            201: IngestSingleResultSerializer,
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="IngestBatchOrDuplicateResult",
                    serializers=[IngestBatchResultSerializer, IngestSingleResultSerializer],
                    resource_type_field_name=None,
                ),
                description="A batch (counts and one result per record), or a single duplicate.",
            ),
            400: OpenApiResponse(description="Invalid record(s); for a batch, errors keyed by index."),
            409: IngestSingleResultSerializer,
            413: OpenApiResponse(description="Body over 10 MB."),
        },
        examples=[OpenApiExample("One record", value=SAMPLE_RECORD, request_only=True)],
    )
    def post(self, request):
        try:
            return self._post(request)
        except services.CommitConditionFailed:
            # The credentials changed since this process kept them, and nothing was stored:
            # authenticate again (401 or 403 if the request may no longer) and run once more.
            authentication.confirm_or_authenticate_again(request, self, changed=True)
            return self._post(request)

    def _post(self, request):
        try:
            body = request.data
        except Exception:
            authentication.confirm_or_authenticate_again(request, self)  # a 401/403 before a 400
            raise
        if not isinstance(body, dict):
            authentication.confirm_or_authenticate_again(request, self)
        if isinstance(body, list):
            return self._ingest_batch(body)
        if not isinstance(body, dict):
            return Response(
                {"non_field_errors": ["Expected a transaction record (a JSON object) or an array of them."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            record = parse_transaction_record(body)
        except RecordInvalid as exc:
            authentication.confirm_or_authenticate_again(request, self)
            return Response(exc.errors, status=status.HTTP_400_BAD_REQUEST)
        [outcome] = services.ingest_transactions(records=[record], commit_condition=authentication.commit_condition(request))
        answer = {"status": outcome.status, "message": INGEST_MESSAGES[outcome.status]}
        if outcome.status == "created":
            answer["id"] = outcome.transaction.pk
        elif outcome.status == "conflict":
            answer["existing"] = StoredTransactionSerializer(outcome.transaction, context={"request": request}).data
        # Written as the renderer writes it, without DRF's template-response round (a twentieth
        # of a single ingest's Python, profiled).
        return HttpResponse(dumps_exact(answer), status=INGEST_STATUS_CODES[outcome.status], content_type="application/json")

    def _ingest_batch(self, body: list) -> Response:
        if not 1 <= len(body) <= settings.CDP_MAX_BATCH_RECORDS:
            return Response(
                {"non_field_errors": [f"A batch holds 1 to {settings.CDP_MAX_BATCH_RECORDS} records, not {len(body)}."]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        errors, outcomes = services.ingest_batch(body)
        if errors:
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        # Written directly, as the single ingest's answer is: what the renderer would write.
        return HttpResponse(batch_answer_json(outcomes), content_type="application/json")


def _json_array_chunks(rows: Iterable[dict]) -> Iterator[bytes]:
    """``customers_in_total_range`` rows (dicts) as a JSON array, a few thousand rows a chunk."""
    rows = iter(rows)
    batches = iter(
        lambda: [
            (row["customer_id"], row["name"], row["total_transaction_amount"]) for row in islice(rows, 2000)
        ],
        [],
    )
    return customer_totals_json(batches)


class TransactionRangeView(APIView):
    permission_classes = [IsAuthenticated, CanViewTransactions]

    @extend_schema(
        summary="Customers whose total spend in a window lies in [min_amount, max_amount]",
        request=TransactionRangeQuerySerializer,
        responses={200: CustomerTotalSerializer(many=True), 400: OpenApiResponse(description="Invalid query.")},
        examples=[
            OpenApiExample(
                "Spend range",
                value={"min_amount": 50000, "max_amount": 200000, "time_period": "2038-01-01T00:00:00"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        query = TransactionRangeQuerySerializer(data=request.data)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        # The totals are summed once (and kept until new data, as the dashboard's report keeps
        # them): the count and every row come from that one answer.
        rows = selectors.range_rows(
            min_amount=params["min_amount"],
            max_amount=params["max_amount"],
            start=params.get("start"),
            end=params.get("time_period") or timezone.now(),
            whole=params.get("limit") is None,
        )
        limit = params.get("limit")
        total, batches = rows.counted(params["offset"], limit, as_json=True)
        chunks = customer_totals_json(batches)
        if limit is None:
            # Unbounded answers are streamed, so memory stays flat.
            response = StreamingHttpResponse(chunks, content_type="application/json")
        else:
            response = HttpResponse(b"".join(chunks), content_type="application/json")
        response["X-Total-Count"] = str(total)
        return response


class TopCustomersView(APIView):
    permission_classes = [IsAuthenticated, CanViewTransactions]

    @extend_schema(
        summary="The top customers of every pincode of a state",
        request=TopCustomersQuerySerializer,
        responses={
            200: OpenApiResponse(
                {"type": "object", "additionalProperties": {"type": "array", "items": {"$ref": "#/components/schemas/CustomerTotal"}}},
                description='Keys are "pincode_<pincode>" in ascending order.',
            ),
            400: OpenApiResponse(description="Invalid query."),
        },
        examples=[OpenApiExample("A state", value={"state": "Punjab"}, request_only=True)],
    )
    def post(self, request):
        query = TopCustomersQuerySerializer(data=request.data)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        by_pincode = selectors.top_customers_by_pincode(
            state=params["state"], limit=params["limit"], start=params.get("start"), end=params.get("time_period")
        )
        # Written directly (thousands of entries with limit 100): what the renderer would write.
        return HttpResponse(pincode_rankings_json(by_pincode), content_type="application/json")


HEALTH_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "database": {"type": "string", "enum": ["ok", "unreachable"]},
        "detail": {"type": "string"},
    },
    "required": ["status", "database"],
}


class HealthView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    @extend_schema(
        summary="Liveness of the service and its database",
        request=None,
        responses={
            200: OpenApiResponse(HEALTH_SCHEMA, description='{"status": "ok", "database": "ok"}'),
            503: OpenApiResponse(HEALTH_SCHEMA, description="Database unreachable."),
        },
    )
    def get(self, request):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:  # any failure to reach the database means "not healthy"
            return Response(
                {"status": "unavailable", "database": "unreachable", "detail": DatabaseUnavailable.default_detail},
                status=503,
                headers={"Retry-After": RETRY_AFTER_SECONDS},
            )
        return Response({"status": "ok", "database": "ok"})



@csrf_exempt  # any method gets the 404, not a CSRF failure first
def api_not_found(request, *args, **kwargs):
    return JsonResponse({"detail": "Not found."}, status=404)
