"""Customer segments in the dashboard: "Save as segment" on the range report, the Segments
page, a page per segment (members, who entered and left since the last export) and its CSV
export. Reads are ``segment_selectors``, writes ``services``; the permission is the reports'.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode

from transactions import segment_selectors, selectors, services
from transactions.csv_download import csv_download
from transactions.models import Segment

from .forms import SEGMENT_QUERY_FIELDS, SegmentForm
from .views import (
    RANGE_COLUMNS, DashboardView, _customer_path_prefix, _export_name, _page_of, _query_without, sortable_columns,
)

CHANGES_SHOWN = 20


def range_report_link(segment: Segment) -> str:
    """The range report page for the segment's query: the same members, on the report."""
    values = {}
    for name, value in segment_selectors.segment_query(segment).items():
        if isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        elif hasattr(value, "isoformat"):
            value = value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f").removesuffix(".000000")
        values[name] = value
    return f"{reverse('web:range-report')}?{urlencode(values)}"


def describe_query(segment: Segment) -> dict:
    """What the segment's page and list say about its query (the template words it)."""
    return {
        "min_amount": segment.min_amount,
        "max_amount": segment.max_amount,
        "period": selectors.PERIODS.get(segment.period) if segment.period else None,
        "start": segment.start,
        "end": segment.end,
        "state": segment.state,
        "pincode": segment.pincode,
    }


class SegmentCreateView(DashboardView):
    """The range report's "Save as segment" form: a name and the report's query (POST only)."""

    template_name = "web/segments/new.html"
    http_method_names = ["post"]

    def post(self, request):
        form = SegmentForm(request.POST, states=selectors.states_with_counts())
        if not form.is_valid():
            return self.render_page(
                request, {"form": form, "report_query": urlencode({name: request.POST.get(name, "") for name in SEGMENT_QUERY_FIELDS})},
                status=400,
            )
        segment = services.create_segment(owner=request.user, **form.cleaned_data)
        return redirect("web:segment", segment_id=segment.pk)


# The segments list's sortable columns, as RANGE_COLUMNS: (label, ascending, descending, numeric).
SEGMENT_LIST_COLUMNS = [
    ("Segment", "name", "-name", False),
    ("Members", "members", "-members", True),
    ("Saved", "created", "-created", True),
]
SEGMENT_LIST_ORDERS = {
    "name": lambda row: (row.segment.name.casefold(), row.segment.pk),
    "members": lambda row: (row.customers, row.segment.pk),
    "created": lambda row: (row.segment.created_at, row.segment.pk),
}


class SegmentListView(DashboardView):
    template_name = "web/segments/list.html"
    partial_template_name = "web/segments/_segment_list.html"

    def get(self, request):
        order = request.GET.get("sort", "name")
        if order.lstrip("-") not in SEGMENT_LIST_ORDERS:
            order = "name"
        rows = sorted(
            segment_selectors.segments_with_counts(),
            key=SEGMENT_LIST_ORDERS[order.lstrip("-")],
            reverse=order.startswith("-"),
        )
        return self.render_page(
            request,
            {
                "segments": [
                    {"segment": row.segment, "customers": row.customers, "query": describe_query(row.segment)}
                    for row in rows
                ],
                "columns": sortable_columns(columns=SEGMENT_LIST_COLUMNS, current=order, query_string=""),
            },
        )


class SegmentView(DashboardView):
    """One segment: its query, its members now (paged, sortable) and, on the whole page, who
    entered and who left since it was last exported."""

    template_name = "web/segments/segment.html"
    partial_template_name = "web/segments/_segment_members.html"

    def get(self, request, segment_id: int):
        segment = get_object_or_404(segment_selectors.all_segments(), pk=segment_id)
        order = request.GET.get("sort", "")
        if order not in selectors.RANGE_REPORT_ORDERS:
            order = selectors.RANGE_REPORT_ORDERS[0]
        report = segment_selectors.segment_report(segment, order=order)
        context = {
            "segment": segment,
            "summary": report.summary,
            "page": _page_of(request, report.rows),
            "query_string": _query_without(request, "page"),
            "columns": sortable_columns(
                columns=RANGE_COLUMNS, current=order, query_string=_query_without(request, "page", "sort")
            ),
            "customer_path": _customer_path_prefix(),
        }
        if not (request.htmx and not request.htmx.history_restore_request):
            changes = segment_selectors.membership_changes(segment, report)
            context.update(
                query=describe_query(segment),
                report_link=range_report_link(segment),
                changes=changes,
                entered=segment_selectors.customers_named(changes.entered, limit=CHANGES_SHOWN),
                left=segment_selectors.customers_named(changes.left, limit=CHANGES_SHOWN),
            )
        return self.render_page(request, context)


class SegmentExportView(DashboardView):
    """The segment's members now as CSV; the members are kept as the baseline of "entered" and
    "left". A POST (with the CSRF token), since it records something: a link followed by a
    crawler or another site must not move the baseline."""

    http_method_names = ["post"]

    def post(self, request, segment_id: int) -> HttpResponse:
        segment = get_object_or_404(segment_selectors.all_segments(), pk=segment_id)
        report = segment_selectors.segment_report(segment)
        # The file and the snapshot are the same answer: the rows are read from this report.
        services.record_segment_export(
            segment=segment, exported_by=request.user, member_ids=segment_selectors.member_ids_of(report)
        )
        rows = (
            (row["customer_id"], row["name"], row["total_transaction_amount"])
            for row in segment_selectors.members_of(report)
        )
        return csv_download(
            file_name=_export_name("segment", segment.pk, segment.name, timezone.now().date().isoformat()),
            header=["customer_id", "name", "total_transaction_amount"],
            rows=rows,
        )
