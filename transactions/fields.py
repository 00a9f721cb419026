"""Model fields of our own."""

from __future__ import annotations

from django.db import models

# The collation that compares text character by character, for each database that needs one
# named (``exact_collation`` of the vendor's module in transactions/sql/). MySQL's and MariaDB's usual defaults (utf8mb4_general_ci, utf8mb4_unicode_ci) ignore
# accents as well as case, and weigh every character outside the Basic Multilingual Plane alike
# (any two emoji are equal). utf8mb4_bin pads with spaces when comparing, which no key here can
# notice: the texts it holds are trimmed. SQLite's default (BINARY) is exact already, and so is
# any PostgreSQL database default: a deterministic collation calls two texts equal only when
# their bytes are, whatever order it sorts them in.


class ExactMatchCharField(models.CharField):
    """A CharField the database compares exactly: for keys the code has normalised itself.

    ``db_collation`` would name one collation for every database; this field asks for the exact
    collation of whichever database the schema is written for, so one migration serves all.
    """

    def db_parameters(self, connection):
        db_params = super().db_parameters(connection)
        if db_params["collation"] is None:
            from .sql import operations

            db_params["collation"] = operations(connection).exact_collation
        return db_params
