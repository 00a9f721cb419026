"""Customers, their transactions, and the running totals the reports read.

The database keeps the invariants: a transaction is unique per (customer, transaction_datetime),
money is DECIMAL, times are stored in UTC. ``Customer`` and ``CustomerPincodeTotal`` carry
running totals that ``services.ingest_transactions`` updates in the same database transaction as
the rows it stores, so the all-time reports read a few thousand summary rows, not millions;
``MonthlyTotal`` and ``PincodeTotal`` do the same for the dashboard's whole-table figures.
"""

import datetime
import os
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils.functional import cached_property
from simple_history.models import HistoricalRecords

from . import validation
from .fields import ExactMatchCharField


class Customer(models.Model):
    """A customer, identified by the client's own ``customer_id``.

    ``name`` and ``mob_no`` are those of the customer's most recent transaction
    (``details_as_of`` is that transaction's datetime).
    """

    customer_id = models.BigIntegerField(primary_key=True)
    name = models.CharField(max_length=validation.NAME_MAX_LENGTH)
    mob_no = models.CharField("mobile number", max_length=validation.MOB_NO_MAX_DIGITS)
    details_as_of = models.DateTimeField(
        help_text="Datetime of the transaction the name and mobile number were taken from."
    )
    details_corrected_at = models.DateTimeField(
        null=True, blank=True, help_text="When an operator last corrected the name or mobile number."
    )
    total_amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))
    transaction_count = models.PositiveIntegerField(default=0)
    # Operators' corrections; the running totals are derived data and not worth a history row.
    history = HistoricalRecords(
        excluded_fields=["total_amount", "transaction_count", "details_as_of", "details_corrected_at"]
    )

    class Meta:
        permissions = [("view_pii", "Can see customers' full mobile numbers")]
        indexes = [
            # The all-time range report: WHERE total BETWEEN .. ORDER BY total DESC, id.
            # Descending so that ORDER BY total DESC, customer_id ASC reads the index in order.
            models.Index(fields=["-total_amount", "customer_id"], name="customer_total_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.customer_id})"


class Transaction(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="transactions")
    # Name and number as sent with this transaction; the customer row holds the current ones.
    name = models.CharField(max_length=validation.NAME_MAX_LENGTH)
    mob_no = models.CharField("mobile number", max_length=validation.MOB_NO_MAX_DIGITS)
    transaction_amount = models.DecimalField(max_digits=14, decimal_places=2)
    transaction_datetime = models.DateTimeField()
    pincode = models.CharField(max_length=6)
    state = models.CharField(max_length=validation.STATE_MAX_LENGTH)
    state_key = ExactMatchCharField(
        max_length=validation.STATE_KEY_MAX_LENGTH,
        help_text="The state case-folded, for case-insensitive matching.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "transaction_datetime"], name="unique_customer_transaction_time"
            ),
        ]
        indexes = [
            # Covering index of the windowed range report: per customer, sum amounts up to a time.
            models.Index(
                fields=["customer", "transaction_datetime", "transaction_amount"],
                name="txn_customer_window_idx",
            ),
            # Newest/oldest transaction (MIN/MAX) decide whether a window covers all time.
            models.Index(fields=["transaction_datetime"], name="txn_datetime_idx"),
            # Covering index of the windowed top-customers report: one state, by pincode.
            models.Index(
                fields=["state_key", "pincode", "customer", "transaction_datetime", "transaction_amount"],
                name="txn_state_pincode_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} @ {self.transaction_datetime:%Y-%m-%d %H:%M:%S}Z: {self.transaction_amount}"

    @property
    def key(self) -> tuple[int, "datetime.datetime"]:
        return (self.customer_id, self.transaction_datetime)


class CustomerPincodeTotal(models.Model):
    """All-time total of one customer's transactions in one pincode of one state.

    Keyed by what identifies it (customer, state, pincode), not by a surrogate id: every write
    adds to it with an upsert, which on InnoDB finds a row by its primary key directly, where a
    unique secondary key made it insert a clustered row, find the duplicate, undo the insert and
    then update, and lock the gap before the duplicate (so two writers for different customers
    could wait for each other). A file import's upserts took 30% less server time (migration 0013).
    """

    pk = models.CompositePrimaryKey("customer", "state_key", "pincode")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="pincode_totals")
    state_key = ExactMatchCharField(max_length=validation.STATE_KEY_MAX_LENGTH)
    state = models.CharField(max_length=validation.STATE_MAX_LENGTH)
    pincode = models.CharField(max_length=6)
    total_amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))
    transaction_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(
                fields=["state_key", "pincode", "-total_amount", "customer"],
                name="pincode_total_rank_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} in {self.pincode}, {self.state}: {self.total_amount}"


class MonthlyTotal(models.Model):
    """All transactions of one calendar month (UTC): how many, and their sum.

    Kept exact in the same database transaction as every write (ingest, an operator's
    correction or deletion), so the overview's chart reads a few dozen rows, not millions.
    A month whose transactions were all deleted keeps its row with zeros.
    """

    month = models.DateField(primary_key=True, help_text="The first day of the month.")
    transaction_count = models.BigIntegerField(default=0)
    total_amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))

    class Meta:
        ordering = ["month"]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.transaction_count} transactions, {self.total_amount}"


