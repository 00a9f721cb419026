"""The analyst dashboard: HTML pages over the same services and selectors as the JSON API.

Each view parses its query with a form from ``forms`` (the API's rules), calls selectors or a
service, and renders one page template, or only that page's partial when HTMX asks
(``request.htmx``), so every URL also works as a plain page without JavaScript.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import NamedTuple

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.views import View

from transactions import segment_selectors, selectors, services
from transactions.api.serializers import MAX_AMOUNT_BOUND
from transactions.csv_download import csv_download, customer_totals_csv_download
from transactions.privacy import mob_no_for
from transactions.validation import CENT

from .authentication import KeptSessionUserMixin
from .forms import SEGMENT_QUERY_FIELDS, ImportUploadForm, SegmentForm, TopCustomersForm, TransactionRangeForm

PAGE_SIZE = 50
LATEST_IMPORTS = 10
VIEW_PERMISSION = "transactions.view_transaction"
ADD_PERMISSION = "transactions.add_transaction"


class DashboardView(KeptSessionUserMixin, LoginRequiredMixin, PermissionRequiredMixin, View):
    """Login first (anonymous users go to the login page), then the permission (else 403); the
    session's user and permissions are kept per process (``authentication``)."""

    permission_required = VIEW_PERMISSION
    template_name: str
    partial_template_name: str | None = None

    def dispatch(self, request, *args, **kwargs):
        if request.method in ("GET", "HEAD"):  # a page that writes nothing: one data version
            with selectors.data_version_read_once():
                return super().dispatch(request, *args, **kwargs)
        return super().dispatch(request, *args, **kwargs)

    def render_page(self, request, context: dict, *, status: int = 200) -> HttpResponse:
        """The partial for an HTMX request (not a history restore), the whole page otherwise."""
        wants_partial = self.partial_template_name and request.htmx and not request.htmx.history_restore_request
        template = self.partial_template_name if wants_partial else self.template_name
        return render(request, template, context, status=status)


def _kept_fragments(request, name: str, query, render) -> dict[str, SafeString]:
    """The HTML ``render()`` writes for a report page's results, kept until new data, as the
    reports' figures are (``selectors.kept_until_new_data``): the same query string and query
    (a relative period's dates worked out) over the same data write the same results, whoever
    asks (they carry no user's data, no CSRF token: they are written without the request, so
    its context processors' ``user`` and ``csrf_token`` are not there to put in). A warm report
    page was twice the API's time for the same query, mostly writing these; now it writes its
    form around them.
    """
    key = hashlib.sha1(repr((request.GET.urlencode(), query)).encode()).hexdigest()
    return {part: mark_safe(html) for part, html in selectors.kept_until_new_data(f"page:{name}:{key}", render).items()}


def _page_of(request, rows):
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


class MonthBar(NamedTuple):
    """A month of the overview's chart, with the query of its drill-down."""

    month: dt.date
    transactions: int
    total_amount: Decimal
    report_query: str


def month_report_query(month: dt.date) -> str:
    """The range report of one calendar month (UTC): every customer who spent in it, whatever
    their total (a month bar's drill-down)."""
    following = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return urlencode({
        "min_amount": "0",
        "max_amount": str(MAX_AMOUNT_BOUND),
        "start": month.isoformat(),
        "time_period": (following - dt.timedelta(days=1)).isoformat(),
    })


class OverviewView(DashboardView):
    template_name = "web/overview.html"

    def get(self, request):
        return self.render_page(
            request,
            {
                "totals": selectors.overview_totals(),
                "months": [
                    MonthBar(row.month, row.transactions, row.total_amount, month_report_query(row.month))
                    for row in selectors.amount_per_month()
                ],
                "imports": selectors.imports_visible_to(user=request.user)[:LATEST_IMPORTS],
            },
        )


# --- Range report ---------------------------------------------------------------------------


def _range_query(params: dict, *, now: dt.datetime | None = None) -> dict:
    """The selectors' query, as the API runs it and a segment saves it
    (``segment_selectors.range_report_arguments``)."""
    return segment_selectors.range_report_arguments(
        **{name: params.get(name) for name in SEGMENT_QUERY_FIELDS}, now=now
    )


