"""The dashboard's amount filters (``transactions.templatetags.money``)."""

from __future__ import annotations

from decimal import Decimal

from django.template.defaultfilters import floatformat
from django.templatetags.l10n import unlocalize
from django.test import SimpleTestCase

from transactions.templatetags.money import plain_amount


class PlainAmountTests(SimpleTestCase):
    def test_writes_what_floatformat_2_unlocalize_writes(self):
        values = [
            Decimal("0"), Decimal("0E-2"), Decimal("5"), Decimal("1234.5"), Decimal("1234.505"), Decimal("1234.504"),
            Decimal("-0.004"), Decimal("-12.345"), Decimal("1E+3"), Decimal("999999999999.99"),
            Decimal(123456).scaleb(-2), 7, 12345678901, 2.5, "17.1", "not a number", None,
        ]
        for value in values:
            with self.subTest(value=value):
                self.assertEqual(plain_amount(value), unlocalize(floatformat(value, 2)))

    def test_rounds_half_up_without_grouping(self):
        self.assertEqual(
            [plain_amount(Decimal("1234567.125")), plain_amount(Decimal("0.004")), plain_amount(None)],
            ["1234567.13", "0.00", ""],
        )
