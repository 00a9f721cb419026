"""Key the per-customer-and-pincode totals by (customer, state, pincode) instead of an id.

Django can't change a table's primary key in place, so the rows move to a new table keyed so,
which then takes the old one's name (see ``models.CustomerPincodeTotal`` for why). The rank
index is dropped from the old table first: PostgreSQL and SQLite name indexes per schema, not
per table. Going back moves them to a table keyed by id again.
"""

from decimal import Decimal

import django.db.models.deletion
import transactions.fields
from django.db import migrations, models


def _copy(apps, schema_editor, *, source: str, target: str) -> None:
    """Every row, in one INSERT ... SELECT (standard SQL, the tables' own quoted names)."""
    quote = schema_editor.connection.ops.quote_name
    source, target = (apps.get_model("transactions", name) for name in (source, target))
    columns = ", ".join(quote(source._meta.get_field(name).column)
                        for name in ("customer", "state_key", "pincode", "state", "total_amount", "transaction_count"))
    with schema_editor.connection.cursor() as cursor:  # data, not schema: a cursor, in RunPython's transaction
        cursor.execute(
            f"INSERT INTO {quote(target._meta.db_table)} ({columns}) SELECT {columns} FROM {quote(source._meta.db_table)}"
        )


def copy_totals(apps, schema_editor):
    _copy(apps, schema_editor, source="CustomerPincodeTotal", target="CustomerPincodeTotalByKey")


def copy_totals_back(apps, schema_editor):
    _copy(apps, schema_editor, source="CustomerPincodeTotalByKey", target="CustomerPincodeTotal")


class Migration(migrations.Migration):

    dependencies = [
        ("transactions", "0012_import_chunk_in_progress"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="customerpincodetotal", name="pincode_total_rank_idx"),
        migrations.CreateModel(
            name="CustomerPincodeTotalByKey",
            fields=[
                ("pk", models.CompositePrimaryKey(
                    "customer", "state_key", "pincode", blank=True, editable=False, primary_key=True, serialize=False)),
                ("state_key", transactions.fields.ExactMatchCharField(max_length=150)),
                ("state", models.CharField(max_length=50)),
                ("pincode", models.CharField(max_length=6)),
                ("total_amount", models.DecimalField(decimal_places=2, default=Decimal("0"), max_digits=20)),
                ("transaction_count", models.PositiveIntegerField(default=0)),
                ("customer", models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="+", to="transactions.customer")),
            ],
            options={
                "indexes": [models.Index(fields=["state_key", "pincode", "-total_amount", "customer"],
                                         name="pincode_total_rank_idx")],
            },
        ),
        migrations.RunPython(copy_totals, copy_totals_back, elidable=False),
        migrations.DeleteModel(name="CustomerPincodeTotal"),
        migrations.RenameModel(old_name="CustomerPincodeTotalByKey", new_name="CustomerPincodeTotal"),
        migrations.AlterField(
            model_name="customerpincodetotal",
            name="customer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="pincode_totals", to="transactions.customer"),
        ),
    ]
