"""Scoring: metrics, thresholds, decision rules, plots, the results tail, terminal tables, the paired bootstrap
and seed groups: from probabilities and targets to every figure a run reports."""
