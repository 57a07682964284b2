"""What the bad-input settings do when they do not fail: drop, replace, ignore, normalise; and the truncation count."""

from __future__ import annotations

import logging
import re

import pandas as pd
import pytest

from genre_lab.data.datamodule import GenreDataModule
from genre_lab.data.movie_data import MovieData
from genre_lab.data.table import TableSpec, read_table
from genre_lab.errors import GenreLabError


@pytest.fixture
def frame(sample_frame) -> pd.DataFrame:
    """24 valid rows, 6 of each of 4 genres."""
    genres = ["horror", "romance", "scifi", "family"]
    return sample_frame[sample_frame.genre.isin(genres)].groupby("genre").head(6).reset_index(drop=True)


def module(train, **kwargs) -> MovieData:
    return GenreDataModule(train_csv=str(train), tokenizer="tiny", token_cache_dir=None, **kwargs).data


def test_empty_synopses_dropped_with_a_count_and_true_line_numbers(tmp_path, frame, caplog):
    frame.loc[[1, 4], "synopsis"] = ["", "nan"]
    frame.loc[6, "genre"] = ""
    frame.to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(GenreLabError, match=r"empty 'synopsis' on line\(s\) 3, 6.*data.empty_text=drop"):
        read_table(tmp_path / "x.csv", TableSpec())
    with pytest.raises(GenreLabError, match=r"'genre' on line\(s\) 8\."):  # still the file's line after the drop
        read_table(tmp_path / "x.csv", TableSpec(empty_text="drop"))
    frame.loc[6, "genre"] = "horror"
    frame.to_csv(tmp_path / "x.csv", index=False)
    with caplog.at_level(logging.WARNING):
        table = read_table(tmp_path / "x.csv", TableSpec(empty_text="drop"))
    assert len(table) == len(frame) - 2 and len(table.labels) == len(table.movie_ids) == len(table)
    assert frame.loc[1, "id"] not in table.movie_ids and frame.loc[4, "id"] not in table.movie_ids
    assert "dropped 2 row(s) with an empty 'synopsis'" in caplog.text and "line(s) 3, 6" in caplog.text


def test_invalid_utf8_fails_naming_lines_or_is_replaced(tmp_path, frame, caplog):
    path = tmp_path / "latin1.csv"
    frame = frame.apply(lambda column: column.str.encode("ascii", "ignore").str.decode("ascii"))
    frame.loc[2, "synopsis"] = "Café owner fights a ghost"  # the only non-ASCII text: line 4
    path.write_bytes(frame.to_csv(index=False).encode("latin-1", errors="replace"))
    with pytest.raises(GenreLabError, match=r"invalid UTF-8 byte b'\\xe9' on line\(s\) 4\..*encoding_errors=replace"):
        read_table(path, TableSpec())
    with caplog.at_level(logging.WARNING):
        table = read_table(path, TableSpec(encoding_errors="replace"))
    assert table.texts[2].startswith("Caf\ufffd owner") and "line(s) 4" in caplog.text


def test_binary_file_is_not_a_csv(tmp_path):
    path = tmp_path / "movies.xlsx.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00\xff\xfe" * 50)
    with pytest.raises(GenreLabError, match="binary file, not a CSV"):
        read_table(path, TableSpec())


def test_semicolon_file_is_explained(tmp_path, frame):
    frame.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    with pytest.raises(GenreLabError, match=r"semi.csv.*looks semicolon \(;\)-separated.*sep=';'"):
        read_table(tmp_path / "semi.csv", TableSpec())


def test_utf8_bom_is_ignored(tmp_path, frame):
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbf" + frame.to_csv(index=False).encode())
    assert read_table(path, TableSpec()).movie_ids == frame.id.tolist()


def test_duplicate_ids_are_listed_and_id_column_null_numbers_rows(tmp_path, frame):
    frame.loc[5, "id"] = frame.loc[2, "id"]
    frame.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(GenreLabError, match=rf"duplicate 'id' values \['{frame.loc[2, 'id']}'\] on line\(s\) 4, 7"):
        read_table(tmp_path / "dup.csv", TableSpec())
    assert read_table(tmp_path / "dup.csv", TableSpec(id_column=None)).movie_ids[:3] == ["0", "1", "2"]