class PincodeTotal(models.Model):
    """All transactions of one pincode of one state, whoever the customer: how many, their sum.

    Kept exact like ``MonthlyTotal``; the overview's counts and the state picker read its few
    hundred rows instead of grouping the per-customer totals. ``state`` is a spelling of the
    state as sent with one of the transactions.
    """

    state_key = ExactMatchCharField(max_length=validation.STATE_KEY_MAX_LENGTH)
    state = models.CharField(max_length=validation.STATE_MAX_LENGTH)
    pincode = models.CharField(max_length=6)
    transaction_count = models.BigIntegerField(default=0)
    total_amount = models.DecimalField(max_digits=20, decimal_places=2, default=Decimal("0"))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state_key", "pincode"], name="unique_state_pincode"),
        ]

    def __str__(self) -> str:
        return f"{self.pincode}, {self.state}: {self.transaction_count} transactions, {self.total_amount}"


class StateSpelling(models.Model):
    """How many transactions of one state were sent in one exact spelling of its name.

    The state's one name (``selectors.state_names``) is its most common spelling: these few
    dozen rows, plus the pincode deltas not yet folded (each spelled as sent), answer it without
    grouping the per-customer totals. Folded from ``PincodeTotalDelta`` like ``PincodeTotal``
    (see ``services.totals``).
    """

    state_key = ExactMatchCharField(max_length=validation.STATE_KEY_MAX_LENGTH)
    state = ExactMatchCharField(max_length=validation.STATE_MAX_LENGTH)
    transaction_count = models.BigIntegerField(default=0)
    # The first delta that brought this spelling (0 if it was counted when the table was made):
    # of equally common spellings, the one sent first names the state.
    first_delta_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["state_key", "state"], name="unique_state_spelling"),
        ]

    def __str__(self) -> str:
        return f"{self.state}: {self.transaction_count} transactions"


class MonthlyTotalDelta(models.Model):
    """What one write added to (or took from) one month's ``MonthlyTotal``, not yet folded in.

    Writers append these instead of updating the month's row, which every writer would share
    (see ``services.totals``); the reports add them to ``MonthlyTotal`` when they read it, and
    the worker folds them in.
    """

    id = models.BigAutoField(primary_key=True)
    month = models.DateField(help_text="The first day of the month.")
    transaction_count = models.BigIntegerField()
    total_amount = models.DecimalField(max_digits=20, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.month:%Y-%m}: {self.transaction_count:+} transactions, {self.total_amount:+}"


class PincodeTotalDelta(models.Model):
    """What one write added to (or took from) one ``PincodeTotal``, not yet folded in.

    One row per spelling of the state (``state``, as sent), which ``StateSpelling`` counts.
    """

    id = models.BigAutoField(primary_key=True)
    state_key = ExactMatchCharField(max_length=validation.STATE_KEY_MAX_LENGTH)
    state = models.CharField(max_length=validation.STATE_MAX_LENGTH)
    pincode = models.CharField(max_length=6)
    transaction_count = models.BigIntegerField()
    total_amount = models.DecimalField(max_digits=20, decimal_places=2)

    def __str__(self) -> str:
        return f"{self.pincode}, {self.state}: {self.transaction_count:+} transactions, {self.total_amount:+}"


class CommittedBatch(models.Model):
    """The commit decision of a batch written in parts at once (``services.batch_parts``).

    Writer 0 inserts this row first in its branch of the two-phase commit, so the row is there
    exactly when that branch committed: the other branches are then committed too, by the
    writer or, after a crash, by ``batch_parts.recover_prepared_parts``. The writer deletes the
    row once every branch is committed; one left by a crash is pruned by the worker.
    """

    batch_id = models.CharField(max_length=32, primary_key=True)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"batch {self.batch_id}"


# Most file systems hold at most 255 bytes in a file name, however few characters they spell
# (85 Devanagari letters are 255 bytes); the margin leaves room for the "_" and 7 characters
# Django adds to a name already taken.
STORED_FILE_NAME_MAX_BYTES = 200
# An extension longer than this is not a format's, and is cut with the rest of the name.
STORED_FILE_EXTENSION_MAX_BYTES = 16


