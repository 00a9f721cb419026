"""The reports' rows written in Python (``transactions.templatetags.report_rows``)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

from django.template import engines
from django.test import SimpleTestCase

from transactions.selectors import CustomerTotal, MonthTotal, TotalsBucket
from transactions.templatetags.report_rows import (
    customer_pincode_rows,
    customer_total_rows,
    customer_transaction_rows,
    histogram_band_rows,
    month_spend_rows,
    ranked_customer_rows,
)


class ReportRowsTests(SimpleTestCase):
    def test_customer_total_rows_are_numbered_linked_and_escaped(self):
        rows = [
            {"customer_id": 1234567, "name": 'Asha <b>"Iyer"</b>',
             "total_transaction_amount": Decimal("123456.5")},
            {"customer_id": 8, "name": "Bela", "total_transaction_amount": Decimal("0.00")},
        ]
        self.assertHTMLEqual(
            customer_total_rows(rows, first_number=51, customer_path="/customers/"),
            '<tr><td class="num">51</td>'
            '<td><a href="/customers/1234567/">Asha &lt;b&gt;&quot;Iyer&quot;&lt;/b&gt;</a></td>'
            '<td class="num" data-customer-id="1234567">1234567</td>'
            '<td class="num" data-total="123456.50">₹1,23,456.50</td></tr>'
            '<tr><td class="num">52</td><td><a href="/customers/8/">Bela</a></td>'
            '<td class="num" data-customer-id="8">8</td><td class="num" data-total="0.00">₹0.00</td></tr>',
        )

    def test_ranked_customer_rows_are_ranked_from_one(self):
        ranked = [CustomerTotal(42, "Chand & Co", Decimal("9999999.99")), CustomerTotal(7, "Dev", Decimal("10.00"))]
        self.assertHTMLEqual(
            ranked_customer_rows(ranked, customer_path="/customers/"),
            '<tr><th scope="row"><span class="rank">1.</span> <a href="/customers/42/">Chand &amp; Co</a></th>'
            '<td class="num" data-value="9999999.99">₹99,99,999.99</td></tr>'
            '<tr><th scope="row"><span class="rank">2.</span> <a href="/customers/7/">Dev</a></th>'
            '<td class="num" data-value="10.00">₹10.00</td></tr>',
        )

    def test_rows_are_the_template_loops_rows(self):
        """What the tags write is what the templates' loops wrote before them."""
        rows = [
            {"customer_id": 1000 + i, "name": f"<n{i}>", "total_transaction_amount": Decimal(i * 12345).scaleb(-2)}
            for i in range(60)
        ]
        loop = engines["django"].from_string(
            "{% load l10n money %}{% for row in rows %}<tr><td class=\"num\">{{ first|add:forloop.counter0 }}</td>"
            "<td><a href=\"{{ customer_path }}{{ row.customer_id|unlocalize }}/\">{{ row.name }}</a></td>"
            "<td class=\"num\" data-customer-id=\"{{ row.customer_id|unlocalize }}\">"
            "{{ row.customer_id|unlocalize }}</td>"
            "<td class=\"num\" data-total=\"{{ row.total_transaction_amount|floatformat:2|unlocalize }}\">"
            "{{ row.total_transaction_amount|rupees }}</td></tr>{% endfor %}"
        )
        self.assertHTMLEqual(
            customer_total_rows(rows, first_number=1001, customer_path="/customers/"),
            loop.render({"rows": rows, "first": 1001, "customer_path": "/customers/"}),
        )
        ranked = [CustomerTotal(row["customer_id"], row["name"], row["total_transaction_amount"]) for row in rows]
        loop = engines["django"].from_string(
            "{% load l10n money %}{% for entry in ranked %}"
            "<tr><th scope=\"row\"><span class=\"rank\">{{ forloop.counter }}.</span>"
            " <a href=\"{{ customer_path }}{{ entry.customer_id|unlocalize }}/\">{{ entry.name }}</a></th>"
            "<td class=\"num\" data-value=\"{{ entry.total_transaction_amount|unlocalize }}\">"
            "{{ entry.total_transaction_amount|rupees }}</td></tr>{% endfor %}"
        )
        self.assertHTMLEqual(
            ranked_customer_rows(ranked, customer_path="/customers/"),
            loop.render({"ranked": ranked, "customer_path": "/customers/"}),
        )

    def test_histogram_band_rows_are_the_template_loops_rows(self):
        bands = [
            {"bucket": TotalsBucket(low=Decimal(i * 100000).scaleb(-2), high=Decimal(i * 100000 + 99999).scaleb(-2),
                                    customers=i * 1234),
             "query": f"min_amount={i * 1000}&max_amount={i * 1000 + 999.99}&state=A<&>B"}
            for i in range(25)
        ]
        loop = engines["django"].from_string(
            "{% load l10n money %}{% for band in bands %}"
            "<tr data-href=\"{{ base_url }}?{{ band.query }}\"><th scope=\"row\"><a href=\"{{ base_url }}?{{ band.query }}\""
            " data-band>{{ band.bucket.low|rupees }} – {{ band.bucket.high|rupees }}</a></th><td class=\"num\""
            " data-value=\"{{ band.bucket.customers|unlocalize }}\">{{ band.bucket.customers|floatformat:\"0g\" }}</td></tr>"
            "{% endfor %}"
        )
        written = histogram_band_rows(bands, base_url="/reports/range/")
        self.assertEqual(written.replace("\n", ""), loop.render({"bands": bands, "base_url": "/reports/range/"}))
        self.assertIn(">24,680</td>", written)  # grouped as the template grouped it
        self.assertIn("state=A&lt;&amp;&gt;B", written)

    def test_the_customer_pages_rows_are_the_template_loops_rows(self):
        pincodes = [
            {"pincode": f"{110001 + i}", "state": "Tamil <Nadu>" if i % 2 else "Delhi", "transaction_count": i * 997,
             "total_amount": Decimal(i * 1234567).scaleb(-2)}
            for i in range(12)
        ]
        loop = engines["django"].from_string(
            "{% load money %}{% for row in pincodes %}<tr><td data-label=\"Pincode\">{{ row.pincode }}</td>"
            "<td data-label=\"State\">{{ row.state }}</td><td class=\"num\" data-label=\"Transactions\">"
            "{{ row.transaction_count|floatformat:\"0g\" }}</td><td class=\"num\" data-label=\"Total\">"
            "{{ row.total_amount|rupees }}</td></tr>{% endfor %}"
        )
        self.assertEqual(customer_pincode_rows(pincodes).replace("\n", ""), loop.render({"pincodes": pincodes}))

        months = [MonthTotal(dt.date(2023 + i // 12, i % 12 + 1, 1), i * 1001, Decimal(i * 987654).scaleb(-2)) for i in range(30)]
        loop = engines["django"].from_string(
            "{% load l10n money %}{% for month in months %}<tr><th scope=\"row\">{{ month.month|date:\"Y-m\" }}</th>"
            "<td class=\"num\" data-value=\"{{ month.total_amount|unlocalize }}\">{{ month.total_amount|rupees }}</td>"
            "<td class=\"num\">{{ month.transactions|floatformat:\"0g\" }}</td></tr>{% endfor %}"
        )
        self.assertEqual(month_spend_rows(months).replace("\n", ""), loop.render({"months": months}))

        transactions = [
            SimpleNamespace(
                transaction_datetime=dt.datetime(2024, 1 + i % 12, 1 + i, 13, i, 7, tzinfo=dt.timezone.utc),
                transaction_amount=Decimal(i * 123457).scaleb(-2), pincode=f"{560001 + i}", state_name="Karnataka & Co",
            )
            for i in range(25)
        ]
        loop = engines["django"].from_string(
            "{% load money %}{% for txn in transactions %}<tr><td class=\"num\" data-label=\"When (UTC)\">"
            "<time datetime=\"{{ txn.transaction_datetime|date:'c' }}\">{{ txn.transaction_datetime|date:\"Y-m-d H:i:s\" }}"
            "</time></td><td class=\"num\" data-label=\"Amount\" data-amount=\"{{ txn.transaction_amount|floatformat:2 }}\">"
            "{{ txn.transaction_amount|rupees }}</td><td data-label=\"Pincode\">{{ txn.pincode }}</td>"
            "<td data-label=\"State\">{{ txn.state_name }}</td></tr>{% endfor %}"
        )
        written = customer_transaction_rows(transactions)
        self.assertEqual(written.replace("\n", ""), loop.render({"transactions": transactions}))
        self.assertIn('<time datetime="2024-01-01T13:00:07+00:00">2024-01-01 13:00:07</time>', written)
        self.assertIn("Karnataka &amp; Co", written)