def test_case_and_space_variants_of_a_genre_are_merged(tmp_path, frame, caplog):
    frame.loc[[0, 7], "genre"] = [" Horror", "HORROR  "]
    frame.to_csv(tmp_path / "x.csv", index=False)
    with caplog.at_level(logging.WARNING):
        table = read_table(tmp_path / "x.csv", TableSpec())
    assert sorted({g for row in table.labels for g in row}) == ["family", "horror", "romance", "scifi"]
    assert "merged" in caplog.text and "-> 'horror'" in caplog.text


def test_val_genres_follow_the_training_spelling_and_unseen_ones_fail_or_are_dropped(tmp_path, frame, caplog):
    frame.to_csv(tmp_path / "train.csv", index=False)
    val = frame.groupby("genre").head(2).reset_index(drop=True)
    val.loc[0, "genre"] = "HORROR"
    val.loc[1, "genre"] = "western"
    val.to_csv(tmp_path / "val.csv", index=False)
    with pytest.raises(GenreLabError, match=r"val.csv: genre\(s\) \['western'\] do not occur.*unseen_labels=ignore"):
        module(tmp_path / "train.csv", val_csv=str(tmp_path / "val.csv")).tokenized()
    data = module(tmp_path / "train.csv", val_csv=str(tmp_path / "val.csv"), unseen_labels="ignore")
    with caplog.at_level(logging.WARNING):
        data.tokenized()
    assert data.splits["val"].movie_ids == val.id.tolist()[:1] + val.id.tolist()[2:]
    kept = [[g.lower()] for g in val.genre if g != "western"]  # 'HORROR' is the training set's 'horror'
    assert data.label_space.decode(data.splits["val"].dataset.targets) == kept
    assert "ignoring genre(s) ['western']" in caplog.text and "1 row(s) dropped" in caplog.text


def test_multilabel_unseen_genre_is_removed_from_its_rows(tmp_path, frame):
    frame = frame.rename(columns={"genre": "genres"})
    frame.to_csv(tmp_path / "train.csv", index=False)
    val = frame.head(4).copy()
    val["genres"] = ["horror|western", "western", "romance", "scifi"]
    val.to_csv(tmp_path / "val.csv", index=False)
    data = module(tmp_path / "train.csv", val_csv=str(tmp_path / "val.csv"), unseen_labels="ignore",
                  label_column="genres", multi_label=True)
    data.tokenized()
    assert data.splits["val"].movie_ids == [val.id[0], val.id[2], val.id[3]]
    assert data.label_space.decode(data.splits["val"].dataset.targets) == [["horror"], ["romance"], ["scifi"]]


def test_unknown_policy_values_are_rejected(tmp_path, frame):
    with pytest.raises(GenreLabError, match=r"data.unseen_labels='drop' must be one of fail, ignore"):
        module(tmp_path / "train.csv", unseen_labels="drop")
    with pytest.raises(GenreLabError, match=r"data.global_batch_size=0 must be a whole number"):
        module(tmp_path / "train.csv", global_batch_size=0)


def test_long_texts_are_truncated_and_counted(tmp_path, frame, caplog):
    frame.to_csv(tmp_path / "train.csv", index=False)
    data = module(tmp_path / "train.csv", max_length=8)
    with caplog.at_level(logging.INFO):
        data.tokenized()
    train = data.splits["train"].dataset
    assert max(len(train[i]["input_ids"]) for i in range(len(train))) == 8
    counts = [int(n) for n in re.findall(r"(\d+) truncated at max_length=8", caplog.text)]
    assert counts and counts[0] == len(frame)  # every sample synopsis is longer than 8 tokens


def test_the_table_spec_is_built_by_keyword_from_any_data_settings():
    saved = {"text_template": "{plot}", "multi_label": True, "label_column": "genres", "max_length": 64}
    spec = TableSpec.from_settings(saved)  # a checkpoint's datamodule hyper-parameters hold more keys
    assert (spec.text_template, spec.multi_label, spec.label_column) == ("{plot}", True, "genres")
    assert spec.id_column == TableSpec().id_column and spec.label_sep == "|"  # the defaults, defined once
