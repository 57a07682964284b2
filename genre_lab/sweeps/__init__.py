"""Sweeps: the end-of-multirun summary, and our Optuna sweeper (a Hydra plugin in hydra_plugins/genre_lab_sweeper).

Only the summary is imported here: Optuna is an optional extra (`pip install genre_lab[optuna]`).
"""

from genre_lab.sweeps.summary import SweepSummary, print_frame

__all__ = ["SweepSummary", "print_frame"]


def __getattr__(name: str) -> object:
    # names earlier versions exported here: say what replaced them
    if name == "print_table":
        raise AttributeError("genre_lab.sweeps.print_table(frame, columns, title) is now genre_lab.sweeps.print_frame; "
                             "genre_lab.scoring.report.print_table prints rows of dicts")
    raise AttributeError(f"module 'genre_lab.sweeps' has no attribute {name!r}")
