"""Properties of the text template and of reading a table back, over generated rows (hypothesis)."""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genre_lab.data.labels import is_missing
from genre_lab.data.table import TableSpec, build_text, read_table, template_fields
from genre_lab.data.text_template import build_texts
from genre_lab.errors import GenreLabError

column = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10)
# Any printable text, braces, quotes, commas and line breaks included (no surrogates, no NUL).
value = st.text(st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(",\"'\n\t{}"), max_size=30)
# every character str.split() splits on, and neighbours it does not (ZERO WIDTH SPACE, NEXT LINE's neighbours)
spaces = st.sampled_from("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u205f"
                         "\u3000\x84\x86")
spaced = st.text(st.characters(blacklist_categories=["Cs", "Cc"]) | spaces, max_size=30)
literal = st.text(string.ascii_letters + " .:-|", max_size=5)


@given(st.lists(column, min_size=1, max_size=5), st.lists(literal, min_size=6, max_size=6))
def test_template_fields_are_the_named_columns_in_order(columns, literals):
    template = "".join(lit + "{" + c + "}" for lit, c in zip(literals, columns, strict=False)) + literals[-1]
    assert template_fields(template) == list(dict.fromkeys(columns))


@given(st.sampled_from(["{}", "{0}", "plain text", "{1} {synopsis}"]))
def test_templates_without_column_names_are_user_errors(template):
    with pytest.raises(GenreLabError, match="text template"):
        template_fields(template)


@given(st.dictionaries(column, value | st.none() | st.just(float("nan")), min_size=1, max_size=4), literal)
def test_build_text_fills_every_field_verbatim_with_collapsed_whitespace(row, sep):
    template = sep.join("{" + c + "}" for c in row)
    text = build_text(row, template)
    assert text == " ".join(text.split())  # no leading, trailing or repeated whitespace
    words = [w for v in row.values() if isinstance(v, str) for w in v.split()]
    assert all(w in text for w in words)  # braces inside values are kept, not formatted
    if not words:  # missing, NaN or blank values leave only the template's own text
        assert text == " ".join(sep.join("" for _ in row).split())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(value, value, st.sampled_from(["horror", " Horror", "ROMANCE ", "romance"])),
                min_size=2, max_size=8))
def test_a_written_table_reads_back_with_the_same_texts_and_labels(rows):
    frame = pd.DataFrame(rows, columns=["synopsis", "movie_name", "genre"])
    frame.insert(0, "id", [f"m{i}" for i in range(len(frame))])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "movies.csv"
        frame.to_csv(path, index=False)
        empty = frame.synopsis.map(is_missing)
        if empty.all():
            with pytest.raises(GenreLabError, match="synopsis"):
                read_table(path, TableSpec(empty_text="drop"))
            return
        table = read_table(path, TableSpec(empty_text="drop"))
    kept = frame[~empty]
    assert table.movie_ids == kept.id.tolist()
    assert table.texts == [build_text(r, "{synopsis} {movie_name}") for r in kept.to_dict("records")]
    assert [row[0].casefold() for row in table.labels] == [g.strip().casefold() for g in kept.genre]
    assert len({g for row in table.labels for g in row}) == len({g.strip().casefold() for g in kept.genre})


@given(st.lists(st.tuples(value | st.none(), value | st.just(float("nan"))) | st.tuples(spaced, spaced), min_size=1,
                max_size=5),
       st.sampled_from(["{synopsis} {movie_name}", "{movie_name}: {synopsis}",
                        "{movie_name}. {synopsis} ({movie_name})", "[{synopsis}]", "{synopsis}{movie_name}",
                        "Title: {movie_name}\n{synopsis}", "{{raw}} {synopsis}",
                        "{synopsis!r} {movie_name}"]))
def test_build_texts_of_columns_equals_build_text_of_each_row(rows, template):
    columns = {"synopsis": [r[0] for r in rows], "movie_name": [r[1] for r in rows]}
    expected = [build_text({"synopsis": s, "movie_name": m}, template) for s, m in rows]
    assert build_texts(columns, template) == expected
