"""CSV files streamed to the browser row by row, so an export of any size keeps memory flat."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

from transactions.api.json_codec import CustomerTotalRow, customer_totals_csv


class _Echo:
    """A file-like object whose write() hands back the line, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def csv_download(*, file_name: str, header: list[str], rows: Iterable[Iterable]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo(), lineterminator="\n")

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow(row)

    return _download(file_name, lines())


def customer_totals_csv_download(*, file_name: str, batches: Iterable[Sequence[CustomerTotalRow]]) -> StreamingHttpResponse:
    """A range answer's (customer_id, name, total) batches as a CSV file, written by the same
    module as the API's JSON of them (``json_codec.customer_totals_csv``)."""
    return _download(file_name, customer_totals_csv(batches))


def _download(file_name: str, chunks: Iterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    return response
