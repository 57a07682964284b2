"""Properties of label parsing and spelling normalisation, over generated cells (hypothesis)."""

from __future__ import annotations

import string

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from genre_lab.data.labels import (
    MISSING,
    LabelSpace,
    clean_label,
    is_missing,
    label_key,
    missing_mask,
    parse_label_cell,
    unify_spellings,
)

SEP = "|"
# Genre-like names: letters (some accented), digits, hyphens, inner spaces. Not all of Unicode: for letters such as
# the dotless i, upper() and casefold() disagree, and no genre list depends on that.
word = st.text(st.sampled_from(string.ascii_letters + string.digits + "-éüñçøåß"), min_size=1, max_size=8)
name = st.lists(word, min_size=1, max_size=3).map(" ".join).filter(lambda n: n.casefold() not in MISSING)
padding = st.sampled_from(["", " ", "  ", "\t"])
cell_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


def variant(draw_name: str, data: st.DataObject) -> str:
    """The same genre as a person might type it: other case, extra spaces."""
    spelled = data.draw(st.sampled_from([draw_name, draw_name.upper(), draw_name.lower(), draw_name.title()]))
    spelled = spelled.replace(" ", data.draw(st.sampled_from([" ", "  "])))
    return data.draw(padding) + spelled + data.draw(padding)


@given(cell_text, st.booleans())
def test_parsed_names_are_clean_unique_and_from_the_cell(cell, multi_label):
    names = parse_label_cell(cell, multi_label, SEP)
    assert len(names) == len(set(names))
    assert multi_label or len(names) <= 1
    for n in names:
        assert n == clean_label(n) and n and n.casefold() not in MISSING
        assert all(part in cell for part in n.split(" "))
        assert not multi_label or SEP not in n


@given(st.lists(name, min_size=1, max_size=6), st.data())
def test_joined_names_parse_back_whatever_the_spacing(names, data):
    unique = list(dict.fromkeys(clean_label(n) for n in names))
    cell = SEP.join(data.draw(padding) + n.replace(" ", "  ") + data.draw(padding) for n in unique)
    assert parse_label_cell(cell, True, SEP) == unique
    assert parse_label_cell(data.draw(padding) + unique[0] + data.draw(padding), False) == [unique[0]]


@given(st.sampled_from(sorted(MISSING)), st.sampled_from([str.upper, str.lower, str.title]), st.booleans())
def test_missing_markers_and_empty_cells_give_no_genre(marker, case, multi_label):
    assert parse_label_cell(f" {case(marker)} ", multi_label, SEP) == []
    assert parse_label_cell("", multi_label, SEP) == parse_label_cell(float("nan"), multi_label, SEP) == []
    assert parse_label_cell(None, multi_label, SEP) == []


@given(st.lists(st.lists(name, min_size=1, max_size=3), min_size=1, max_size=12), st.data())
def test_unify_spellings_leaves_one_spelling_per_genre(rows, data):
    typed = [[variant(n, data) for n in row] for row in rows]
    parsed = [parse_label_cell(SEP.join(row), True, SEP) for row in typed]
    unified, merged = unify_spellings(parsed)
    spellings = {n for row in unified for n in row}
    assert len({label_key(n) for n in spellings}) == len(spellings)  # one spelling per genre
    assert {label_key(n) for n in spellings} == {label_key(n) for row in parsed for n in row}  # no genre lost
    for before, after in zip(parsed, unified, strict=True):
        assert [label_key(n) for n in after] == list(dict.fromkeys(label_key(n) for n in before))
    for chosen, variants in merged.items():
        assert chosen in variants and len(set(map(label_key, variants))) == 1 and len(variants) > 1
    assert unify_spellings(unified) == (unified, {})  # idempotent


@given(st.lists(name, min_size=2, max_size=6, unique_by=label_key), st.data())
def test_label_space_respells_case_variants_into_its_names(names, data):
    space = LabelSpace(tuple(sorted(clean_label(n) for n in names)))
    rows = [[clean_label(variant(n, data))] for n in names]
    respelled = space.respell(rows)
    assert space.unknown(respelled) == []
    assert [label_key(row[0]) for row in respelled] == [label_key(n) for n in names]
    assert space.respell([["not a genre here 0"]]) == [["not a genre here 0"]]


@given(st.lists(cell_text | st.builds(lambda p, m, q: p * 9 + m + q * 9, padding, st.sampled_from(sorted(MISSING)),
                                      padding) | st.sampled_from(["", "   ", " \u3000 "]), max_size=12))
def test_missing_mask_is_is_missing_of_each_cell(cells):
    expected = [is_missing(cell) for cell in cells]
    assert missing_mask(pd.Series(cells, dtype=object)).tolist() == expected