# The range report's sortable columns: (label, ascending order, descending order, numeric).
RANGE_COLUMNS = [
    ("Customer", "name", "-name", False),
    ("Customer ID", "customer_id", "-customer_id", True),
    ("Total", "total", "-total", True),
]


def sortable_columns(*, columns, current: str, query_string: str, param: str = "sort") -> list[dict]:
    """Each column heading's link: a click sorts by it (descending first for numbers), a second
    click reverses; ``aria-sort`` tells which column the rows are sorted by. `param` names the
    query parameter (a page with two sortable tables gives each its own)."""
    headings = []
    for label, ascending, descending, numeric in columns:
        if current == ascending:
            state, next_order = "ascending", descending
        elif current == descending:
            state, next_order = "descending", ascending
        else:
            state, next_order = None, descending if numeric else ascending
        link = f"{query_string}&{param}={next_order}" if query_string else f"{param}={next_order}"
        headings.append({"label": label, "aria_sort": state, "query": link, "numeric": numeric})
    return headings


def _query_without(request, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


def _drill_down_queries(request, buckets: list[selectors.TotalsBucket]) -> list[str]:
    """The report narrowed to each band of the histogram: [low, high), or [low, high] for the
    last. The rest of the query is encoded once, the bands' bounds appended after it (where a
    copy of the query with the bounds set again puts them too)."""
    rest = _query_without(request, "page", "min_amount", "max_amount")
    queries = []
    for index, bucket in enumerate(buckets):
        high = bucket.high if index == len(buckets) - 1 else max(bucket.low, bucket.high - CENT)
        bounds = urlencode({"min_amount": str(bucket.low), "max_amount": str(high)})
        queries.append(f"{rest}&{bounds}" if rest else bounds)
    return queries


class RangeReportView(DashboardView):
    template_name = "web/reports/range.html"
    partial_template_name = "web/reports/_range_report.html"

    def get(self, request):
        states = selectors.states_with_counts()
        form = TransactionRangeForm(request.GET or None, states=states)
        context = {"form": form, "query_string": ""}
        if form.is_bound and form.is_valid():
            query = _range_query(form.cleaned_data)
            results = _kept_fragments(
                request, "range", (query, form.cleaned_data["sort"]),
                lambda: self.results(request, form, query, context),
            )
            # The valid form and the save-as-segment form's fields are written from the query
            # string alone, so they are kept with the results; the CSRF token is added live.
            context.update(results=results, kept_form=results["form"], kept_segment_fields=results["segment_fields"])
        return self.render_page(request, context, status=400 if form.is_bound and form.errors else 200)

    @staticmethod
    def results(request, form, query: dict, context: dict) -> dict[str, str]:
        """The results' heading and body (around the "save as segment" form, whose fields are
        written here too), and the query's form above them, written from the report (its
        figures are left in ``context`` too)."""
        order = form.cleaned_data["sort"]
        report = selectors.range_report(**query, order=order)
        query_string = _query_without(request, "page")
        buckets = report.summary.buckets
        context.update(
            summary=report.summary,
            page=_page_of(request, report.rows),
            query_string=query_string,
            columns=sortable_columns(
                columns=RANGE_COLUMNS, current=order, query_string=_query_without(request, "page", "sort")
            ),
            bands=[
                {"bucket": bucket, "query": query}
                for bucket, query in zip(buckets, _drill_down_queries(request, buckets))
            ],
            export_query=_query_without(request, "page", "sort"),
            customer_path=_customer_path_prefix(),
        )
        segment_form = SegmentForm(auto_id="segment_%s", initial={name: form.data.get(name, "") for name in SEGMENT_QUERY_FIELDS})
        return {
            "form": render_to_string("web/reports/_range_form.html", {"form": form}),
            "head": render_to_string("web/reports/_range_results_head.html", context),
            "segment_fields": render_to_string("web/segments/_segment_fields.html", {"form": segment_form}),
            "body": render_to_string("web/reports/_range_results_body.html", context),
        }


def _export_name(prefix: str, *parts: object) -> str:
    """A download's file name carrying its query: ``range-10000-100000-2024-01-01.csv``.

    Amounts keep their decimal point; anything else is slugified (a state's spaces become dashes).
    """
    words = [prefix] + [
        format(part, "f") if isinstance(part, Decimal) else slugify(str(part)) for part in parts if part not in (None, "")
    ]
    return "-".join(word for word in words if word) + ".csv"


def _day_or_moment(value: dt.datetime | None) -> str | None:
    """A window bound in a file name: its date, with the time when it isn't a whole day's edge."""
    if value is None:
        return None
    value = value.astimezone(dt.timezone.utc)
    if value.time() in (dt.time.min, dt.time.max):
        return value.date().isoformat()
    return value.strftime("%Y-%m-%dT%H%M%S")


def range_export_name(params: dict) -> str:
    window = (
        [params["period"]]
        if params.get("period")
        else [_day_or_moment(params.get("start")), "to" if params.get("time_period") else None,
              _day_or_moment(params.get("time_period"))]
    )
    amounts = [value.normalize() for value in (params["min_amount"], params["max_amount"])]
    return _export_name("range", *amounts, *window, params.get("state"), params.get("pincode"))


class RangeReportExportView(DashboardView):
    """Every match of a range query as CSV, streamed batch by batch."""

    def get(self, request):
        form = TransactionRangeForm(request.GET)
        if not form.is_valid():
            return redirect(f"{reverse('web:range-report')}?{request.GET.urlencode()}")
        # The API's whole answer, read and written as the API writes it (the report's kept sums
        # for a window, the running totals for all time), as CSV.
        rows = selectors.range_rows(**_range_query(form.cleaned_data), whole=True)
        return customer_totals_csv_download(
            file_name=range_export_name(form.cleaned_data), batches=rows.counted(as_text=True)[1]
        )


# --- Top customers --------------------------------------------------------------------------


def _top_customers(params: dict) -> dict[str, list[selectors.CustomerTotal]]:
    """The report's cards: the pincodes starting with the typed digits, by pincode or by the
    total of their top customers (biggest first, then by pincode)."""
    by_pincode = selectors.top_customers_by_pincode(
        state=params["state"], limit=params["limit"], start=params.get("start"), end=params.get("time_period")
    )
    prefix = params.get("pincode_prefix", "")
    cards = [(pincode, ranked) for pincode, ranked in by_pincode.items() if pincode.startswith(prefix)]
    if params.get("order") == "total":
        cards.sort(key=lambda card: (-sum(entry.total_transaction_amount for entry in card[1]), card[0]))
    return dict(cards)


# About this many customers' rows on one page of pincode cards: the cards are paged beyond it
# (at least MIN_CARDS_PER_PAGE cards a page). With the default 5 a pincode, a state's first
# hundred pincodes are on one page; with 100 a pincode, five cards (~100 KB of HTML, where all
# 40 of the largest state's took 780 KB and 0.4 s to render).
CARD_ROWS_PER_PAGE = 500
MIN_CARDS_PER_PAGE = 5


def _customer_path_prefix() -> str:
    """The customer page's path without the id ("/customers/"), for a page linking hundreds of
    customers: a {% url %} per link took a third of the top-customers page's time."""
    path = reverse("web:customer", args=[0])
    return path.removesuffix("0/")


def _jump_links(by_pincode, *, cards_per_page: int, page, query_string: str) -> list[dict]:
    """Every pincode's jump link (``href`` without its ``#pincode-…`` anchor): in place for a
    card on this page, else to the page of cards holding it. Written here, not in the template:
    forty of them took a third of the largest state's page time there."""
    base = f"{reverse('web:top-customers')}?{query_string + '&' if query_string else ''}page="
    links = []
    for index, pincode in enumerate(by_pincode):
        on_page = index // cards_per_page + 1
        links.append({"pincode": pincode, "href": "" if on_page == page.number else f"{base}{on_page}"})
    return links


class TopCustomersView(DashboardView):
    template_name = "web/reports/top_customers.html"
    partial_template_name = "web/reports/_top_customers_report.html"

    def get(self, request):
        states = selectors.states_with_counts()
        form = TopCustomersForm(request.GET or None, states=states)
        context = {"form": form, "states": states, "query_string": ""}
        if form.is_bound and form.is_valid():
            context["results"] = _kept_fragments(
                request, "top", sorted(form.cleaned_data.items()), lambda: self.results(request, form, context)
            )
        return self.render_page(request, context, status=400 if form.is_bound and form.errors else 200)

    @staticmethod
    def results(request, form, context: dict) -> dict[str, str]:
        """The results (the pincodes' cards, a page of them), written from the report (its
        figures are left in ``context`` too)."""
        by_pincode = _top_customers(form.cleaned_data)
        cards_per_page = max(MIN_CARDS_PER_PAGE, CARD_ROWS_PER_PAGE // form.cleaned_data["limit"])
        page = Paginator(list(by_pincode.items()), cards_per_page).get_page(request.GET.get("page"))
        query_string = _query_without(request, "page")
        context.update(
            by_pincode=by_pincode,
            page=page,
            cards=[
                {
                    "pincode": pincode,
                    "ranked": ranked,
                    "total": sum((entry.total_transaction_amount for entry in ranked), Decimal("0.00")),
                }
                for pincode, ranked in page.object_list
            ],
            jumps=_jump_links(by_pincode, cards_per_page=cards_per_page, page=page, query_string=query_string),
            state=form.cleaned_data["state"],
            query_string=query_string,
            export_query=query_string,
            customer_path=_customer_path_prefix(),
        )
        return {"body": render_to_string("web/reports/_top_customers_results.html", context)}


class TopCustomersExportView(DashboardView):
    def get(self, request):
        form = TopCustomersForm(request.GET)
        if not form.is_valid():
            return redirect(f"{reverse('web:top-customers')}?{request.GET.urlencode()}")
        rows = (
            (pincode, rank, entry.customer_id, entry.name, entry.total_transaction_amount)
            for pincode, ranked in _top_customers(form.cleaned_data).items()
            for rank, entry in enumerate(ranked, start=1)
        )
        params = form.cleaned_data
        return csv_download(
            file_name=_export_name(
                "top-customers", params["state"], params.get("pincode_prefix"),
                _day_or_moment(params.get("start")), "to" if params.get("time_period") else None,
                _day_or_moment(params.get("time_period")),
            ),
            header=["pincode", "rank", "customer_id", "name", "total_transaction_amount"],
            rows=rows,
        )


# --- Customer -------------------------------------------------------------------------------


# The customer page's sortable tables: (label, ascending, descending, numeric), as RANGE_COLUMNS.
TRANSACTION_COLUMNS = [("When (UTC)", "when", "-when", True), ("Amount", "amount", "-amount", True)]
PINCODE_COLUMNS = [
    ("Pincode", "pincode", "-pincode", False),
    ("Transactions", "transactions", "-transactions", True),
    ("Total", "total", "-total", True),
]


def _order_from(request, param: str, orders, default: str) -> str:
    order = request.GET.get(param, "")
    return order if order in orders else default


class CustomerView(DashboardView):
    template_name = "web/customer.html"
    partial_template_name = "web/_customer_transactions.html"

    def get(self, request, customer_id: int):
        customer = selectors.customer_with_totals(customer_id=customer_id)
        if customer is None:
            raise Http404("No customer with this id.")
        order = _order_from(request, "sort", selectors.CUSTOMER_TRANSACTION_ORDERS, "-when")
        transactions = _page_of(request, selectors.transactions_of_in_order(customer_id=customer_id, order=order))
        transactions.object_list = selectors.with_state_names(transactions.object_list)
        context = {
            "customer": customer,
            "mob_no": mob_no_for(request.user, customer.mob_no),
            "transactions": transactions,
            "query_string": _query_without(request, "page"),
            "transaction_columns": sortable_columns(
                columns=TRANSACTION_COLUMNS, current=order, query_string=_query_without(request, "page", "sort")
            ),
        }
        if not (request.htmx and not request.htmx.history_restore_request):
            # The partial is the transaction list alone; the rest only for the whole page.
            pincode_order = _order_from(request, "pincode_sort", selectors.CUSTOMER_PINCODE_ORDERS, "-total")
            context.update(
                pincodes=selectors.pincode_breakdown_in_order(customer_id=customer_id, order=pincode_order),
                pincode_columns=sortable_columns(
                    columns=PINCODE_COLUMNS, current=pincode_order, param="pincode_sort",
                    query_string=_query_without(request, "pincode_sort"),
                ),
                months=selectors.customer_amount_per_month(customer_id=customer_id),
                # Operators correct customers in the admin: link there for whoever may open it.
                admin_url=(
                    reverse("admin:transactions_customer_change", args=[customer.pk])
                    if request.user.is_staff
                    and (request.user.has_perm("transactions.view_customer") or request.user.has_perm("transactions.change_customer"))
                    else None
                ),
            )
        return self.render_page(request, context)


# --- Uploads --------------------------------------------------------------------------------


class UploadView(DashboardView):
    """Pick a file and upload it; the import itself is ``services.start_import``, as in the API.

    With JavaScript the form is sent by XMLHttpRequest (for the upload's progress bar) with the
    HX-Request header, and the answer is the import's status partial, which polls until the
    import is finished. Without JavaScript the POST redirects to the import's status page.
    """

    permission_required = ADD_PERMISSION
    template_name = "web/upload.html"
    partial_template_name = "web/_upload_form.html"

    def get(self, request):
        return self.render_page(request, {"form": ImportUploadForm()})

    def post(self, request):
        declared_length = request.META.get("CONTENT_LENGTH") or ""
        if declared_length.isdigit() and int(declared_length) > settings.CDP_MAX_UPLOAD_BYTES:
            too_large = f"The file is larger than the limit of {settings.CDP_MAX_UPLOAD_BYTES:,} bytes."
            return self.render_page(request, {"form": ImportUploadForm(), "upload_error": too_large}, status=413)
        form = ImportUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_page(request, {"form": form}, status=400)
        job = services.start_import(
            owner=request.user, uploaded_file=form.cleaned_data["file"], file_format=form.cleaned_data["format"]
        )
        if request.htmx:
            job.refresh_from_db()  # the immediate task backend may have run it already
            return render(request, "web/imports/_import_status.html", _import_status_context(request, job), status=201)
        return redirect("web:import-status", job_id=job.pk)


FIRST_REJECTED_ROWS = 10


def _import_status_context(request, job) -> dict:
    context = {"job": job}
    if job.rejected and job.status in (job.Status.DONE, job.Status.FAILED):
        context["first_rejected"] = selectors.first_rejected_rows_of(job=job, user=request.user, limit=FIRST_REJECTED_ROWS)
    return context


class ImportStatusView(KeptSessionUserMixin, LoginRequiredMixin, View):
    """An import's state and counts; its owner (or staff) may see it, as in the API."""

    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.imports_visible_to(user=request.user), pk=job_id)
        context = _import_status_context(request, job)
        if request.htmx and not request.htmx.history_restore_request:
            return render(request, "web/imports/_import_status.html", context)
        return render(request, "web/imports/import_status.html", context)


class ImportRejectedRecordsView(KeptSessionUserMixin, LoginRequiredMixin, View):
    """The rejected rows as a file to fix and upload again: the seven fields and a reason.

    Visible to whoever may see the import; masked as its rejected rows are
    (``selectors.rejected_rows_as_records``).
    """

    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.imports_visible_to(user=request.user), pk=job_id)
        return csv_download(
            file_name=f"import-{job.pk}-rejected-rows-to-fix.csv",
            header=[*selectors.REJECTED_RECORD_FIELDS, "reason"],
            rows=selectors.rejected_rows_as_records(job=job, user=request.user),
        )

