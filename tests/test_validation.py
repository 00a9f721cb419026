"""The field rules of a transaction record (shared/API.md), one cleaner at a time."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from unittest import mock

from django.core.exceptions import ValidationError
from django.test import SimpleTestCase

from tests.support import record
from transactions import validation
from transactions.validation import (
    NULL_MESSAGE,
    REQUIRED_MESSAGE,
    RecordInvalid,
    TransactionRecord,
    clean_customer_id,
    clean_datetime,
    clean_mob_no,
    clean_name,
    clean_pincode,
    clean_state,
    clean_transaction_amount,
    parse_transaction_record,
)

UTC = dt.timezone.utc

CUSTOMER_ID_MESSAGE = "Enter a whole number from 1 to 9223372036854775807."
AMOUNT_NUMBER_MESSAGE = "Enter an amount as a number, e.g. 1500.75."
AMOUNT_POSITIVE_MESSAGE = "Enter an amount greater than 0."
AMOUNT_MAX_MESSAGE = "Enter an amount of at most 999999999999.99."
AMOUNT_PLACES_MESSAGE = "Enter an amount with at most 2 decimal places."
MOB_NO_MESSAGE = "Enter a mobile number of 7 to 15 digits (spaces, dashes and a leading + are allowed)."
DATETIME_MESSAGE = "Enter an ISO 8601 datetime, e.g. 2024-09-24T15:30:00 or 2024-09-24T21:00:00+05:30."
DATETIME_RANGE_MESSAGE = "Enter a datetime between the years 1000 and 9999 (UTC)."
PINCODE_MESSAGE = "Enter a pincode of exactly 6 digits that does not start with 0."


class CleanerAssertions:
    def assertRejected(self, cleaner, value, message: str) -> None:
        with self.assertRaises(ValidationError, msg=f"{cleaner.__name__}({value!r}) should be rejected") as caught:
            cleaner(value)
        self.assertEqual(caught.exception.messages, [message])


class CustomerIdTests(CleanerAssertions, SimpleTestCase):
    def test_integer_is_accepted_as_is(self):
        self.assertEqual(clean_customer_id(101), 101)

    def test_string_of_digits_is_converted_to_an_integer(self):
        cleaned = clean_customer_id("101")
        self.assertEqual(cleaned, 101)
        self.assertIs(type(cleaned), int)

    def test_largest_signed_64_bit_integer_is_accepted(self):
        self.assertEqual(clean_customer_id(2**63 - 1), 9223372036854775807)
        self.assertEqual(clean_customer_id(str(2**63 - 1)), 9223372036854775807)

    def test_one_past_the_largest_64_bit_integer_is_rejected(self):
        self.assertRejected(clean_customer_id, 2**63, CUSTOMER_ID_MESSAGE)
        self.assertRejected(clean_customer_id, str(2**63), CUSTOMER_ID_MESSAGE)

    def test_zero_is_rejected(self):
        self.assertRejected(clean_customer_id, 0, CUSTOMER_ID_MESSAGE)
        self.assertRejected(clean_customer_id, "0", CUSTOMER_ID_MESSAGE)

    def test_negative_numbers_are_rejected(self):
        self.assertRejected(clean_customer_id, -5, CUSTOMER_ID_MESSAGE)
        self.assertRejected(clean_customer_id, "-5", CUSTOMER_ID_MESSAGE)

    def test_booleans_are_rejected_although_python_counts_them_as_integers(self):
        self.assertRejected(clean_customer_id, True, CUSTOMER_ID_MESSAGE)
        self.assertRejected(clean_customer_id, False, CUSTOMER_ID_MESSAGE)

    def test_floats_are_rejected_even_when_whole(self):
        self.assertRejected(clean_customer_id, 101.0, CUSTOMER_ID_MESSAGE)
        self.assertRejected(clean_customer_id, 101.5, CUSTOMER_ID_MESSAGE)
        self.assertRejected(clean_customer_id, Decimal("101"), CUSTOMER_ID_MESSAGE)

    def test_strings_that_are_not_plain_digits_are_rejected(self):
        for value in ("", "abc", "1.0", "1e3", "+5", "١٢٣", "12 34"):
            with self.subTest(value=value):
                self.assertRejected(clean_customer_id, value, CUSTOMER_ID_MESSAGE)

    def test_other_types_are_rejected(self):
        for value in ([101], {"id": 101}):
            with self.subTest(value=value):
                self.assertRejected(clean_customer_id, value, CUSTOMER_ID_MESSAGE)


class NameTests(CleanerAssertions, SimpleTestCase):
    def test_surrounding_whitespace_is_trimmed(self):
        self.assertEqual(clean_name("  amit kumar \n"), "amit kumar")

    def test_one_character_is_enough(self):
        self.assertEqual(clean_name("a"), "a")

    def test_one_hundred_characters_are_accepted(self):
        self.assertEqual(clean_name("n" * 100), "n" * 100)

    def test_one_hundred_and_one_characters_are_rejected(self):
        self.assertRejected(clean_name, "n" * 101, "Enter a name of 1 to 100 characters.")

    def test_length_is_counted_after_trimming(self):
        self.assertEqual(clean_name("   " + "n" * 100 + "   "), "n" * 100)

    def test_blank_is_rejected(self):
        for value in ("", "   ", "\t\n"):
            with self.subTest(value=value):
                self.assertRejected(clean_name, value, "Enter a name of 1 to 100 characters.")

    def test_non_strings_are_rejected(self):
        for value in (42, ["amit"], True):
            with self.subTest(value=value):
                self.assertRejected(clean_name, value, "Enter a name as text.")

    def test_null_characters_are_rejected(self):
        self.assertRejected(clean_name, "am\x00it", "Null characters are not allowed.")


class TransactionAmountTests(CleanerAssertions, SimpleTestCase):
    def test_json_number_is_kept_exact(self):
        # What the exact JSON parser hands over for 1500.75.
        self.assertEqual(clean_transaction_amount(Decimal("1500.75")), Decimal("1500.75"))

    def test_python_float_is_read_by_its_shortest_repr_not_its_binary_value(self):
        self.assertEqual(clean_transaction_amount(0.1), Decimal("0.10"))
        self.assertEqual(clean_transaction_amount(1500.75), Decimal("1500.75"))

    def test_integer_is_accepted(self):
        self.assertEqual(clean_transaction_amount(1500), Decimal("1500.00"))

    def test_numeric_string_is_accepted(self):
        self.assertEqual(clean_transaction_amount("1500.75"), Decimal("1500.75"))
        self.assertEqual(clean_transaction_amount(" 42 "), Decimal("42.00"))

    def test_trailing_zero_is_not_an_extra_decimal_place(self):
        self.assertEqual(clean_transaction_amount("1.10"), Decimal("1.10"))

    def test_result_always_has_two_decimal_places(self):
        self.assertEqual(clean_transaction_amount("7").as_tuple().exponent, -2)

    def test_smallest_amount_is_one_cent(self):
        self.assertEqual(clean_transaction_amount("0.01"), Decimal("0.01"))

    def test_largest_amount_is_accepted(self):
        self.assertEqual(clean_transaction_amount("999999999999.99"), Decimal("999999999999.99"))
        self.assertEqual(clean_transaction_amount(Decimal("999999999999.99")), Decimal("999999999999.99"))

    def test_one_cent_over_the_largest_amount_is_rejected(self):
        self.assertRejected(clean_transaction_amount, "1000000000000.00", AMOUNT_MAX_MESSAGE)
        self.assertRejected(clean_transaction_amount, Decimal("1000000000000"), AMOUNT_MAX_MESSAGE)

    def test_three_decimal_places_are_rejected_not_rounded(self):
        for value in ("1500.755", Decimal("0.001"), "1.005", 0.125):
            with self.subTest(value=value):
                self.assertRejected(clean_transaction_amount, value, AMOUNT_PLACES_MESSAGE)

    def test_zero_is_rejected(self):
        for value in (0, "0", "0.00", Decimal("0")):
            with self.subTest(value=value):
                self.assertRejected(clean_transaction_amount, value, AMOUNT_POSITIVE_MESSAGE)

    def test_negative_amounts_are_rejected(self):
        for value in (-1, "-1500.75", Decimal("-0.01")):
            with self.subTest(value=value):
                self.assertRejected(clean_transaction_amount, value, AMOUNT_POSITIVE_MESSAGE)

    def test_nan_and_infinity_are_rejected(self):
        for value in ("NaN", "nan", "Infinity", "-Infinity", "inf", float("nan"), float("inf"), Decimal("NaN")):
            with self.subTest(value=value):
                self.assertRejected(clean_transaction_amount, value, AMOUNT_NUMBER_MESSAGE)

    def test_thousands_separators_and_words_are_rejected(self):
        for value in ("1,000", "abc", "", "1500.75 INR", "₹100", "0x10"):
            with self.subTest(value=value):
                self.assertRejected(clean_transaction_amount, value, AMOUNT_NUMBER_MESSAGE)

    def test_booleans_and_other_types_are_rejected(self):
        for value in (True, [1500], {"amount": 1}):
            with self.subTest(value=value):
                self.assertRejected(clean_transaction_amount, value, AMOUNT_NUMBER_MESSAGE)


class MobileNumberTests(CleanerAssertions, SimpleTestCase):
    def test_plain_digits_are_kept(self):
        self.assertEqual(clean_mob_no("9876543210"), "9876543210")

    def test_spaces_dashes_and_a_leading_plus_are_stripped(self):
        self.assertEqual(clean_mob_no("+91 98765-43210"), "919876543210")
        self.assertEqual(clean_mob_no(" 98 76 54 32 10 "), "9876543210")
        self.assertEqual(clean_mob_no("987-654-3210"), "9876543210")

    def test_seven_digits_are_the_minimum(self):
        self.assertEqual(clean_mob_no("1234567"), "1234567")
        self.assertRejected(clean_mob_no, "123456", MOB_NO_MESSAGE)

    def test_fifteen_digits_are_the_maximum(self):
        self.assertEqual(clean_mob_no("123456789012345"), "123456789012345")
        self.assertRejected(clean_mob_no, "1234567890123456", MOB_NO_MESSAGE)

    def test_separators_do_not_count_as_digits(self):
        self.assertRejected(clean_mob_no, "+12 34-56", MOB_NO_MESSAGE)

    def test_letters_are_rejected(self):
        for value in ("98765abcde", "CALL-ME-NOW", "98765 4321x"):
            with self.subTest(value=value):
                self.assertRejected(clean_mob_no, value, MOB_NO_MESSAGE)

    def test_plus_anywhere_but_the_start_is_rejected(self):
        for value in ("91+9876543210", "++919876543210"):
            with self.subTest(value=value):
                self.assertRejected(clean_mob_no, value, MOB_NO_MESSAGE)

    def test_integer_is_accepted_and_converted_to_text(self):
        self.assertEqual(clean_mob_no(9876543210), "9876543210")

    def test_booleans_floats_and_other_types_are_rejected(self):
        for value in (True, 9876543210.0, ["9876543210"]):
            with self.subTest(value=value):
                self.assertRejected(clean_mob_no, value, MOB_NO_MESSAGE)


class TransactionDatetimeTests(CleanerAssertions, SimpleTestCase):
    def test_offset_is_converted_to_utc(self):
        cleaned = clean_datetime("2024-09-24T21:00:00+05:30")
        self.assertEqual(cleaned, dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC))
        self.assertEqual(cleaned.utcoffset(), dt.timedelta(0))

    def test_negative_offset_can_move_the_date(self):
        self.assertEqual(clean_datetime("2024-12-31T22:00:00-05:00"), dt.datetime(2025, 1, 1, 3, 0, tzinfo=UTC))

    def test_without_offset_the_time_is_taken_as_utc(self):
        cleaned = clean_datetime("2024-09-24T15:30:00")
        self.assertEqual(cleaned, dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC))
        self.assertEqual(cleaned.utcoffset(), dt.timedelta(0))

    def test_z_suffix_means_utc(self):
        self.assertEqual(clean_datetime("2024-09-24T15:30:00Z"), dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC))

    def test_fractional_seconds_are_kept(self):
        self.assertEqual(
            clean_datetime("2024-09-24T15:30:00.250000Z"), dt.datetime(2024, 9, 24, 15, 30, 0, 250000, tzinfo=UTC)
        )

    def test_impossible_calendar_date_is_rejected(self):
        self.assertRejected(clean_datetime, "2024-02-30T10:00:00", DATETIME_MESSAGE)

    def test_impossible_hour_is_rejected(self):
        self.assertRejected(clean_datetime, "2024-09-24T25:00", DATETIME_MESSAGE)

    def test_text_that_is_not_a_datetime_is_rejected(self):
        for value in ("", "yesterday", "24/09/2024 15:30", "2024-09-24T15:30:00+99:00"):
            with self.subTest(value=value):
                self.assertRejected(clean_datetime, value, DATETIME_MESSAGE)

    def test_a_nul_character_anywhere_is_rejected(self):
        # Python 3.11's datetime.fromisoformat ignores whatever follows a NUL.
        for value in ("2024-09-24T15:30:00Z\x00", "2024-09-24T15:30:00\x00\x00", "2024-09-24T15:30:00+05:30\x00x"):
            with self.subTest(value=value):
                self.assertRejected(clean_datetime, value, DATETIME_MESSAGE)

    def test_year_before_1000_is_rejected(self):
        self.assertRejected(clean_datetime, "0999-12-31T23:59:59", DATETIME_RANGE_MESSAGE)

    def test_first_and_last_storable_instants_are_accepted(self):
        self.assertEqual(clean_datetime("1000-01-01T00:00:00"), dt.datetime(1000, 1, 1, tzinfo=UTC))
        self.assertEqual(clean_datetime("9999-12-31T23:59:59Z"), dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))

    def test_offset_that_moves_the_time_out_of_range_is_rejected(self):
        # 00:30 on 1 Jan 1000 at +05:30 is still in the year 999 in UTC.
        self.assertRejected(clean_datetime, "1000-01-01T00:30:00+05:30", DATETIME_RANGE_MESSAGE)
        # Past the end of year 9999 in UTC: Python's datetime itself overflows here.
        self.assertRejected(clean_datetime, "9999-12-31T23:00:00-05:00", DATETIME_RANGE_MESSAGE)

    def test_non_strings_are_rejected(self):
        for value in (1727191800, dt.datetime(2024, 9, 24, tzinfo=UTC), True, ["2024-09-24T15:30:00"]):
            with self.subTest(value=value):
                self.assertRejected(clean_datetime, value, DATETIME_MESSAGE)


class PincodeTests(CleanerAssertions, SimpleTestCase):
    def test_six_digits_are_accepted(self):
        self.assertEqual(clean_pincode("110001"), "110001")

    def test_surrounding_whitespace_is_trimmed(self):
        self.assertEqual(clean_pincode(" 560034 "), "560034")

    def test_integer_is_converted_to_text(self):
        self.assertEqual(clean_pincode(110001), "110001")

    def test_five_and_seven_digits_are_rejected(self):
        for value in ("11000", "1100011", 11000, 1100011):
            with self.subTest(value=value):
                self.assertRejected(clean_pincode, value, PINCODE_MESSAGE)

    def test_leading_zero_is_rejected(self):
        self.assertRejected(clean_pincode, "012345", PINCODE_MESSAGE)

    def test_letters_and_other_types_are_rejected(self):
        for value in ("11000A", "110 001", "", True, 110001.0, ["110001"]):
            with self.subTest(value=value):
                self.assertRejected(clean_pincode, value, PINCODE_MESSAGE)


class StateTests(CleanerAssertions, SimpleTestCase):
    def test_surrounding_whitespace_is_trimmed(self):
        self.assertEqual(clean_state("  Punjab  "), "Punjab")

    def test_inner_whitespace_is_collapsed_to_one_space(self):
        self.assertEqual(clean_state("Tamil \t  Nadu"), "Tamil Nadu")

    def test_case_is_kept_as_sent(self):
        self.assertEqual(clean_state("gujRAT"), "gujRAT")

    def test_fifty_characters_are_accepted(self):
        self.assertEqual(clean_state("s" * 50), "s" * 50)

    def test_fifty_one_characters_are_rejected(self):
        self.assertRejected(clean_state, "s" * 51, "Enter a state of 1 to 50 characters.")

    def test_blank_is_rejected(self):
        for value in ("", "    "):
            with self.subTest(value=value):
                self.assertRejected(clean_state, value, "Enter a state of 1 to 50 characters.")

    def test_non_strings_are_rejected(self):
        self.assertRejected(clean_state, 7, "Enter a state as text.")

    def test_matching_key_ignores_case(self):
        self.assertEqual(validation.state_key_for(clean_state("PUNJAB")), validation.state_key_for("punjab"))

    def test_matching_key_is_the_whole_folded_state_however_much_folding_lengthens_it(self):
        # "ß" folds to "ss" and "ΐ" to three characters: keys cut at 50 would make these one state.
        self.assertEqual(validation.state_key_for(clean_state("ß" * 30 + "a")), "ss" * 30 + "a")
        self.assertNotEqual(validation.state_key_for("ß" * 30 + "a"), validation.state_key_for("ß" * 30 + "b"))
        longest = clean_state("ΐ" * 50)
        self.assertEqual(len(validation.state_key_for(longest)), 150)
        self.assertEqual(validation.STATE_KEY_MAX_LENGTH, 150)

    def test_no_character_folds_to_more_than_the_key_allows_for(self):
        # Holds for the Unicode version of this Python; a newer one that folds longer fails here.
        longest_fold = max(len(chr(code).casefold()) for code in range(0x110000) if not 0xD800 <= code <= 0xDFFF)
        self.assertLessEqual(longest_fold * validation.STATE_MAX_LENGTH, validation.STATE_KEY_MAX_LENGTH)


class FastPathTests(SimpleTestCase):
    """Each cleaner with a fast path for the common spelling answers every value as its general
    path does: the same value (of the same type and, for amounts, the same decimal places) or
    the same error. The values sit on both sides of each fast path's checks."""

    SPELLINGS = {
        clean_customer_id: [
            1, 20544, 0, -1, 2**63 - 1, 2**63, True, False, 1.0, "1", "20544", "0", "00", "01", "-1", "+1",
            " 12", "12 ", "1 2", "", "9223372036854775807", "9223372036854775808", "0009223372036854775807",
            "99999999999999999999", "١٢", "²", "１２", "1.0", "1e3", None, [1],
        ],
        clean_transaction_amount: [
            "599.30", "0.01", "0.00", "00.00", "999999999999.99", "1000000000000.00", "0999999999999.99",
            "01.50", "1.5", "1.50", "1.500", "1.", ".50", " 1.50", "1.50 ", "+1.50", "-1.50", "1e2", "1.50e0",
            "١.٥٠", "1,000.00", "NaN", "", 1, 0, 1.5, Decimal("1.5"), Decimal("1.50"), Decimal("0.00"), True, None,
        ],
        clean_mob_no: [
            "9876543210", "1234567", "123456", "123456789012345", "1234567890123456", "+919876543210",
            "98765 43210", "98765-43210", " 9876543210", "9876543210 ", "0000000", "９８７６５４３２１０",
            "٩٨٧٦٥٤٣٢١٠", "", 9876543210, -9876543210, True, None,
        ],
        clean_pincode: [
            "110001", "011000", "000000", "11000", "1100011", " 110001", "110001 ", "11000a", "١١٠٠٠١",
            "１１０００１", "+11000", "", 110001, 11000, True, None,
        ],
    }

    def test_the_table_names_every_fast_path(self):
        self.assertEqual(set(validation.FAST_PATHS), set(self.SPELLINGS))

    def test_fast_and_general_paths_agree(self):
        for cleaner, general in validation.FAST_PATHS.items():
            for value in self.SPELLINGS[cleaner]:
                with self.subTest(cleaner=cleaner.__name__, value=value):
                    self.assertEqual(self._answer(cleaner, value), self._answer(general, value))

    def test_the_common_spellings_take_the_fast_path(self):
        # Each cleaner's general path replaced by one that fails: the common spellings still pass.
        common = {clean_customer_id: "20544", clean_transaction_amount: "599.30", clean_mob_no: "9876543210",
                  clean_pincode: "110001"}
        for cleaner, value in common.items():
            general = validation.FAST_PATHS[cleaner]
            with self.subTest(cleaner=cleaner.__name__), mock.patch.object(validation, general.__name__, side_effect=AssertionError):
                self.assertEqual(str(cleaner(value)), value)

    @staticmethod
    def _answer(cleaner, value):
        try:
            cleaned = cleaner(value)
        except ValidationError as exc:
            return ("error", exc.messages, exc.code)
        return ("value", type(cleaned), str(cleaned))


