"""JSON Lines (one JSON object per line, optionally compressed) into formats.py's frame: scalar values as strings,
lists of scalars (a genre list) as lists of strings, anything else kept and its column's type recorded. A line that
is not a JSON object fails naming its line number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genre_lab.data.files import COLUMN_TYPES, RECORD_LINES, RECORD_UNIT, decode
from genre_lab.errors import GenreLabError


def scalar_text(value: Any) -> str:
    """A JSON scalar as the text a CSV cell would hold: null -> "", true -> "true", 7 -> "7"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # as Arrow writes 2.0, so a JSONL and a Parquet copy give the same text
    return value if isinstance(value, str) else str(value)


def cell(value: Any) -> tuple[Any, str | None]:
    """The cell's value as the frame holds it, and a type name when it is neither scalar nor a list of scalars."""
    if isinstance(value, list):
        if all(not isinstance(v, (list, dict)) for v in value):
            return [scalar_text(v) for v in value], None
        return value, "JSON list of lists or objects"
    if isinstance(value, dict):
        return value, "JSON object"
    return scalar_text(value), None


def parse_line(line: str, number: int, path: Path) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise GenreLabError(f"{path}: line {number} is not valid JSON ({err.msg} at column {err.colno}); fix or "
                            "remove that line (a JSON Lines file holds one JSON object per line)") from None
    if not isinstance(record, dict):
        hint = (" The file looks like one JSON array; write it as JSON Lines, e.g. pandas "
                "`pd.read_json(path).to_json(out, orient='records', lines=True)`.") if number == 1 else ""
        raise GenreLabError(f"{path}: line {number} holds a JSON {type(record).__name__}, not an object with the "
                            f"movie's columns.{hint}")
    return record


def read_jsonl(path: Path, errors: str, key: str) -> pd.DataFrame:
    """Read a JSON Lines file (``errors``/``key``: the encoding-errors policy and its setting, as for CSV)."""
    columns: dict[str, list[Any]] = {}
    types: dict[str, str] = {}
    lines: list[int] = []
    for number, line in enumerate(decode(path, errors, key).split("\n"), start=1):
        if not line.strip():
            continue
        record = parse_line(line, number, path)
        for name, value in record.items():
            column = columns.setdefault(name, [""] * len(lines))  # a key first seen late: earlier rows lack it
            column.append(None)
            column[-1], kind = cell(value)
            if kind:
                types.setdefault(name, kind)
        lines.append(number)
        for column in columns.values():  # keys this line lacks
            if len(column) < len(lines):
                column.append("")
    if not lines:
        raise GenreLabError(f"{path}: no JSON records; expected one JSON object per line")
    frame = pd.DataFrame(columns, dtype=object)
    frame.attrs.update({RECORD_LINES: np.asarray(lines), RECORD_UNIT: "line(s)", COLUMN_TYPES: types})
    return frame
