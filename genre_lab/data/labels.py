"""LabelSpace: the ordered genre names, names <-> ids, multi-hot encode/decode.

Single-label data is treated as multi-label with exactly one genre per row (BCE over all genres, as
the notebook did), so one representation serves both. The LabelSpace travels in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def parse_label_cell(cell: Any, multi_label: bool, sep: str = "|") -> list[str]:
    """One CSV cell -> list of genre names, stripped, in the order written, without duplicates.

    An empty or NaN cell gives ``[]``; the caller decides whether that is an error.
    """
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return []
    text = str(cell)
    parts = text.split(sep) if multi_label else [text]
    names: list[str] = []
    for part in parts:
        name = part.strip()
        if name and name not in names:
            names.append(name)
    return names


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSpace:
        return cls(tuple(data["names"]), bool(data.get("multi_label", False)))
