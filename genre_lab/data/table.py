"""A movie CSV as a table: check its columns, build the model text from a template, parse the labels, apply the
empty-text policy and the unique ids (files.py turns the file into a frame of strings).

A row becomes model text in one place, ``build_text`` (genre_lab/data/text_template.py, free of pandas so the ONNX
runtime shares it): training, eval, predict and the exported model all go through it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre_lab.data.files import COLUMN_TYPES, delimiter_hint, places
from genre_lab.data.formats import read_frame
from genre_lab.data.labels import missing_mask, parse_label_column, unify_spellings
from genre_lab.data.text_template import build_text, build_texts, template_fields  # noqa: F401 (re-exported)
from genre_lab.errors import GenreLabError, require_choice
from genre_lab.framework.progress import RowProgress

log = logging.getLogger(__name__)
TEXT_ROWS = 100_000  # rows whose texts are built at a time under a large table's progress bar


@dataclass(frozen=True)
class TableSpec:
    """Which columns hold what. Mirrors the data config."""

    text_template: str = "{synopsis} {movie_name}"
    label_column: str | None = "genre"
    multi_label: bool = False
    label_sep: str = "|"
    id_column: str | None = "id"
    # rows whose synopsis (first template column) is empty: "fail" lists them, "drop" skips them with a warning
    empty_text: str = "fail"
    # bytes that are not UTF-8: "fail" names the lines, "replace" decodes them as U+FFFD with a warning
    encoding_errors: str = "fail"
    # the files' format: auto (by extension or folder content) | csv | tsv | jsonl | parquet | dataset
    format: str = "auto"
    # how messages name the two policies above, so their hint is a key the running command takes: "data." in
    # train; eval and predict take them top-level ("")
    policy_prefix: str = field(default="data.", compare=False)

    def __post_init__(self) -> None:
        require_choice(self.empty_text, self.policy_key("empty_text"), ("fail", "drop"))
        require_choice(self.encoding_errors, self.policy_key("encoding_errors"), ("fail", "replace"))
        if not isinstance(self.text_template, str):
            raise GenreLabError(f"data.text_template={self.text_template!r} must be a text with column names in "
                                "braces, e.g. '{synopsis} {movie_name}'")
        if self.multi_label and (not isinstance(self.label_sep, str) or not self.label_sep):
            raise GenreLabError(f"data.label_sep={self.label_sep!r}: multi-label cells need a separator, e.g. '|'")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> TableSpec:
        """The spec from data settings (the data config, a checkpoint's datamodule hyper-parameters), by
        keyword; keys it does not hold take the defaults above, the one place they are defined."""
        return cls(**{f.name: settings[f.name] for f in fields(cls) if f.name in settings})

    @property
    def text_columns(self) -> list[str]:
        return template_fields(self.text_template)

    def policy_key(self, name: str) -> str:
        """The setting that holds row policy ``name`` in the running command (``data.empty_text`` in train)."""
        return f"{self.policy_prefix}{name}"

    @property
    def format_key(self) -> str:
        """The setting that chooses the input format: ``data.format`` in train, ``input_format`` in eval/predict."""
        return "data.format" if self.policy_prefix else "input_format"


def with_policies(spec: TableSpec, policies: Mapping[str, Any]) -> TableSpec:
    """``spec`` under the row policies of eval or predict, which take them as top-level keys (a None value keeps
    ``spec``'s, the run's own); messages then name those keys. Their input's format is their own ``input_format``
    (key ``format`` here; None: auto), never the training files'."""
    policies = dict(policies)
    fmt = policies.pop("format", None) or "auto"
    return replace(spec, **{key: value for key, value in policies.items() if value is not None}, format=fmt,
                   policy_prefix="")


@dataclass
class MovieTable:
    """A validated CSV: the frame, the model texts, and (if labelled) the genre lists per row."""

    path: Path
    frame: pd.DataFrame
    texts: list[str]
    labels: list[list[str]] | None

    @property
    def movie_ids(self) -> list[str]:
        return self.frame["__id__"].tolist()

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: np.ndarray, labels: list[list[str]] | None = None) -> MovieTable:
        """The rows where boolean ``keep`` holds (frame index, hence file line numbers, preserved)."""
        labels = self.labels if labels is None else labels
        return MovieTable(self.path, self.frame[keep], [t for t, k in zip(self.texts, keep, strict=True) if k],
                          None if labels is None else [r for r, k in zip(labels, keep, strict=True) if k])


def require_columns(frame: pd.DataFrame, needed: list[str], path: str | Path, fix: str,
                    lists: Collection[str] = ()) -> None:
    """Every ``needed`` column present and holding text (numbers count); those in ``lists`` may hold lists."""
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise GenreLabError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}."
                            f"{delimiter_hint(frame)} {fix}")
    types = frame.attrs.get(COLUMN_TYPES, {})
    for name in needed:
        is_list = name in types or (len(frame) and isinstance(frame[name].iloc[0], list))
        if name in types or (is_list and name not in lists):
            kind = types.get(name, "a list")
            raise GenreLabError(f"{path}: column {name!r} holds {kind}, but it must hold text or numbers"
                                + (" (or, for the label column, a list of genre names)" if name in lists else "")
                                + ". Flatten it into a text column, or point the settings at another column.")


