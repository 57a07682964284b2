"""Runs on disk: the run layout, finished runs of every kind, the run-directory guard and resume rules, the runs
table, stored probabilities and checkpoint rewriting."""
