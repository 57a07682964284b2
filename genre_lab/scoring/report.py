"""Terminal tables (rich): the one table printer, and the results view of train and eval built on it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from genre_lab.scoring.figure_names import HEADLINE


def cell(value: Any, digits: int = 4) -> str:
    """A table cell: floats to ``digits`` decimals, None and NaN blank."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], title: str, digits: int = 4,
                width: int = 120) -> None:
    """The one terminal table: ``columns`` of ``rows`` (dicts; a DataFrame's ``to_dict("records")``)."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:  # escaped: an override such as runs=[/a,/b] is text, not rich markup
        table.add_row(*(escape(cell(row.get(c), digits)) for c in columns))
    Console(width=width).print(table)


def print_results(title: str, metrics: Mapping[str, float], per_class: Sequence[Mapping[str, Any]],
                  prefix: str) -> None:
    """Per-genre precision/recall/F1/support, then the headline metrics of ``prefix`` (e.g. ``val``)."""
    print_table(per_class, ["genre", "precision", "recall", "f1", "support"], f"{title}: per-genre", digits=3,
                width=100)
    headline = [{"metric": f"{prefix}/{n}", "value": metrics[f"{prefix}/{n}"]} for n in HEADLINE
                if f"{prefix}/{n}" in metrics]
    print_table(headline, ["metric", "value"], f"{title}: headline", width=100)
    present = metrics.get(f"{prefix}/genres_present")
    if present is not None and int(present) < len(per_class):
        Console(width=100).print(f"macro averages over {int(present)} of {len(per_class)} genres present "
                                 "(genres without rows here are left out)")
