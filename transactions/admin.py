"""The operators' admin: find and correct customers and transactions, with an audit trail.

Every save and delete goes through the correction services, which keep the report totals in
step in the same database transaction; django-simple-history records who changed what.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import OperationalError
from django.db.models import Q
from django.utils.functional import cached_property
from simple_history.admin import SimpleHistoryAdmin
from simple_history.template_utils import HistoricalRecordContextHelper

from . import selectors, services, validation
from .csv_download import csv_download
from .models import Customer, ImportJob, Transaction
from .privacy import can_view_pii, mask_mob_no, mob_no_for

# Counting a million rows on every list page costs more than the page itself; past this many
# matches the paginator stops counting and offers this many rows' worth of pages.
COUNT_LIMIT = 10_000


class CappedCountPaginator(Paginator):
    @cached_property
    def count(self):
        return self.object_list[: COUNT_LIMIT + 1].count()


def _text_field(label: str, help_text: str = "") -> forms.CharField:
    """A text field left to a cleaner of transactions.validation for trimming and length.

    The model fields' own max_length would refuse first, with Django's message instead of the
    API's, and would refuse values the API accepts ("+91 98765 432 109" is 17 characters that
    the cleaner reduces to 13 digits).
    """
    return forms.CharField(label=label, help_text=help_text, strip=False)


class TransactionForm(forms.ModelForm):
    """The admin form, validated by the same rules as the API (transactions.validation)."""

    name = _text_field("Name")
    mob_no = _text_field("Mobile number", "7 to 15 digits; spaces, dashes and a leading + are removed.")
    pincode = _text_field("Pincode", "6 digits, not starting with 0.")
    state = _text_field("State")
    transaction_amount = forms.CharField(help_text="Greater than 0, at most 2 decimal places.")
    transaction_datetime = forms.CharField(
        help_text="ISO 8601, e.g. 2024-09-24T15:30:00 (UTC) or 2024-09-24T21:00:00+05:30."
    )

    class Meta:
        model = Transaction
        fields = ["customer", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["transaction_datetime"] = self.instance.transaction_datetime.isoformat()

    def _apply(self, cleaner, field):
        try:
            return cleaner(self.cleaned_data[field])
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None

    def clean_name(self):
        return self._apply(validation.clean_name, "name")

    def clean_mob_no(self):
        return self._apply(validation.clean_mob_no, "mob_no")

    def clean_transaction_amount(self):
        return self._apply(validation.clean_transaction_amount, "transaction_amount")

    def clean_transaction_datetime(self):
        return self._apply(validation.clean_datetime, "transaction_datetime")

    def clean_pincode(self):
        return self._apply(validation.clean_pincode, "pincode")

    def clean_state(self):
        return self._apply(validation.clean_state, "state")

    def clean(self):
        cleaned = super().clean()
        customer, moment = cleaned.get("customer"), cleaned.get("transaction_datetime")
        if customer and moment:
            taken = Transaction.objects.filter(customer=customer, transaction_datetime=moment).exclude(
                pk=self.instance.pk
            )
            if taken.exists():
                raise ValidationError(
                    {"transaction_datetime": "This customer already has another transaction at this date and time."}
                )
        return cleaned

    def validate_unique(self):
        # clean() gives the readable message for the one constraint; the database still enforces it.
        pass


class CustomerForm(forms.ModelForm):
    name = _text_field("Name")
    mob_no = _text_field("Mobile number", "7 to 15 digits; spaces, dashes and a leading + are removed.")

    class Meta:
        model = Customer
        fields = ["name", "mob_no"]

    def clean_name(self):
        return validation.clean_name(self.cleaned_data["name"])

    def clean_mob_no(self):
        return validation.clean_mob_no(self.cleaned_data["mob_no"])


class _MaskedMobileNumberChanges(HistoricalRecordContextHelper):
    """A history page's list of changes, with the mobile numbers masked."""

    def prepare_delta_change_value(self, change, value):
        if change.field == "mob_no" and isinstance(value, str):
            return mask_mob_no(value)
        return super().prepare_delta_change_value(change, value)


class MobileNumberMaskingMixin:
    """Staff without the view-PII permission never see a whole mobile number on a page: not on
    an object's form (the field is left out) nor in its history's list of changes."""

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        return fields if can_view_pii(request.user) else [name for name in fields if name != "mob_no"]

    def get_historical_record_context_helper(self, request, historical_record):
        if can_view_pii(request.user):
            return super().get_historical_record_context_helper(request, historical_record)
        return _MaskedMobileNumberChanges(self.model, historical_record)


class CustomerSearchMixin:
    """Search by customer id or mobile number (digits, exact, on an index) or by name (contains).

    The admin's own "=field" search compares an integer id as text on some databases, which
    scans the whole table; a digits-only term is turned into exact, index-friendly matches.
    Only staff who may see mobile numbers search by them: to anyone else a match would say
    whose a number is, however masked the page shows it.
    """

    customer_id_field = "customer_id"
    name_field = "name"

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit() and len(term) <= 19:
            matches = Q(**{self.customer_id_field: int(term)})
            if can_view_pii(request.user):
                matches |= Q(mob_no=term)
            return queryset.filter(matches), False
        return queryset.filter(**{f"{self.name_field}__icontains": term}), False


def masked_mobile_number_column(request):
    """A list column showing the mobile number as the requesting user may see it."""

    @admin.display(description="mobile number")
    def mobile_number(row):
        return mob_no_for(request.user, row.mob_no)

    return mobile_number


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        # Each state once, by its one name (the spelling most of its transactions are filed
        # under), as the dashboard shows it; read from the running totals, not the transactions.
        return sorted(selectors.state_names().items())

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(state_key=self.value())
        return queryset


