"""File imports over the API: upload (202, processed in the background), status, rejected rows."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from transactions import selectors, services
from transactions.csv_download import csv_download
from transactions.models import ImportJob

from .exceptions import RequestBodyTooLarge
from .permissions import CanIngestTransactions

RECENT_IMPORTS = 50


# Written out because drf-spectacular renders a FileField as a URI unless requests and
# responses get separate components; a multipart upload is a binary part.
UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary"},
        "format": {"type": "string", "enum": [choice for choice, _ in ImportJob.Format.choices]},
    },
    "required": ["file"],
}


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)
    format = serializers.ChoiceField(choices=ImportJob.Format.choices, required=False)

    def validate(self, attrs):
        if "format" not in attrs:
            try:
                attrs["format"] = services.import_format_for(attrs["file"].name)
            except ValueError as exc:
                raise serializers.ValidationError({"format": [str(exc)]}) from None
        return attrs


class ImportJobSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    status_url = serializers.SerializerMethodField()
    rejected_url = serializers.SerializerMethodField()

    class Meta:
        model = ImportJob
        fields = [
            "id", "status", "original_name", "format", "size_bytes", "owner",
            "rows_processed", "created", "duplicates", "conflicts", "rejected", "error",
            "created_at", "started_at", "finished_at", "status_url", "rejected_url",
        ]

    def get_status_url(self, job) -> str:
        return reverse("import-detail", args=[job.pk], request=self.context.get("request"))

    def get_rejected_url(self, job) -> str:
        return reverse("import-rejected", args=[job.pk], request=self.context.get("request"))


class ImportListView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsAuthenticated(), CanIngestTransactions()]
        return [IsAuthenticated()]

    @extend_schema(summary="Recent imports (your own; staff see all)", responses=ImportJobSerializer(many=True))
    def get(self, request):
        jobs = selectors.imports_visible_to(user=request.user)[:RECENT_IMPORTS]
        return Response(ImportJobSerializer(jobs, many=True, context={"request": request}).data)

    @extend_schema(
        summary="Upload a CSV or NDJSON file of transactions; it is imported in the background",
        request={"multipart/form-data": UPLOAD_SCHEMA},
        responses={
            202: ImportJobSerializer,
            400: OpenApiResponse(description="No file, or a format that can't be told."),
            413: OpenApiResponse(description="File over the upload limit."),
        },
    )
    def post(self, request):
        declared_length = request.META.get("CONTENT_LENGTH") or ""
        if declared_length.isdigit() and int(declared_length) > settings.CDP_MAX_UPLOAD_BYTES:
            raise RequestBodyTooLarge(f"The file is larger than the limit of {settings.CDP_MAX_UPLOAD_BYTES} bytes.")
        upload = ImportUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        if upload.validated_data["file"].size > settings.CDP_MAX_UPLOAD_BYTES:  # sent without a length
            raise RequestBodyTooLarge(f"The file is larger than the limit of {settings.CDP_MAX_UPLOAD_BYTES} bytes.")
        job = services.start_import(
            owner=request.user, uploaded_file=upload.validated_data["file"], file_format=upload.validated_data["format"]
        )
        answer = ImportJobSerializer(job, context={"request": request}).data
        return Response(answer, status=status.HTTP_202_ACCEPTED, headers={"Location": answer["status_url"]})


class ImportDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(summary="An import's state and counts", responses=ImportJobSerializer)
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.imports_visible_to(user=request.user), pk=job_id)
        return Response(ImportJobSerializer(job, context={"request": request}).data)


class ImportRejectedRowsView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Every rejected row of an import: line number, raw row and reason, as CSV",
        description=(
            "The raw rows are as sent for the import's owner and for users with the view-PII "
            "permission; anyone else (staff read every import) gets them with mobile numbers masked."
        ),
        responses={
            (200, "text/csv"): OpenApiResponse({"type": "string"}, description="CSV with line_number,raw,reason")
        },
    )
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.imports_visible_to(user=request.user), pk=job_id)
        return csv_download(
            file_name=f"import-{job.pk}-rejected.csv",
            header=["line_number", "raw", "reason"],
            rows=selectors.rejected_rows_of(job=job, user=request.user),
        )
