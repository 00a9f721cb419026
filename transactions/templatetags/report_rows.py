"""The repeated rows of the reports' long tables, written in Python.

A row of six values costs Django's template engine about 20 µs (each ``{{ }}`` looks its name
up through the context's stack, localizes and escapes it); the top-customers page of the
largest state has 200 such rows, the range report 50 and its histogram's table a band a row,
and the rows were then half of the page's time, more than the API took for the same query. Here a row costs a few µs. This is
markup outside a template, which the style guide would keep in one: only the repeated row is
here, the table's structure (caption, headings, body) stays in its template, and the values are
written by the same filters a template used (``rupees``, ``plain_amount``, ``unlocalize``) and
escaped.
"""

from __future__ import annotations

from html import escape

from django import template
from django.template.defaultfilters import floatformat
from django.templatetags.l10n import unlocalize
from django.utils.timezone import template_localtime
from django.utils.safestring import SafeString, mark_safe

from .money import plain_amount, rupees

register = template.Library()

# Every value is escaped (html.escape: what Django's escape does, without its SafeString per
# value, which format_html_join made half a row's cost).


@register.simple_tag
def customer_total_rows(rows, *, first_number: int, customer_path: str) -> SafeString:
    """A report's rows (dicts of customer_id, name, total_transaction_amount), numbered from
    `first_number`, each name linking to the customer's page (`customer_path` + id)."""
    path = escape(str(customer_path))
    lines = []
    for number, row in enumerate(rows, first_number):
        customer_id, total = escape(unlocalize(row["customer_id"])), row["total_transaction_amount"]
        lines.append(
            f'<tr><td class="num">{number}</td><td><a href="{path}{customer_id}/">{escape(str(row["name"]))}</a></td>'
            f'<td class="num" data-customer-id="{customer_id}">{customer_id}</td>'
            f'<td class="num" data-total="{escape(plain_amount(total))}">{escape(rupees(total))}</td></tr>'
        )
    return mark_safe("\n".join(lines))


@register.simple_tag
def ranked_customer_rows(ranked, *, customer_path: str) -> SafeString:
    """A pincode's top customers (``selectors.CustomerTotal``), ranked from 1."""
    path = escape(str(customer_path))
    lines = []
    for rank, entry in enumerate(ranked, 1):
        total = entry.total_transaction_amount
        lines.append(
            f'<tr><th scope="row"><span class="rank">{rank}.</span> '
            f'<a href="{path}{escape(unlocalize(entry.customer_id))}/">{escape(str(entry.name))}</a></th>'
            f'<td class="num" data-value="{escape(unlocalize(total))}">{escape(rupees(total))}</td></tr>'
        )
    return mark_safe("\n".join(lines))


@register.simple_tag
def histogram_band_rows(bands, *, base_url: str) -> SafeString:
    """The histogram's table rows: each band's range linking to its customers, and their count
    (``bands``: dicts of bucket, a ``selectors.TotalsBucket``, and query, the band's report)."""
    url = escape(str(base_url))
    lines = []
    for band in bands:
        bucket, href = band["bucket"], f'{url}?{escape(str(band["query"]))}'
        lines.append(
            f'<tr data-href="{href}"><th scope="row"><a href="{href}" data-band>'
            f'{escape(rupees(bucket.low))} – {escape(rupees(bucket.high))}</a></th>'
            f'<td class="num" data-value="{escape(unlocalize(bucket.customers))}">'
            f'{escape(str(floatformat(bucket.customers, "0g")))}</td></tr>'
        )
    return mark_safe("\n".join(lines))


# --- The customer page's tables ---------------------------------------------------------------


@register.simple_tag
def customer_pincode_rows(pincodes) -> SafeString:
    """A customer's totals by pincode (dicts of pincode, state, transaction_count, total_amount)."""
    return mark_safe("\n".join([
        f'<tr><td data-label="Pincode">{escape(str(row["pincode"]))}</td>'
        f'<td data-label="State">{escape(str(row["state"]))}</td>'
        f'<td class="num" data-label="Transactions">{escape(str(floatformat(row["transaction_count"], "0g")))}</td>'
        f'<td class="num" data-label="Total">{escape(rupees(row["total_amount"]))}</td></tr>'
        for row in pincodes
    ]))


@register.simple_tag
def month_spend_rows(months) -> SafeString:
    """A customer's spend per month (``selectors.MonthTotal``), the chart's table."""
    return mark_safe("\n".join([
        f'<tr><th scope="row">{month.month.year:04d}-{month.month.month:02d}</th>'
        f'<td class="num" data-value="{escape(unlocalize(month.total_amount))}">{escape(rupees(month.total_amount))}</td>'
        f'<td class="num">{escape(str(floatformat(month.transactions, "0g")))}</td></tr>'
        for month in months
    ]))


@register.simple_tag
def customer_transaction_rows(transactions) -> SafeString:
    """A page of a customer's transactions, each with ``state_name`` (``selectors.with_state_names``);
    the times as the template's date filter writes them (in the current time zone, UTC)."""
    lines = []
    for txn in transactions:
        moment, amount = template_localtime(txn.transaction_datetime), txn.transaction_amount
        # What the date filter writes for "c" and "Y-m-d H:i:s", at a tenth of its cost.
        lines.append(
            f'<tr><td class="num" data-label="When (UTC)"><time datetime="{moment.isoformat()}">'
            f'{moment.year:04d}-{moment.month:02d}-{moment.day:02d} '
            f'{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}</time></td>'
            f'<td class="num" data-label="Amount" data-amount="{escape(str(floatformat(amount, 2)))}">{escape(rupees(amount))}</td>'
            f'<td data-label="Pincode">{escape(str(txn.pincode))}</td><td data-label="State">{escape(str(txn.state_name))}</td></tr>'
        )
    return mark_safe("\n".join(lines))
