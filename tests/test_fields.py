"""Our model fields, as the migrated database holds them."""

from __future__ import annotations

from django.apps import apps
from django.db import connection
from django.test import TestCase

from transactions.fields import ExactMatchCharField
from transactions.sql import operations
from transactions.validation import STATE_KEY_MAX_LENGTH


def state_key_tables() -> list[str]:
    return sorted(
        model._meta.db_table
        for model in apps.get_app_config("transactions").get_models()
        if any(field.name == "state_key" for field in model._meta.fields)
    )


class StateKeyColumnTests(TestCase):
    def column_of(self, table: str) -> tuple[int, str | None]:
        """(length, collation) of the table's state_key column; None for the database's default."""
        with connection.cursor() as cursor:
            if connection.vendor == "mysql":
                # Django's introspection reports a column's collation as None when it is the
                # table's; the catalogue says what it is.
                cursor.execute(
                    "SELECT character_maximum_length, collation_name FROM information_schema.columns"
                    " WHERE table_schema = DATABASE() AND table_name = %s AND column_name = 'state_key'",
                    [table],
                )
                return cursor.fetchone()
            column = next(c for c in connection.introspection.get_table_description(cursor, table) if c.name == "state_key")
            return column.display_size, column.collation

    def test_every_state_key_column_holds_a_whole_folded_state_and_compares_exactly(self):
        tables = state_key_tables()
        self.assertEqual(
            tables,
            ["transactions_customerpincodetotal", "transactions_historicaltransaction",
             "transactions_pincodetotal", "transactions_pincodetotaldelta", "transactions_statespelling",
             "transactions_transaction"],
        )
        for table in tables:
            with self.subTest(table=table):
                self.assertEqual(self.column_of(table), (STATE_KEY_MAX_LENGTH, operations(connection).exact_collation))

    def test_the_field_names_the_exact_collation_of_each_database_and_keeps_one_chosen(self):
        field = ExactMatchCharField(max_length=10)
        self.assertEqual(field.db_parameters(connection)["collation"], operations(connection).exact_collation)
        chosen = ExactMatchCharField(max_length=10, db_collation="und-x-icu")
        self.assertEqual(chosen.db_parameters(connection)["collation"], "und-x-icu")
