"""The analyst dashboard: HTML pages over the same services and selectors as the JSON API.

Each view parses its query with a form from ``forms`` (the API's rules), calls selectors or a
service, and renders one page template, or only that page's partial when HTMX asks
(``request.htmx``), so every URL also works as a plain page without JavaScript.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin, PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from transactions import selectors, services
from transactions.csv_download import csv_download
from transactions.privacy import mob_no_for

from .forms import ImportUploadForm, TopCustomersForm, TransactionRangeForm

PAGE_SIZE = 50
LATEST_IMPORTS = 10
VIEW_PERMISSION = "transactions.view_transaction"
ADD_PERMISSION = "transactions.add_transaction"


class DashboardView(LoginRequiredMixin, PermissionRequiredMixin, View):
    """Login first (anonymous users go to the login page), then the permission (else 403)."""

    permission_required = VIEW_PERMISSION
    template_name: str
    partial_template_name: str | None = None

    def render_page(self, request, context: dict, *, status: int = 200) -> HttpResponse:
        """The partial for an HTMX request (not a history restore), the whole page otherwise."""
        wants_partial = self.partial_template_name and request.htmx and not request.htmx.history_restore_request
        template = self.partial_template_name if wants_partial else self.template_name
        return render(request, template, context, status=status)


def _page_of(request, rows):
    return Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))


class OverviewView(DashboardView):
    template_name = "web/overview.html"

    def get(self, request):
        return self.render_page(
            request,
            {
                "totals": selectors.overview_totals(),
                "months": selectors.amount_per_month(),
                "imports": selectors.imports_visible_to(user=request.user)[:LATEST_IMPORTS],
            },
        )


# --- Range report ---------------------------------------------------------------------------


def _range_query(params: dict) -> dict:
    """The API's query, as the API runs it: the window ends now unless time_period says."""
    return {
        "min_amount": params["min_amount"],
        "max_amount": params["max_amount"],
        "start": params.get("start"),
        "end": params.get("time_period") or timezone.now(),
    }


class RangeReportView(DashboardView):
    template_name = "web/reports/range.html"
    partial_template_name = "web/reports/_range_report.html"

    def get(self, request):
        form = TransactionRangeForm(request.GET) if request.GET else TransactionRangeForm()
        context = {"form": form, "query_string": ""}
        if form.is_bound and form.is_valid():
            report = selectors.range_report(**_range_query(form.cleaned_data))
            context.update(
                summary=report.summary,
                page=_page_of(request, report.rows),
                query_string=_query_without_page(request),
            )
        return self.render_page(request, context, status=400 if form.is_bound and form.errors else 200)


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


class RangeReportExportView(DashboardView):
    """Every match of a range query as CSV, streamed from the database cursor."""

    def get(self, request):
        form = TransactionRangeForm(request.GET)
        if not form.is_valid():
            return redirect(f"{reverse('web:range-report')}?{request.GET.urlencode()}")
        rows = (
            (row["customer_id"], row["name"], row["total_transaction_amount"])
            for row in selectors.customers_in_total_range(**_range_query(form.cleaned_data)).iterator(chunk_size=2000)
        )
        return csv_download(
            file_name="range-report.csv", header=["customer_id", "name", "total_transaction_amount"], rows=rows
        )


# --- Top customers --------------------------------------------------------------------------


def _top_customers(params: dict) -> dict[str, list[selectors.CustomerTotal]]:
    return selectors.top_customers_by_pincode(
        state=params["state"], limit=params["limit"], start=params.get("start"), end=params.get("time_period")
    )


class TopCustomersView(DashboardView):
    template_name = "web/reports/top_customers.html"
    partial_template_name = "web/reports/_top_customers_report.html"

    def get(self, request):
        states = selectors.states_with_counts()
        form = TopCustomersForm(request.GET or None, states=states)
        context = {"form": form, "states": states, "query_string": ""}
        if form.is_bound and form.is_valid():
            context.update(
                by_pincode=_top_customers(form.cleaned_data),
                state=form.cleaned_data["state"],
                query_string=request.GET.urlencode(),
            )
        return self.render_page(request, context, status=400 if form.is_bound and form.errors else 200)


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
        return csv_download(
            file_name="top-customers.csv",
            header=["pincode", "rank", "customer_id", "name", "total_transaction_amount"],
            rows=rows,
        )


# --- Customer -------------------------------------------------------------------------------


class CustomerView(DashboardView):
    template_name = "web/customer.html"
    partial_template_name = "web/_customer_transactions.html"

    def get(self, request, customer_id: int):
        customer = selectors.customer_with_totals(customer_id=customer_id)
        if customer is None:
            raise Http404("No customer with this id.")
        transactions = _page_of(request, selectors.transactions_of(customer_id=customer_id))
        transactions.object_list = selectors.with_state_names(transactions.object_list)
        context = {
            "customer": customer,
            "mob_no": mob_no_for(request.user, customer.mob_no),
            "transactions": transactions,
        }
        if not (request.htmx and not request.htmx.history_restore_request):
            # The partial is the transaction list alone; the rest only for the whole page.
            context.update(
                pincodes=selectors.pincode_breakdown_of(customer_id=customer_id),
                months=selectors.customer_amount_per_month(customer_id=customer_id),
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
            return render(request, "web/imports/_import_status.html", {"job": job}, status=201)
        return redirect("web:import-status", job_id=job.pk)


class ImportStatusView(LoginRequiredMixin, View):
    """An import's state and counts; its owner (or staff) may see it, as in the API."""

    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.imports_visible_to(user=request.user), pk=job_id)
        if request.htmx and not request.htmx.history_restore_request:
            return render(request, "web/imports/_import_status.html", {"job": job})
        return render(request, "web/imports/import_status.html", {"job": job})

