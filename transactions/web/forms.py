"""The dashboard's forms: HTML fields in front of the API's own query rules.

A report form declares only how its fields look (labels, widgets, help). Its validation is the
API's request serializer run on the submitted values, so the page and
``POST /api/query-transaction-range`` accept and refuse the same queries; each message is shown
next to the field it belongs to, in the page's words rather than the API's field names. The one
addition: a date alone in a window field means the start of that day (From) or its end (Up to).
"""

from __future__ import annotations

import datetime as dt
import re

from django import forms

from transactions import selectors, services, validation
from transactions.api.serializers import RangeReportQuerySerializer, SegmentCreateSerializer, TopCustomersQuerySerializer
from transactions.models import ImportJob

from .form_rendering import DASHBOARD_FORM_RENDERER


class WindowInput(forms.TextInput):
    """A text input for a window bound: a date alone or a date and time, shown back as typed.

    Not ``type="datetime-local"``: a browser sends such an input empty while it is half filled
    (a date without a time), so the page would answer for all time without a word. A text
    input sends what was typed, and the form accepts it or says next to the field why not.
    An initial datetime is shown as UTC without its offset.
    """

    def __init__(self, attrs=None):
        super().__init__(
            attrs={
                "placeholder": "YYYY-MM-DD or YYYY-MM-DD HH:MM",
                "autocomplete": "off",
                "spellcheck": "false",
                **(attrs or {}),
            }
        )

    def format_value(self, value):
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        return super().format_value(value)


def _amount_input(placeholder: str) -> forms.NumberInput:
    return forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal", "placeholder": placeholder})


WINDOW_HELP = "A date, or a date and time (UTC). Leave empty for "


class SerializerRulesForm(forms.Form):
    """A form whose ``clean()`` is a DRF serializer: the one place the query rules live.

    Fields are plain optional text fields; a missing value is left out of the serializer's
    input, so the serializer decides what is required and what defaults apply.
    ``cleaned_data`` holds the serializer's validated values.
    """

    serializer_class: type
    # The fields' markup written in Python, the same as Django's templates write it (a third of
    # a report page's time went to rendering the form through them).
    default_renderer = DASHBOARD_FORM_RENDERER
    # A date alone in these fields means the start of that day (UTC) ...
    day_start_fields: tuple[str, ...] = ("start",)
    # ... and in these its end, so that "up to 2024-05-31" includes the 31st.
    day_end_fields: tuple[str, ...] = ("time_period",)
    # The serializer's messages name the API's fields; the page says them in its own words.
    page_messages: dict[str, str] = {
        "start must not be after time_period.": "“From” must not be after “Up to”.",
        "max_amount must not be less than min_amount.": "The maximum total must not be less than the minimum total.",
    }
    window_message = "Enter a date (2024-05-31) or a date and time (2024-05-31 14:30), in UTC."

    def clean(self):
        submitted = {
            name: self._as_sent_to_the_api(name, str(value))
            for name, value in self.data.items()
            if name in self.fields and str(value).strip() != ""
        }
        submitted = {name: value for name, value in submitted.items() if value != ""}
        query = self.serializer_class(data=submitted)
        if query.is_valid():
            return dict(query.validated_data)
        for field, messages in query.errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, self._page_message(field, str(message)))
        return {}

    def _as_sent_to_the_api(self, name: str, value: str) -> str:
        if _DATE_ALONE.fullmatch(value):
            if name in self.day_start_fields:
                return value.strip() + "T00:00:00"
            if name in self.day_end_fields:
                return value.strip() + "T23:59:59.999999"
        return value

    def _page_message(self, field: str, message: str) -> str:
        if field in self.day_start_fields + self.day_end_fields and message.startswith("Enter an ISO 8601 datetime"):
            return self.window_message
        return self.page_messages.get(message, message)


_DATE_ALONE = re.compile(r"\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\s*")


def _state_choices(states, *, empty: str) -> list[tuple[str, str]]:
    return [("", empty)] + [
        (row.state, f"{row.state} ({row.transactions:,} transactions, {row.pincodes:,} pincodes)") for row in states
    ]