class _ImportFileStorage(FileSystemStorage):
    """Uploads live in their own folder, outside anything served as static or media files.

    The folder is read from ``settings.CDP_IMPORT_DIR`` when first used and again whenever that
    setting changes: the field builds its storage once, at import time, so a location fixed
    then would ignore ``override_settings`` and tests would write into the project's folder.
    """

    def get_valid_name(self, name: str) -> str:
        """Django's safe version of the uploaded name, cut to fit in bytes and never empty.

        Only the stored file's name; the job keeps the name as uploaded (``original_name``).
        """
        try:
            name = super().get_valid_name(name)
        except SuspiciousFileOperation:  # nothing usable left, e.g. a name of emoji only
            name = ""
        if not name or name.startswith("."):
            name = f"upload{name}"
        root, extension = os.path.splitext(name)
        if len(extension.encode()) > STORED_FILE_EXTENSION_MAX_BYTES:
            root, extension = name, ""
        room = STORED_FILE_NAME_MAX_BYTES - len(extension.encode())
        # Cut in bytes; a character cut in half is dropped whole.
        return root.encode()[:room].decode(errors="ignore") + extension

    @cached_property
    def base_location(self):
        return settings.CDP_IMPORT_DIR

    def _clear_cached_properties(self, setting, **kwargs):
        super()._clear_cached_properties(setting, **kwargs)
        if setting == "CDP_IMPORT_DIR":
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)


def _import_storage():
    return _ImportFileStorage()


class ImportJob(models.Model):
    """One uploaded file and the progress of its import.

    ``byte_offset`` and ``line_number`` mark the end of the last committed chunk; they are saved
    in the same database transaction as that chunk's rows and counts, so a worker that dies
    loses nothing and counts nothing twice: the next run continues from the marker.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    class Format(models.TextChoices):
        CSV = "csv"
        NDJSON = "ndjson"

    owner = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="import_jobs")
    file = models.FileField(storage=_import_storage, upload_to="%Y/%m/%d", max_length=255)
    original_name = models.CharField(max_length=255)
    format = models.CharField(max_length=6, choices=Format.choices)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=7, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    rows_processed = models.BigIntegerField(default=0)
    created = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    conflicts = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    byte_offset = models.BigIntegerField(default=0)
    line_number = models.BigIntegerField(default=0, help_text="Lines of the file read so far.")
    # The chunk after byte_offset while some of its parts are committed and some not
    # (services.imports, ``_Chunk.progress``): where it ends, how it was split, how far each part is.
    chunk_in_progress = models.JSONField(null=True, blank=True, editable=False)
    runner = models.CharField(max_length=36, blank=True, help_text="Which run owns the job now.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="import_owner_recent_idx")]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.original_name} ({self.status})"


class RejectedRow(models.Model):
    """A row of an imported file that broke a rule, kept so the user can fix and resend it."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="rejected_rows")
    line_number = models.BigIntegerField()
    raw = models.TextField()
    # Worked out while the file is read, when its fields (and so which one is the mobile number)
    # are known; the CSV header is not kept.
    raw_masked = models.TextField(help_text="The row with its mobile numbers masked (transactions.privacy).")
    reason = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "line_number"], name="unique_rejected_row_line"),
        ]
        ordering = ["job", "line_number"]


class Segment(models.Model):
    """A named, saved range-report query: the customers it matches are the segment's members.

    Membership is never stored: it is the range report for this query, asked again each time
    (``segment_selectors``), so a relative ``period`` ("last 90 days") moves with the calendar
    and the members follow every new or corrected transaction. Owned by its creator, visible to
    every analyst.
    """

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="segments",
        help_text="Who saved it; a segment outlives its owner's account, which others may rely on.",
    )
    # The query, as RangeReportQuerySerializer validates it (transactions.api.serializers). Bounds
    # reach 999,999,999,999,999,999.99 (20 digits); 30 leaves SQLite room, which keeps DECIMAL as
    # a float and reads that bound back as 1e18, one digit longer.
    min_amount = models.DecimalField(max_digits=30, decimal_places=2)
    max_amount = models.DecimalField(max_digits=30, decimal_places=2)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True, help_text="The query's time_period; empty: up to now.")
    period = models.CharField(
        max_length=20, blank=True, help_text="A window relative to today (selectors.PERIODS), instead of start/end."
    )
    state = models.CharField(max_length=validation.STATE_MAX_LENGTH, blank=True)
    pincode = models.CharField(max_length=6, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(min_amount__gte=0, max_amount__gte=models.F("min_amount")),
                name="segment_amounts_in_order",
            ),
            models.CheckConstraint(
                condition=models.Q(period="") | models.Q(start__isnull=True, end__isnull=True),
                name="segment_period_or_dates",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class SegmentExport(models.Model):
    """A segment's members at the moment someone exported them: the baseline of "entered" and
    "left" on the segment's page.

    ``member_ids`` holds the customer ids sorted, as the gaps between them in 64-bit integers,
    zlib-compressed (``segment_selectors.pack_member_ids``): 100,000 members take some 150 KB
    rather than a row each.
    """

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="exports")
    exported_by = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    exported_at = models.DateTimeField(auto_now_add=True)
    member_count = models.PositiveIntegerField()
    member_ids = models.BinaryField()

    class Meta:
        ordering = ["-exported_at", "-id"]
        indexes = [models.Index(fields=["segment", "-exported_at", "-id"], name="segment_export_latest_idx")]

    def __str__(self) -> str:
        return f"{self.segment} exported at {self.exported_at:%Y-%m-%d %H:%M} ({self.member_count} members)"
