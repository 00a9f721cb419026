"""Reads of customer segments: a segment's members are the range report of its saved query.

Nothing here counts or ranks on its own: every figure is ``selectors.range_report`` run with
the arguments ``range_report_arguments`` makes of the segment's query, the same function the
range report page turns its query into arguments with. So a segment's count, its members and
their order are the range report's for that query, by construction, and a segment read a
second time costs what a range report's page turn does (its answer is kept until new data).
"""

from __future__ import annotations

import datetime as dt
import zlib
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from itertools import islice

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from . import selectors
from .models import Customer, Segment, SegmentExport

def range_report_arguments(
    *,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    time_period: dt.datetime | None = None,
    period: str | None = None,
    state: str | None = None,
    pincode: str | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """The keyword arguments of ``selectors.range_report`` for a range query as sent.

    As the API reads one: the window ends now unless `time_period` says otherwise; a `period`
    is its window as of `now` (re-evaluated at every call, so "last 90 days" moves on).
    """
    now = now or timezone.now()
    if period:
        window = selectors.period_window(period, now=now)
        start, end = window.start, window.end
    else:
        end = time_period or now
    return {
        "min_amount": min_amount,
        "max_amount": max_amount,
        "start": start,
        "end": end,
        "state": state or None,
        "pincode": pincode or None,
    }


def segment_query(segment: Segment) -> dict:
    """The segment's saved query in the range report's words (its form and the API's fields);
    fields left empty are left out."""
    query = {
        "min_amount": segment.min_amount,
        "max_amount": segment.max_amount,
        "period": segment.period or None,
        "start": segment.start,
        "time_period": segment.end,
        "state": segment.state or None,
        "pincode": segment.pincode or None,
    }
    return {name: value for name, value in query.items() if value is not None}


def segment_report(segment: Segment, *, order: str = "-total", now: dt.datetime | None = None) -> selectors.RangeReport:
    """The segment's members, count and histogram: the range report of its query, as of now."""
    return selectors.range_report(**range_report_arguments(**segment_query(segment), now=now), order=order)


def all_segments() -> QuerySet:
    """Every segment (analysts see everyone's), by name, with its owner."""
    return Segment.objects.select_related("owner").order_by("name", "id")


@dataclass(frozen=True, slots=True)
class SegmentCount:
    segment: Segment
    customers: int


def segments_with_counts(*, segments: Iterable[Segment] | None = None, now: dt.datetime | None = None) -> list[SegmentCount]:
    """These segments (default: every one, ``all_segments``) with their live member counts.

    One range report per segment, not one query for all: each is its own aggregate over its
    own window, which no single statement shares. Each is kept until new data, so the list is
    a look-up per segment once its counts have been asked; callers page long lists.
    """
    now = now or timezone.now()
    return [
        SegmentCount(segment=segment, customers=segment_report(segment, now=now).summary.customers)
        for segment in (all_segments() if segments is None else segments)
    ]


def member_ids_of(report: selectors.RangeReport) -> array:
    """The members' customer ids, in the report's order, as 64-bit integers."""
    return array("q", selectors.customer_ids_of(report.rows))


def members_of(report: selectors.RangeReport, *, offset: int = 0) -> Iterator[dict]:
    """Every member from `offset` on as a ``customers_in_total_range`` row, in the report's
    order, a few thousand names a query (for an export of any size)."""
    rows = report.rows
    yield from rows.between(offset, len(rows))


# --- Snapshots: who was a member when the segment was last exported --------------------------


def pack_member_ids(customer_ids: Iterable[int]) -> bytes:
    """Customer ids, compactly: sorted, as the gaps between them, zlib-compressed.

    Members are usually dense runs of ids, so the gaps are small numbers that compress to a
    byte or two each.
    """
    ordered = sorted(customer_ids)
    gaps = array("q", (current - previous for previous, current in zip([0, *ordered], ordered)))
    return zlib.compress(gaps.tobytes(), level=6)


def unpack_member_ids(packed: bytes) -> list[int]:
    """The ids ``pack_member_ids`` packed, ascending."""
    gaps = array("q")
    gaps.frombytes(zlib.decompress(bytes(packed)))
    ids, total = [], 0
    for gap in gaps:
        total += gap
        ids.append(total)
    return ids


def latest_export_of(segment: Segment) -> SegmentExport | None:
    return segment.exports.select_related("exported_by").order_by("-exported_at", "-id").first()


def latest_exports_of(segments: Iterable[Segment]) -> dict[int, SegmentExport]:
    """Each segment's latest export (segment id -> export; none for one never exported), in two
    queries, without the snapshots' member ids."""
    latest = SegmentExport.objects.filter(segment=OuterRef("pk")).order_by("-exported_at", "-id").values("pk")[:1]
    export_ids = (
        Segment.objects.filter(pk__in=[segment.pk for segment in segments])
        .annotate(latest_export=Subquery(latest))
        .exclude(latest_export=None)
        .values_list("latest_export", flat=True)
    )
    exports = SegmentExport.objects.filter(pk__in=list(export_ids)).defer("member_ids").select_related("exported_by")
    return {export.segment_id: export for export in exports}


@dataclass(frozen=True, slots=True)
class MembershipChanges:
    """Who entered the segment and who left it since its last export (None: never exported)."""

    since: SegmentExport | None
    entered: list[int]
    left: list[int]


def membership_changes(segment: Segment, report: selectors.RangeReport) -> MembershipChanges:
    """The members of `report` (the segment now) against the snapshot of its last export.

    `entered` keeps the report's order (biggest total first); `left` is by customer id. Never
    exported: nobody has entered or left, there is nothing to compare with.
    """
    since = latest_export_of(segment)
    if since is None:
        return MembershipChanges(since=None, entered=[], left=[])
    then = set(unpack_member_ids(since.member_ids))
    now = selectors.customer_ids_of(report.rows)
    current = set(now)
    return MembershipChanges(
        since=since,
        entered=[customer_id for customer_id in now if customer_id not in then],
        left=sorted(then - current),
    )


def customers_named(customer_ids: Iterable[int], *, limit: int) -> list[dict]:
    """The first `limit` of these customers as ``{"customer_id", "name"}``, in the order given
    (one query)."""
    wanted = list(islice(customer_ids, limit))
    names = dict(Customer.objects.filter(pk__in=wanted).values_list("pk", "name"))
    return [{"customer_id": customer_id, "name": names.get(customer_id, "")} for customer_id in wanted]