class ParseTransactionRecordTests(SimpleTestCase):
    def test_valid_record_is_normalised(self):
        parsed = parse_transaction_record(
            {
                "customer_id": "101",
                "name": "  amit ",
                "transaction_amount": "1500.75",
                "mob_no": "+91 98765-43210",
                "transaction_datetime": "2024-09-24T21:00:00+05:30",
                "pincode": 110001,
                "state": " Tamil   Nadu ",
            }
        )
        self.assertEqual(
            parsed,
            TransactionRecord(
                customer_id=101,
                name="amit",
                transaction_amount=Decimal("1500.75"),
                mob_no="919876543210",
                transaction_datetime=dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC),
                pincode="110001",
                state="Tamil Nadu",
            ),
        )
        self.assertEqual(parsed.key, (101, dt.datetime(2024, 9, 24, 15, 30, tzinfo=UTC)))
        self.assertEqual(parsed.state_key, "tamil nadu")

    def test_unknown_fields_are_ignored(self):
        parsed = parse_transaction_record(record(loyalty_tier="gold", id=999, note=None))
        self.assertEqual(parsed, parse_transaction_record(record()))

    def test_any_mapping_parses_as_a_dict_does(self):
        # A dict takes a shorter way (validation's fast path); other mappings the long one.
        from types import MappingProxyType

        raw = record(name="  Ana  Rao ", pincode=560001, transaction_amount="12.50")
        self.assertEqual(parse_transaction_record(MappingProxyType(raw)), parse_transaction_record(raw))
        self.assertEqual(parse_transaction_record(raw).name, "Ana Rao")

    def test_each_missing_field_is_reported_as_required(self):
        for field in validation.TRANSACTION_FIELDS:
            with self.subTest(field=field):
                raw = record()
                del raw[field]
                with self.assertRaises(RecordInvalid) as caught:
                    parse_transaction_record(raw)
                self.assertEqual(caught.exception.errors, {field: [REQUIRED_MESSAGE]})

    def test_each_null_field_is_reported_as_not_nullable(self):
        for field in validation.TRANSACTION_FIELDS:
            with self.subTest(field=field):
                with self.assertRaises(RecordInvalid) as caught:
                    parse_transaction_record(record(**{field: None}))
                self.assertEqual(caught.exception.errors, {field: [NULL_MESSAGE]})

    def test_every_broken_field_is_reported_at_once(self):
        raw = record(customer_id=0, pincode="012345")
        del raw["name"]
        with self.assertRaises(RecordInvalid) as caught:
            parse_transaction_record(raw)
        self.assertEqual(
            caught.exception.errors,
            {"customer_id": [CUSTOMER_ID_MESSAGE], "name": [REQUIRED_MESSAGE], "pincode": [PINCODE_MESSAGE]},
        )

    def test_non_mapping_is_rejected_as_a_whole(self):
        for value in ([record()], "a record", 42, None):
            with self.subTest(value=value):
                with self.assertRaises(RecordInvalid) as caught:
                    parse_transaction_record(value)
                self.assertEqual(
                    caught.exception.errors,
                    {"non_field_errors": ["Expected a transaction record (a JSON object)."]},
                )
