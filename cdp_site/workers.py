"""What a web worker process does once, after start-up (gunicorn.conf.py's post_worker_init)."""

import gc


def freeze_what_start_up_made() -> None:
    """Move what the worker holds after start-up and warm-up out of the garbage collector's reach.

    Modules, the URLconf, templates, settings: ~90,000 objects the process keeps for its life,
    which every full collection walked. A whole range answer (tens of thousands of rows, as
    many tuples) set one off every other request: 31 ms of a 365 ms answer, 0.5 ms once these
    are frozen (docs/PERFORMANCE.md). The in-process benchmarks call this too, after their own
    warm-up, to time what a worker does.
    """
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