class PincodeFilter(admin.SimpleListFilter):
    """Pincodes of the chosen state only: a whole country's would be a list of thousands."""

    title = "pincode (choose a state first)"
    parameter_name = "pincode"

    def lookups(self, request, model_admin):
        state = request.GET.get("state")
        if not state:
            return []
        pincodes = {row.pincode for row in selectors.pincode_figures(state_key=state) if row.transactions > 0}
        return [(code, code) for code in sorted(pincodes)]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(pincode=self.value())
        return queryset


class RetriedOnLockConflictMixin:
    """Runs a write request again when the database gave up on it over a lock conflict.

    Corrections share the per-month and per-pincode total rows with ingest, so a deadlock or a
    lock wait timeout, though rare, can end one. Either rolls the view's whole transaction back,
    so running the request again is safe, and the operator's save goes through instead of
    ending on an error page.
    """

    lock_conflict_attempts = 3

    def _retried(self, view, request, *args, **kwargs):
        for attempt in range(1, self.lock_conflict_attempts + 1):
            try:
                return view(request, *args, **kwargs)
            except OperationalError as exc:
                retry = (
                    request.method == "POST"
                    and attempt < self.lock_conflict_attempts
                    and services.is_transient_lock_error(exc)
                )
                if not retry:
                    raise
        raise AssertionError("unreachable")

    def changeform_view(self, request, *args, **kwargs):
        return self._retried(super().changeform_view, request, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        return self._retried(super().delete_view, request, *args, **kwargs)

    def changelist_view(self, request, *args, **kwargs):  # where actions (bulk delete) are posted
        return self._retried(super().changelist_view, request, *args, **kwargs)

    def history_form_view(self, request, *args, **kwargs):  # restoring from the history
        return self._retried(super().history_form_view, request, *args, **kwargs)


@admin.register(Transaction)
class TransactionAdmin(RetriedOnLockConflictMixin, MobileNumberMaskingMixin, CustomerSearchMixin, SimpleHistoryAdmin):
    name_field = "customer__name"
    form = TransactionForm
    list_display = ["id", "customer_link", "transaction_amount", "transaction_datetime", "pincode", "state"]
    list_select_related = ["customer"]
    list_filter = [StateFilter, PincodeFilter]
    date_hierarchy = "transaction_datetime"
    search_fields = ["=customer__customer_id", "customer__name", "=mob_no"]
    autocomplete_fields = ["customer"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    ordering = ["-transaction_datetime"]
    actions = ["export_as_csv"]
    history_list_display = ["transaction_amount", "transaction_datetime", "pincode", "state"]

    @admin.display(description="customer", ordering="customer_id")
    def customer_link(self, row):
        return f"{row.customer.name} ({row.customer_id})"

    def get_list_display(self, request):
        return [*self.list_display, masked_mobile_number_column(request)]

    def save_model(self, request, obj, form, change):
        previous = form.initial.get("customer") if change else None
        try:
            services.save_corrected_transaction(row=obj, previous_customer_id=previous, changed_by=request.user)
        except services.TransactionKeyTaken:
            # Only reached by a race with another edit; the form check catches the usual case.
            messages.error(request, "Not saved: this customer already has a transaction at that time.")

    def delete_model(self, request, obj):
        services.delete_transactions(rows=[obj], changed_by=request.user)

    def delete_queryset(self, request, queryset):
        services.delete_transactions(rows=queryset, changed_by=request.user)

    @admin.action(description="Export the selected transactions as CSV")
    def export_as_csv(self, request, queryset):
        columns = ["id", "customer_id", "name", "mob_no", "transaction_amount", "transaction_datetime", "pincode", "state"]

        def rows():
            for row in queryset.order_by("pk").values_list(*columns).iterator(chunk_size=2000):
                row = list(row)
                row[3] = mob_no_for(request.user, row[3])
                row[5] = row[5].isoformat()
                yield row

        return csv_download(file_name="transactions.csv", header=columns, rows=rows())


@admin.register(Customer)
class CustomerAdmin(RetriedOnLockConflictMixin, MobileNumberMaskingMixin, CustomerSearchMixin, SimpleHistoryAdmin):
    form = CustomerForm
    list_display = ["customer_id", "name", "total_amount", "transaction_count", "details_as_of"]
    search_fields = ["=customer_id", "name", "=mob_no"]
    readonly_fields = ["customer_id", "total_amount", "transaction_count", "details_as_of"]
    paginator = CappedCountPaginator
    show_full_result_count = False
    ordering = ["customer_id"]
    actions = ["recompute_totals"]

    def get_list_display(self, request):
        return [*self.list_display, masked_mobile_number_column(request)]

    def has_add_permission(self, request):
        return False  # customers come into being with their first transaction

    def has_delete_permission(self, request, obj=None):
        return False  # their transactions are deleted instead; the customer row keeps the history

    def save_model(self, request, obj, form, change):
        services.save_corrected_customer(customer=obj, changed_by=request.user)

    @admin.action(description="Recompute the totals of the selected customers (and the month and pincode totals)")
    def recompute_totals(self, request, queryset):
        customer_ids = list(queryset.values_list("pk", flat=True))
        services.recompute_customer_totals(customer_ids=customer_ids)
        self.message_user(request, f"Recomputed the totals of {len(customer_ids)} customer(s).")


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "owner", "status", "rows_processed", "created", "duplicates",
                    "conflicts", "rejected", "created_at"]
    list_filter = ["status"]
    list_select_related = ["owner"]
    readonly_fields = [field.name for field in ImportJob._meta.fields]

    def has_add_permission(self, request):
        return False
