"""Names of the figures genre_lab reports, with no torch behind them: the runs table, compare and the
terminal tables import them without loading the metric code."""

# the figures every summary shows first (results view, runs table, sweep summary, compare)
HEADLINE = ("f1_micro", "f1_macro", "auroc_micro", "auroc_macro", "exact_match", "top1_accuracy")
# per-genre figures, logged as ``<stage>/<figure>/<genre>``
PER_CLASS = ("precision", "recall", "f1", "support")
