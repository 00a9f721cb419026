"""Customer segments over the API: save a range query under a name, list, read, and page
through a segment's members (the range report of its query, as of now)."""

from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from transactions import segment_selectors, selectors, services

from .permissions import CanViewTransactions
from .serializers import CustomerTotalSerializer, SegmentCreateSerializer, UtcDateTimeField
from .views import _json_array_chunks


class SegmentExportSerializer(serializers.Serializer):
    exported_at = UtcDateTimeField()
    member_count = serializers.IntegerField()


class SegmentSerializer(serializers.Serializer):
    """A stored segment, its live member count and its last export (null: never exported)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(allow_null=True, help_text="Who saved it (null once their account is gone).")
    min_amount = serializers.DecimalField(max_digits=30, decimal_places=2, coerce_to_string=False)
    max_amount = serializers.DecimalField(max_digits=30, decimal_places=2, coerce_to_string=False)
    start = UtcDateTimeField(allow_null=True)
    time_period = UtcDateTimeField(allow_null=True)
    period = serializers.ChoiceField(choices=list(selectors.PERIODS.items()), allow_null=True)
    state = serializers.CharField(allow_null=True)
    pincode = serializers.CharField(allow_null=True)
    created_at = UtcDateTimeField()
    customer_count = serializers.IntegerField(help_text="Members now: the range report of the query, as of now.")
    last_export = SegmentExportSerializer(allow_null=True)
    url = serializers.CharField()
    customers_url = serializers.CharField()


def _segment_json(request, segment, *, customer_count: int, last_export) -> dict:
    return SegmentSerializer(
        {
            "id": segment.pk,
            "name": segment.name,
            "owner": segment.owner.get_username() if segment.owner else None,
            "min_amount": segment.min_amount,
            "max_amount": segment.max_amount,
            "start": segment.start,
            "time_period": segment.end,
            "period": segment.period or None,
            "state": segment.state or None,
            "pincode": segment.pincode or None,
            "created_at": segment.created_at,
            "customer_count": customer_count,
            "last_export": last_export,
            "url": reverse("segment-detail", args=[segment.pk], request=request),
            "customers_url": reverse("segment-customers", args=[segment.pk], request=request),
        }
    ).data


SEGMENT_EXAMPLE = {"name": "Big spenders, last 90 days", "min_amount": 50000, "max_amount": 200000, "period": "last-90-days"}


class SegmentListQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, default=0)


TOTAL_COUNT_HEADER = OpenApiParameter(
    "X-Total-Count", int, OpenApiParameter.HEADER, response=[200], description="The number of rows before limit and offset."
)


class SegmentListView(APIView):
    permission_classes = [IsAuthenticated, CanViewTransactions]

    @extend_schema(
        summary="Every segment (everyone's), by name, with its live member count; 50 a page",
        parameters=[SegmentListQuerySerializer, TOTAL_COUNT_HEADER],
        responses={200: SegmentSerializer(many=True), 400: OpenApiResponse(description="Invalid limit or offset.")},
    )
    def get(self, request):
        # A plain dict: see SegmentCustomersView.
        query = SegmentListQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        offset, limit = query.validated_data["offset"], query.validated_data["limit"]
        segments = segment_selectors.all_segments()
        # Each live count is a range report: a page of them at a time.
        page = list(segments[offset : offset + limit])
        exports = segment_selectors.latest_exports_of(page)
        response = Response([
            _segment_json(request, row.segment, customer_count=row.customers, last_export=exports.get(row.segment.pk))
            for row in segment_selectors.segments_with_counts(segments=page)
        ])
        response["X-Total-Count"] = str(segments.count())
        return response

    @extend_schema(
        summary="Save a range query as a segment",
        request=SegmentCreateSerializer,
        responses={201: SegmentSerializer, 400: OpenApiResponse(description="Invalid name or query.")},
        examples=[OpenApiExample("Relative window", value=SEGMENT_EXAMPLE, request_only=True)],
    )
    def post(self, request):
        query = SegmentCreateSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        segment = services.create_segment(owner=request.user, **query.validated_data)
        count = segment_selectors.segment_report(segment).summary.customers
        answer = _segment_json(request, segment, customer_count=count, last_export=None)
        return Response(answer, status=status.HTTP_201_CREATED, headers={"Location": answer["url"]})


class SegmentDetailView(APIView):
    permission_classes = [IsAuthenticated, CanViewTransactions]

    @extend_schema(summary="A segment, its live member count and its last export", responses=SegmentSerializer)
    def get(self, request, segment_id: int):
        segment = get_object_or_404(segment_selectors.all_segments(), pk=segment_id)
        count = segment_selectors.segment_report(segment).summary.customers
        return Response(
            _segment_json(request, segment, customer_count=count, last_export=segment_selectors.latest_export_of(segment))
        )


class SegmentCustomersQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=10_000)
    offset = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1, default=0)
    sort = serializers.ChoiceField(
        choices=list(selectors.RANGE_REPORT_ORDERS), required=False, default=selectors.RANGE_REPORT_ORDERS[0],
        help_text="total, name or customer_id; a leading '-' is descending. Ties: customer_id ascending.",
    )


class SegmentCustomersView(APIView):
    permission_classes = [IsAuthenticated, CanViewTransactions]

    @extend_schema(
        summary="A segment's members now, as the range report of its query answers them",
        parameters=[SegmentCustomersQuerySerializer, TOTAL_COUNT_HEADER],
        responses={200: CustomerTotalSerializer(many=True), 400: OpenApiResponse(description="Invalid limit, offset or sort.")},
    )
    def get(self, request, segment_id: int):
        segment = get_object_or_404(segment_selectors.all_segments(), pk=segment_id)
        # A plain dict, not the QueryDict: DRF reads a blank HTML-form value as "not sent", and
        # "?limit=" or "?sort=" is a mistake to answer with 400, as the schema says.
        query = SegmentCustomersQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        params = query.validated_data
        report = segment_selectors.segment_report(segment, order=params["sort"])
        offset, limit = params["offset"], params.get("limit")
        if limit is None:
            # Streamed a few thousand names at a time, so memory stays flat.
            response = StreamingHttpResponse(
                _json_array_chunks(segment_selectors.members_of(report, offset=offset)), content_type="application/json"
            )
        else:
            response = HttpResponse(
                b"".join(_json_array_chunks(report.rows[offset : offset + limit])), content_type="application/json"
            )
        response["X-Total-Count"] = str(report.summary.customers)
        return response
