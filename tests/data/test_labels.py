import numpy as np
import pytest

from genre_lab.data.labels import LabelSpace, parse_label_cell


def test_parse_single_and_multi_label_cells():
    assert parse_label_cell(" action ", multi_label=False) == ["action"]
    assert parse_label_cell("Drama| Crime |Drama", multi_label=True) == ["Drama", "Crime"]
    assert parse_label_cell("a;b", multi_label=True, sep=";") == ["a", "b"]
    assert parse_label_cell("", multi_label=True) == []
    assert parse_label_cell(float("nan"), multi_label=False) == []


def test_label_space_round_trip():
    rows = [["scifi"], ["action", "scifi"], ["drama"], []]
    space = LabelSpace.from_rows(rows, multi_label=True)
    assert space.names == ("action", "drama", "scifi")
    encoded = space.encode(rows)
    assert encoded.dtype == np.float32
    assert encoded.tolist() == [[0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert space.decode(encoded) == [["scifi"], ["action", "scifi"], ["drama"], []]
    assert space.to_dict() == {"names": ["action", "drama", "scifi"], "multi_label": True}  # what checkpoints hold


def test_label_space_rejects_unknown_and_duplicate_names():
    space = LabelSpace(("a", "b"))
    assert space.unknown([["a"], ["c", "b"], ["d"]]) == ["c", "d"]
    with pytest.raises(KeyError, match="'c'"):
        space.encode([["c"]])
    with pytest.raises(ValueError, match="unique"):
        LabelSpace(("a", "a"))
