"""Sweeps: the end-of-multirun summary, and our Optuna sweeper (a Hydra plugin in hydra_plugins/genre_lab_sweeper).

Only the summary is imported here: Optuna is an optional extra (`pip install genre_lab[optuna]`).
"""

from genre_lab.sweeps.summary import SweepSummary

__all__ = ["SweepSummary"]
