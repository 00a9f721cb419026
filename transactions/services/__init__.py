"""Writes. One module per concern; the public names are re-exported here so callers keep
writing ``services.ingest_transactions(...)``.

- ``ingest``: storing transactions, each key once (duplicates and conflicts told apart);
- ``batch_parts``: an API batch validated and stored in parts at once, committed as one;
- ``totals``: the running totals the reports read, and the rule that keeps them;
- ``corrections``: operators' corrections and deletions, with their audit trail;
- ``imports``: file imports, chunk by chunk, resumable;
- ``roles``: the groups behind the three roles (created after every migrate, see apps.py);
- ``segments``: saved range-report queries (customer segments) and their export snapshots.
"""

from .batch_parts import ingest_batch
from .corrections import TransactionKeyTaken, delete_transactions, save_corrected_customer, save_corrected_transaction
from .imports import (
    ImportTakenOver,
    import_format_for,
    prune_imports,
    rejection_reason,
    requeue_stale_imports,
    run_import,
    start_import,
)
from .ingest import CommitConditionFailed, IngestOutcome, MAX_INGEST_ATTEMPTS, ingest_transactions, is_transient_lock_error
from .roles import ROLE_PERMISSIONS, assign_role, ensure_roles
from .segments import create_segment, record_segment_export
from .totals import fold_summary_deltas, recompute_customer_totals, recompute_summary_totals

__all__ = [
    "CommitConditionFailed", "IngestOutcome", "ImportTakenOver", "MAX_INGEST_ATTEMPTS", "ROLE_PERMISSIONS", "TransactionKeyTaken",
    "assign_role", "create_segment", "delete_transactions", "ensure_roles", "import_format_for", "ingest_transactions",
    "fold_summary_deltas", "ingest_batch", "is_transient_lock_error", "prune_imports", "recompute_customer_totals",
    "recompute_summary_totals", "record_segment_export", "rejection_reason", "requeue_stale_imports", "run_import",
    "save_corrected_customer", "save_corrected_transaction", "start_import",
]
