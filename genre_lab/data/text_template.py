"""A row to model text: the one ``build_text`` that training, eval, predict and the ONNX runtime (genre_lab/serving)
share. Plain Python, so the runtime imports it where pandas and torch are not installed."""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from genre_lab.checks import GenreLabError


def template_fields(template: str) -> list[str]:
    """Column names a ``str.format`` template refers to, in order, without repeats."""
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:  # e.g. an unclosed brace
        raise GenreLabError(f"text template {template!r} is not valid ({err}); write column names in braces, "
                            "e.g. '{synopsis} {movie_name}', and double a literal brace ({{ or }})") from None
    for _, name, _, _ in parsed:
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


def build_texts(columns: Mapping[str, Sequence[Any]], template: str) -> list[str]:
    """``build_text`` for every row of ``columns`` (one sequence per template column): the same texts, without a
    dict per row (a table's set-up on a million rows)."""
    names = template_fields(template)
    filled = template.format_map({name: "\x00" for name in names})
    if filled.count("\x00") != len(names) or "{" in filled:  # a field used twice or with a format spec
        rows = zip(*(columns[n] for n in names), strict=True)
        return [build_text(dict(zip(names, row, strict=True)), template) for row in rows]
    pieces = filled.split("\x00")  # the literal text around the fields, in order
    order = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    bare = strip_is_redundant(pieces)
    cleaned = [values if bare and all(type(v) is str for v in values) else list(map(_clean, values))
               for values in (columns[n] for n in order)]
    return [" ".join(fill(pieces, row).split()) for row in zip(*cleaned, strict=True)]


def strip_is_redundant(pieces: list[str]) -> bool:
    """Whether every field sits between whitespace or at an end of the text, where the whitespace collapse
    (split, join) drops what stripping each value would: text cells then need no cleaning."""
    ends = (pieces[0][-1:].isspace() or not pieces[0]) and (pieces[-1][:1].isspace() or not pieces[-1])
    return ends and all(p[:1].isspace() and p[-1:].isspace() for p in pieces[1:-1])


def fill(pieces: list[str], values: Sequence[str]) -> str:
    if len(values) == 2:  # the usual "{synopsis} {movie_name}"
        return pieces[0] + values[0] + pieces[1] + values[1] + pieces[2]
    out = [pieces[0]]
    for value, piece in zip(values, pieces[1:], strict=True):
        out += (value, piece)
    return "".join(out)


def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()