def read_table(path: str | Path, spec: TableSpec, require_labels: bool = True) -> MovieTable:
    """Read and validate one data file (any format of formats.py) according to ``spec``."""
    path = Path(path)
    frame = read_frame(path, spec.encoding_errors, spec.policy_key("encoding_errors"), spec.format, spec.format_key)
    needed = list(spec.text_columns)
    has_labels = spec.label_column is not None and spec.label_column in frame.columns
    if has_labels or (require_labels and spec.label_column is not None):
        needed.append(spec.label_column)
    if spec.id_column in frame.columns:
        needed.append(spec.id_column)
    require_columns(frame, needed, path, "Rename them or set data.text_template / data.label_column to the "
                    "columns you have.", lists=[spec.label_column])
    if frame.empty:
        raise GenreLabError(f"{path}: no data rows (header only, or an empty table)")
    frame = without_empty_text(frame, path, spec)
    texts = model_texts(frame, spec)
    # the texts hold what the model needs of those columns: the frame keeps ids, labels and line numbers only
    frame = frame.drop(columns=[c for c in spec.text_columns if c not in (spec.id_column, spec.label_column)])
    frame["__id__"] = frame[spec.id_column] if spec.id_column in frame.columns else frame.index.astype(str)
    if spec.id_column in frame.columns:
        check_unique_ids(frame, path, spec.id_column)
    labels = read_labels(frame, path, spec) if has_labels else None
    return MovieTable(path=path, frame=frame, texts=texts, labels=labels)


def model_texts(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Every row's model text (``build_texts``); a large table's ``TEXT_ROWS`` at a time under a progress bar."""
    columns = {c: frame[c].tolist() for c in spec.text_columns}
    texts: list[str] = []
    with RowProgress(len(frame), "building texts", enabled=len(frame) > TEXT_ROWS) as bar:
        for start in range(0, len(frame), TEXT_ROWS):
            texts += build_texts({c: v[start:start + TEXT_ROWS] for c, v in columns.items()}, spec.text_template)
            bar.advance(len(texts) - bar.done)
    return texts


def without_empty_text(frame: pd.DataFrame, path: Path, spec: TableSpec) -> pd.DataFrame:
    """Rows with an empty (or ``nan``) synopsis: an error listing them, or dropped (``empty_text=drop``)."""
    first = spec.text_columns[0]
    empty = missing_mask(frame[first])
    if not empty.any():
        return frame
    if spec.empty_text == "fail":
        raise GenreLabError(f"{path}: empty {first!r} on {places(empty, frame)}. Fill or remove "
                            f"those rows, or set {spec.policy_key('empty_text')}=drop to skip them.")
    if empty.all():
        raise GenreLabError(f"{path}: every row has an empty {first!r}; nothing left to use")
    log.warning("%s: dropped %d row(s) with an empty %r (%s=drop): %s",
                path, int(empty.sum()), first, spec.policy_key("empty_text"), places(empty, frame))
    return frame[~empty]  # the index keeps each row's file line


def check_unique_ids(frame: pd.DataFrame, path: Path, column: str) -> None:
    repeated = frame[column].duplicated(keep=False)
    if repeated.any():
        values = list(dict.fromkeys(frame.loc[repeated, column]))[:5]
        raise GenreLabError(f"{path}: duplicate {column!r} values {values} on "
                            f"{places(repeated, frame)}. Ids must be unique: fix or remove the repeated rows, "
                            "or set data.id_column=null to number the rows instead.")


def read_labels(frame: pd.DataFrame, path: Path, spec: TableSpec) -> list[list[str]]:
    """Genre lists per row; an empty cell is an error; spellings differing only by case/spaces are merged."""
    labels = parse_label_column(frame[spec.label_column], spec.multi_label, spec.label_sep)
    unlabelled = pd.Series([not row for row in labels], index=frame.index)
    if unlabelled.any():
        raise GenreLabError(f"{path}: empty or missing {spec.label_column!r} on {places(unlabelled, frame)}. "
                            "Label or remove those rows.")
    several = pd.Series([len(row) > 1 for row in labels], index=frame.index)
    if not spec.multi_label and several.any():
        raise GenreLabError(f"{path}: {spec.label_column!r} holds a list of several genres on "
                            f"{places(several, frame)}, and data.multi_label=false. Set data.multi_label=true "
                            "for multi-label data, or give one genre per row.")
    labels, merged = unify_spellings(labels)
    if merged:
        log.warning("%s: genre names differing only by case/spaces were merged: %s", path,
                    "; ".join(f"{names} -> {chosen!r}" for chosen, names in merged.items()))
    return labels


def drop_genres(table: MovieTable, genres: Collection[str], reason: str) -> MovieTable:
    """Remove ``genres`` from every row; a row left without a genre is dropped. Logs the counts."""
    gone = set(genres)
    labels = [[g for g in row if g not in gone] for row in table.labels]
    keep = np.array([bool(row) for row in labels])
    touched = sum(len(new) != len(old) for new, old in zip(labels, table.labels, strict=True))
    if not keep.any():
        raise GenreLabError(f"{table.path}: every row has only genres {sorted(gone)} ({reason}); nothing left")
    log.warning("%s: ignoring genre(s) %s (%s): %d row(s) dropped, %d more keep their other genres",
                table.path, sorted(gone), reason, int((~keep).sum()), touched - int((~keep).sum()))
    return table.subset(keep, labels)
