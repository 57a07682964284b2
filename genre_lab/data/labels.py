"""LabelSpace: the ordered genre names, names <-> ids, multi-hot encode/decode.

Single-label data is treated as multi-label with exactly one genre per row (BCE over all genres, as
the notebook did), so one representation serves both. The LabelSpace travels in every checkpoint.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# How spreadsheets and pandas write a missing value into a text cell; never a genre.
MISSING = frozenset({"nan", "<na>", "null", "n/a"})


def clean_label(text: str) -> str:
    """Strip and collapse inner whitespace: ``' Science  Fiction '`` -> ``'Science Fiction'``."""
    return " ".join(text.split())


def label_key(name: str) -> str:
    """What two spellings of one genre share: whitespace-collapsed, case-folded."""
    return clean_label(name).casefold()


def is_missing(value: Any) -> bool:
    """An empty cell, NaN/None, or a missing-value marker such as ``nan`` or ``NULL``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    text = clean_label(str(value))
    return not text or text.casefold() in MISSING


def parse_label_cell(cell: Any, multi_label: bool, sep: str = "|") -> list[str]:
    """One label cell -> list of genre names, whitespace-cleaned, in the order written, without duplicates. A
    list-valued cell (JSONL, Parquet, datasets) is the list of names itself, whatever ``multi_label`` says.

    An empty, NaN or ``nan``/``NULL`` cell (or part of a multi-label cell) gives no name; the caller
    decides whether a row without genres is an error.
    """
    if isinstance(cell, (list, tuple, np.ndarray)):  # JSONL, Parquet, datasets: the genres as a list
        parts = [str(part) for part in cell if not is_missing(part)]
    elif is_missing(cell):
        return []
    else:
        parts = str(cell).split(sep) if multi_label else [str(cell)]
    names: list[str] = []
    for part in parts:
        name = clean_label(part)
        if not is_missing(name) and name not in names:
            names.append(name)
    return names


def missing_mask(cells: pd.Series) -> pd.Series:
    """``is_missing`` of every cell, without a stripped copy of a million synopses: a long text that neither
    starts nor ends with whitespace is neither empty nor a missing-value marker."""
    def missing(cell: Any) -> bool:
        if isinstance(cell, str) and len(cell) > 16 and not (cell[0].isspace() or cell[-1].isspace()):
            return False
        return is_missing(cell)

    return pd.Series(np.fromiter(map(missing, cells), dtype=bool, count=len(cells)), index=cells.index)


def parse_label_column(cells: Iterable[Any], multi_label: bool, sep: str = "|") -> list[list[str]]:
    """``parse_label_cell`` of every cell. A text seen before is not parsed again and its rows share one list (a
    million rows hold a few dozen distinct label texts): callers build new lists, never change these."""
    parsed: dict[str, list[str]] = {}
    rows = []
    for cell in cells:
        if isinstance(cell, str):
            row = parsed.get(cell)
            if row is None:
                row = parsed[cell] = parse_label_cell(cell, multi_label, sep)
        else:
            row = parse_label_cell(cell, multi_label, sep)
        rows.append(row)
    return rows


def respell(rows: Iterable[Sequence[str]], spelling: Mapping[str, str]) -> list[list[str]]:
    """Rename genres per ``spelling`` (others unchanged), dropping repeats a merge creates within a row."""
    out = []
    for row in rows:
        names: list[str] = []
        for name in row:
            name = spelling.get(name, name)
            if name not in names:
                names.append(name)
        out.append(names)
    return out


def unify_spellings(rows: Sequence[Sequence[str]]) -> tuple[list[list[str]], dict[str, list[str]]]:
    """Genres that differ only by case/whitespace become one: the most frequent spelling (ties: first seen).

    Returns the respelled rows and ``{chosen spelling: all spellings merged into it}`` for merged genres.
    """
    counts = Counter(name for row in rows for name in row)  # insertion order = first seen
    variants: dict[str, list[str]] = {}
    for name in counts:
        variants.setdefault(label_key(name), []).append(name)
    spelling, merged = {}, {}
    for names in variants.values():
        chosen = max(names, key=counts.__getitem__)  # max keeps the first of equals
        spelling.update(dict.fromkeys(names, chosen))
        if len(names) > 1:
            merged[chosen] = names
    return (respell(rows, spelling) if merged else list(rows)), merged


@dataclass(frozen=True)
class LabelSpace:
    """Ordered genre names; id ``i`` is ``names[i]``."""

    names: tuple[str, ...]
    multi_label: bool = False

    def __post_init__(self) -> None:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"LabelSpace names must be unique, got {list(self.names)}")
        if len(self.names) < 2:
            raise ValueError(f"need at least 2 genres to classify, got {list(self.names)}")

    @classmethod
    def from_rows(cls, rows: Iterable[Sequence[str]], multi_label: bool) -> LabelSpace:
        """All genres seen in ``rows`` (lists of names), sorted for a stable id order."""
        return cls(tuple(sorted({name for row in rows for name in row})), multi_label)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def unknown(self, rows: Iterable[Sequence[str]]) -> list[str]:
        """Names in ``rows`` that are not part of this space (sorted)."""
        known = set(self.names)
        return sorted({name for row in rows for name in row if name not in known})

    def respell(self, rows: Iterable[Sequence[str]]) -> list[list[str]]:
        """Rows with each genre in this space's spelling when it differs only by case/whitespace."""
        rows = [list(row) for row in rows]
        by_key = {label_key(name): name for name in self.names}
        return respell(rows, {name: by_key.get(label_key(name), name) for row in rows for name in row})

    def conform(self, rows: Iterable[Sequence[str]]) -> tuple[list[list[str]], list[str]]:
        """Labels of another file against this space (validation/test data, eval's CSV): the rows in this
        space's spellings, and the genres it does not know (the caller says what that means there)."""
        rows = self.respell(rows)
        return rows, self.unknown(rows)

    def encode(self, rows: Sequence[Sequence[str]]) -> np.ndarray:
        """Lists of names -> multi-hot float32 matrix ``[len(rows), len(self)]``."""
        index = self.index
        out = np.zeros((len(rows), len(self.names)), dtype=np.float32)
        for r, row in enumerate(rows):
            for name in row:
                if name not in index:
                    raise KeyError(f"genre {name!r} is not in the label space {list(self.names)}")
                out[r, index[name]] = 1.0
        return out

    def decode(self, multi_hot: np.ndarray) -> list[list[str]]:
        """Multi-hot (0/1 or bool) matrix -> lists of names in label-space order."""
        matrix = np.asarray(multi_hot).astype(bool)
        return [[self.names[i] for i in np.flatnonzero(row)] for row in matrix]

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "multi_label": self.multi_label}
