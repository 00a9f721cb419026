"""Customer segments: saving a range-report query under a name, and recording an export.

A segment stores its query only; its members are read when asked (``segment_selectors``).
An export records who the members were then, so that the segment's page can say who has
entered and who has left since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from decimal import Decimal

from transactions.models import Segment, SegmentExport
from transactions.segment_selectors import pack_member_ids


def create_segment(
    *,
    owner,
    name: str,
    min_amount: Decimal,
    max_amount: Decimal,
    start: dt.datetime | None = None,
    time_period: dt.datetime | None = None,
    period: str | None = None,
    state: str | None = None,
    pincode: str | None = None,
) -> Segment:
    """Save a range query, validated already (``RangeReportQuerySerializer``), as a segment.

    The arguments are the query's fields as the range report and the API name them;
    `time_period` is stored as the segment's ``end``. The database refuses bounds out of order
    and a period given with dates (the model's check constraints).
    """
    return Segment.objects.create(
        owner=owner,
        name=name,
        min_amount=min_amount,
        max_amount=max_amount,
        start=start,
        end=time_period,
        period=period or "",
        state=state or "",
        pincode=pincode or "",
    )


def record_segment_export(*, segment: Segment, exported_by, member_ids: Collection[int]) -> SegmentExport:
    """Keep the members a segment was exported with: the next "entered" and "left" start here."""
    return SegmentExport.objects.create(
        segment=segment,
        exported_by=exported_by,
        member_count=len(member_ids),
        member_ids=pack_member_ids(member_ids),
    )
