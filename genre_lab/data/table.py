"""Read a movie CSV, check its columns, build the model text from a template, parse the labels.

This is the one place that turns a row into model text (``build_text``): training, eval and predict
all go through it.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from genre_lab.data.labels import parse_label_cell
from genre_lab.errors import GenreLabError

DOWNLOAD_HINT = (
    "For the movie-genre-prediction data run `python scripts/download_data.py`; with no internet use "
    "`experiment=quickstart` (bundled sample) or point data.train_csv=... at your own CSV."
)


@dataclass(frozen=True)
class TableSpec:
    """Which columns hold what. Mirrors the data config."""

    text_template: str = "{synopsis} {movie_name}"
    label_column: str | None = "genre"
    multi_label: bool = False
    label_sep: str = "|"
    id_column: str | None = "id"

    @property
    def text_columns(self) -> list[str]:
        return template_fields(self.text_template)


@dataclass
class MovieTable:
    """A validated CSV: the frame, the model texts, and (if labelled) the genre lists per row."""

    path: Path
    frame: pd.DataFrame
    texts: list[str]
    labels: list[list[str]] | None

    @property
    def ids(self) -> list[str]:
        return self.frame["__id__"].tolist()

    def __len__(self) -> int:
        return len(self.texts)


def template_fields(template: str) -> list[str]:
    """Column names a ``str.format`` template refers to, in order, without repeats."""
    fields: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise GenreLabError(f"text template {template!r}: use column names in braces, e.g. {{synopsis}}")
        if name not in fields:
            fields.append(name)
    if not fields:
        raise GenreLabError(f"text template {template!r} names no column; e.g. '{{synopsis}} {{movie_name}}'")
    return fields


def build_text(row: Mapping[str, Any], template: str) -> str:
    """Fill the template from a row; missing/NaN values become empty; whitespace is collapsed."""
    values = {name: _clean(row.get(name)) for name in template_fields(template)}
    return " ".join(template.format_map(values).split())


def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def line_numbers(mask: pd.Series, limit: int = 10) -> str:
    """File line numbers (header is line 1) of the rows where ``mask`` holds, shortened."""
    lines = [int(i) + 2 for i in mask[mask].index]
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f", … ({len(lines)} rows)" if len(lines) > limit else "")


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV as strings; missing file or unparsable content -> GenreLabError."""
    path = Path(path)
    if not path.is_file():
        raise GenreLabError(f"data file not found: {path}. {DOWNLOAD_HINT}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise GenreLabError(f"{path}: the file is empty; expected a CSV with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise GenreLabError(f"{path}: not a readable CSV ({err}). Save it as UTF-8 comma-separated.") from None
    return frame.reset_index(drop=True)


def read_table(path: str | Path, spec: TableSpec, require_labels: bool = True) -> MovieTable:
    """Read and validate one CSV according to ``spec``."""
    path = Path(path)
    frame = read_csv(path)
    needed = list(spec.text_columns)
    has_labels = spec.label_column is not None and spec.label_column in frame.columns
    if require_labels and spec.label_column is not None:
        needed.append(spec.label_column)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise GenreLabError(
            f"{path}: missing column(s) {missing}; found {list(frame.columns)}. "
            "Rename them or set data.text_template / data.label_column to the columns you have."
        )
    if frame.empty:
        raise GenreLabError(f"{path}: header only, no data rows")
    texts = [build_text(row, spec.text_template) for row in frame[spec.text_columns].to_dict("records")]
    first = spec.text_columns[0]
    empty = frame[first].str.strip() == ""
    if empty.any():
        raise GenreLabError(
            f"{path}: empty {first!r} on line(s) {line_numbers(empty)}. Fill or remove those rows."
        )
    frame["__id__"] = frame[spec.id_column] if spec.id_column in frame.columns else frame.index.astype(str)
    labels = None
    if has_labels:
        labels = [parse_label_cell(c, spec.multi_label, spec.label_sep) for c in frame[spec.label_column]]
        unlabelled = pd.Series([not row for row in labels], index=frame.index)
        if unlabelled.any():
            raise GenreLabError(
                f"{path}: empty {spec.label_column!r} on line(s) {line_numbers(unlabelled)}. "
                "Label or remove those rows."
            )
    return MovieTable(path=path, frame=frame, texts=texts, labels=labels)