class TransactionRangeForm(SerializerRulesForm):
    """The range query, its filters (state, pincode), a period instead of dates, and the order.

    A period, when chosen, wins over the dates typed: the fields are shown with its dates, and
    the report is for the period as of now (so a bookmarked "last 7 days" moves on).
    """

    serializer_class = RangeReportQuerySerializer

    min_amount = forms.CharField(label="Minimum total", required=False, widget=_amount_input("e.g. 50000"))
    max_amount = forms.CharField(label="Maximum total", required=False, widget=_amount_input("e.g. 200000"))
    period = forms.CharField(
        label="Period",
        required=False,
        widget=forms.Select(choices=[("", "Custom dates")] + list(selectors.PERIODS.items())),
        help_text="A period relative to today, or custom dates.",
    )
    start = forms.CharField(
        label="From (optional)", required=False, widget=WindowInput(), help_text=WINDOW_HELP + "all time."
    )
    time_period = forms.CharField(
        label="Up to (optional)", required=False, widget=WindowInput(), help_text=WINDOW_HELP + "now."
    )
    state = forms.CharField(label="State (optional)", required=False, widget=forms.Select())
    pincode = forms.CharField(
        label="Pincode (optional)",
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "maxlength": "6", "placeholder": "e.g. 110001", "autocomplete": "off"}),
        help_text="Only the transactions there count.",
    )
    # From the column headings' links; not a field anyone fills in.
    sort = forms.CharField(required=False, widget=forms.HiddenInput())

    def __init__(self, *args, states=(), now: dt.datetime | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["state"].widget.choices = _state_choices(states, empty="All states")
        period = self.data.get("period", "") if self.is_bound else ""
        if period in selectors.PERIODS:
            window = selectors.period_window(period, now=now or dt.datetime.now(dt.timezone.utc))
            self.data = self.data.copy()
            self.data["start"] = window.start.date().isoformat()
            self.data["time_period"] = window.end.date().isoformat()
            self.period_window = window

    def clean(self):
        cleaned = super().clean()
        if cleaned and "period" in cleaned:
            # The dates shown are the period's; the query is the period (re-evaluated each time).
            cleaned.pop("start", None)
            cleaned.pop("time_period", None)
        if cleaned:
            sort = self.data.get("sort", "")
            cleaned["sort"] = sort if sort in selectors.RANGE_REPORT_ORDERS else selectors.RANGE_REPORT_ORDERS[0]
        return cleaned

    def _as_sent_to_the_api(self, name: str, value: str) -> str:
        if name in ("start", "time_period") and self.data.get("period", "") in selectors.PERIODS:
            return ""  # left out below: a period is sent instead of dates
        return super()._as_sent_to_the_api(name, value)


# The fields of a range query a segment saves (and a "Save as segment" form carries).
SEGMENT_QUERY_FIELDS = ("min_amount", "max_amount", "period", "start", "time_period", "state", "pincode")


class SegmentForm(TransactionRangeForm):
    """"Save as segment": a name, and the range report's query as the report was run.

    The query travels in hidden fields; its rules are the API's (``SegmentCreateSerializer``),
    so a segment saved here is one ``POST /api/segments/`` would have saved.
    """

    serializer_class = SegmentCreateSerializer

    name = forms.CharField(
        label="Segment name",
        required=False,
        widget=forms.TextInput(attrs={"maxlength": str(validation.NAME_MAX_LENGTH), "placeholder": "e.g. Big spenders, Punjab"}),
        help_text="Saved with this query; everyone who can see reports can see it.",
    )
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in SEGMENT_QUERY_FIELDS:
            self.fields[name].widget = forms.HiddenInput()

    def clean(self):
        cleaned = super().clean()
        cleaned.pop("sort", None)
        return cleaned


class TopCustomersForm(SerializerRulesForm):
    serializer_class = TopCustomersQuerySerializer

    state = forms.CharField(label="State", required=False, widget=forms.Select())
    limit = forms.CharField(
        label="Customers per pincode",
        required=False,
        widget=forms.NumberInput(attrs={"min": "1", "max": "100", "placeholder": "5"}),
        help_text="1 to 100; 5 when empty.",
    )
    start = forms.CharField(
        label="From (optional)", required=False, widget=WindowInput(), help_text=WINDOW_HELP + "all time."
    )
    time_period = forms.CharField(
        label="Up to (optional)", required=False, widget=WindowInput(), help_text=WINDOW_HELP + "all time."
    )
    # The page's own, not the API's: which cards are shown and in what order.
    pincode = forms.CharField(
        label="Pincode (optional)",
        required=False,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "maxlength": "6", "placeholder": "e.g. 141", "autocomplete": "off"}),
        help_text="Only the pincodes starting with these digits.",
    )
    order = forms.CharField(
        label="Cards by",
        required=False,
        widget=forms.Select(choices=[("pincode", "Pincode"), ("total", "Total of the top customers, biggest first")]),
    )
    CARD_ORDERS = ("pincode", "total")

    def __init__(self, *args, states=(), **kwargs):
        """`states` are ``selectors.StateCount`` rows: the picker offers each with its counts."""
        super().__init__(*args, **kwargs)
        choices = _state_choices(states, empty="Choose a state")
        sent = self.data.get("state", "") if self.is_bound else ""
        if sent and sent not in {value for value, _ in choices}:
            # States match case-insensitively; show the stored spelling, or keep a state the
            # data doesn't know as an option so the page says plainly it has no transactions.
            spelled = {validation.state_key_for(value): value for value, _ in choices if value}
            key = validation.state_key_for(" ".join(sent.split())) if sent.strip() else ""
            if key in spelled:
                self.data = self.data.copy()
                self.data["state"] = spelled[key]
            else:
                choices.append((sent, sent))
        self.fields["state"].widget.choices = choices

    def clean(self):
        cleaned = super().clean()
        prefix = str(self.data.get("pincode", "")).strip()
        if prefix and not _PINCODE_PREFIX.fullmatch(prefix):
            self.add_error("pincode", "Enter the first digits of a pincode: 1 to 6 digits.")
            return {}
        if cleaned:
            order = self.data.get("order", "")
            cleaned["pincode_prefix"] = prefix
            cleaned["order"] = order if order in self.CARD_ORDERS else self.CARD_ORDERS[0]
        return cleaned


_PINCODE_PREFIX = re.compile(r"[0-9]{1,6}")


class ImportUploadForm(forms.Form):
    """The file of an import; the format comes from the name unless chosen (as in the API)."""

    default_renderer = DASHBOARD_FORM_RENDERER

    file = forms.FileField(
        label="CSV or NDJSON file",
        allow_empty_file=True,
        help_text="A CSV file with a header row naming the seven fields, or NDJSON (one JSON record a line).",
        widget=forms.FileInput(attrs={"accept": ".csv,.ndjson,.jsonl,text/csv,application/x-ndjson"}),
    )
    format = forms.ChoiceField(
        label="Format",
        required=False,
        choices=[("", "From the file name")] + list(ImportJob.Format.choices),
    )

    def clean(self):
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None and not cleaned.get("format"):
            try:
                cleaned["format"] = services.import_format_for(upload.name)
            except ValueError as exc:
                self.add_error("format", str(exc))
        return cleaned
