"""formats.py, jsonl.py, columnar.py: the same movies in every format give the same table, labels, split and token
ids; each format's bad inputs name the place a user can look."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_lab.data.formats import detect_format, read_frame, write_frame
from genre_lab.data.table import TableSpec, read_table
from genre_lab.errors import GenreLabError
from tests.data.test_datamodule import make_dm

datasets = pytest.importorskip("datasets", reason="the datasets extra (pip install 'genre_lab[datasets]')")
KEY = "data.encoding_errors"


def multilabel(frame: pd.DataFrame) -> pd.DataFrame:
    """The sample with a genre list per row (every third movie also gets the next genre)."""
    ring = sorted(frame.genre.unique())
    out = frame.drop(columns="genre").copy()
    out["genres"] = [[g] if i % 3 else [g, ring[(ring.index(g) + 1) % len(ring)]] for i, g in enumerate(frame.genre)]
    return out


def write_all(frame: pd.DataFrame, folder: Path, list_column: str | None = None) -> dict[str, Path]:
    """``frame`` in every format; a list column is ``|``-joined in the text formats."""
    text = frame.assign(**{list_column: frame[list_column].map("|".join)}) if list_column else frame
    paths = {"csv": folder / "m.csv", "tsv": folder / "m.tsv", "jsonl": folder / "m.jsonl.gz",
             "parquet": folder / "m.parquet", "dataset": folder / "m_ds"}
    text.to_csv(paths["csv"], index=False)
    text.to_csv(paths["tsv"], index=False, sep="\t")
    frame.to_json(paths["jsonl"], orient="records", lines=True)
    typed = frame.assign(id=frame.id.astype(int)) if frame.id.str.isdigit().all() else frame
    typed.to_parquet(paths["parquet"], index=False)
    datasets.Dataset.from_pandas(typed, preserve_index=False).save_to_disk(str(paths["dataset"]))
    return paths


def test_every_format_gives_the_same_table_and_tokens(tmp_path, sample_frame):
    paths = write_all(sample_frame, tmp_path)
    tables = {fmt: read_table(path, TableSpec()) for fmt, path in paths.items()}
    first = tables["csv"]
    for fmt, table in tables.items():
        assert table.texts == first.texts and table.labels == first.labels, fmt
        assert table.movie_ids == first.movie_ids, fmt
    split = {}
    for fmt, path in paths.items():
        dm = make_dm(train_csv=str(path), token_cache_dir=None)
        dm.setup("fit")
        split[fmt] = dm.data
    reference = split["csv"]
    for fmt, data in split.items():
        assert data.label_space == reference.label_space, fmt
        assert data.splits["val"].movie_ids == reference.splits["val"].movie_ids, fmt
        ids, ref = (d.splits["train"].dataset.input_ids for d in (data, reference))
        assert all(np.array_equal(a, b) for a, b in zip(ids, ref, strict=True)), fmt


def test_list_labels_are_multi_label_without_a_separator(tmp_path, sample_frame):
    frame = multilabel(sample_frame)
    paths = write_all(frame, tmp_path, list_column="genres")
    spec = TableSpec(label_column="genres", multi_label=True)
    expected = read_table(paths["csv"], spec).labels
    assert expected[0] == frame.genres[0] and len(expected[0]) == 2
    for fmt in ("jsonl", "parquet", "dataset"):
        assert read_table(paths[fmt], spec).labels == expected, fmt
    with pytest.raises(GenreLabError, match=r"holds a list of several genres on row index 0, 3, .*multi_label=true"):
        read_table(paths["parquet"], TableSpec(label_column="genres"))


def test_a_dataset_dict_gives_train_validation_and_test(tmp_path, sample_frame):
    parts = {"train": sample_frame.iloc[:300], "validation": sample_frame.iloc[300:360],
             "test": sample_frame.iloc[360:]}
    folder = tmp_path / "dd"
    datasets.DatasetDict({k: datasets.Dataset.from_pandas(v, preserve_index=False) for k, v in parts.items()}
                         ).save_to_disk(str(folder))
    dm = make_dm(train_csv=str(folder), token_cache_dir=None)
    dm.setup("fit")
    assert dm.hparams.val_csv == str(folder / "validation") and dm.hparams.test_csv == str(folder / "test")
    assert dm.data.splits["val"].movie_ids == parts["validation"].id.tolist()
    assert len(dm.data.splits["train"].rows) == 300 and len(dm.data.splits["test"].rows) == 40
    named = make_dm(train_csv=str(folder), val_csv=str(folder / "test"), token_cache_dir=None).data
    assert named.settings["val_csv"] == str(folder / "test")  # a named file wins over the dict's split
    with pytest.raises(GenreLabError, match=r"dataset dict with splits \['train', 'validation', 'test'\]; give one"):
        read_table(folder, TableSpec())


def test_class_label_ids_become_genre_names(tmp_path, sample_frame):
    names = sorted(sample_frame.genre.unique())
    features = datasets.Features({"id": datasets.Value("string"), "movie_name": datasets.Value("string"),
                                  "synopsis": datasets.Value("string"), "genre": datasets.ClassLabel(names=names)})
    frame = sample_frame.assign(genre=sample_frame.genre.map(names.index))
    datasets.Dataset.from_pandas(frame, features=features, preserve_index=False).save_to_disk(str(tmp_path / "ds"))
    assert [row[0] for row in read_table(tmp_path / "ds", TableSpec()).labels] == sample_frame.genre.tolist()


def test_a_broken_jsonl_line_is_named(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": 1, "synopsis": "a", "movie_name": "A", "genre": "x"}\n\n{"id": 2, "synopsis": "b",\n')
    with pytest.raises(GenreLabError, match=r"m.jsonl: line 3 is not valid JSON \(.* at column \d+\)"):
        read_frame(path, "fail", KEY)
    path.write_text('[{"id": 1}]\n')
    with pytest.raises(GenreLabError, match="line 1 holds a JSON list, not an object.*JSON Lines"):
        read_frame(path, "fail", KEY)
    path.write_text('{"id": 1, "synopsis": "a", "movie_name": "A", "genre": "x"}\n'
                    '{"id": 2, "synopsis": "", "movie_name": "B", "genre": "y"}\n')
    with pytest.raises(GenreLabError, match=r"empty 'synopsis' on line\(s\) 2"):
        read_table(path, TableSpec())


@pytest.mark.parametrize(("column", "value", "kind"), [
    ("synopsis", {"text": "a", "lang": "en"}, "struct<"), ("movie_name", ["A", "B"], "a list"),
    ("genre", {"name": "x"}, "struct<"),
])
def test_a_column_of_the_wrong_type_is_named_with_its_type(tmp_path, sample_frame, column, value, kind):
    frame = sample_frame.head(4).copy()
    frame[column] = [value] * 4
    frame.to_parquet(tmp_path / "m.parquet")
    with pytest.raises(GenreLabError, match=rf"column '{column}' holds {kind}.*must hold text or numbers"):
        read_table(tmp_path / "m.parquet", TableSpec())


def test_empty_and_unreadable_parquet_and_folders_are_explained(tmp_path, sample_frame):
    sample_frame.head(0).to_parquet(tmp_path / "empty.parquet")
    with pytest.raises(GenreLabError, match="empty.parquet: no data rows"):
        read_table(tmp_path / "empty.parquet", TableSpec())
    (tmp_path / "bad.parquet").write_text("id,synopsis\n")
    with pytest.raises(GenreLabError, match="bad.parquet: not a readable Parquet file"):
        read_table(tmp_path / "bad.parquet", TableSpec())
    ds = tmp_path / "ds"
    datasets.Dataset.from_pandas(sample_frame.drop(columns="genre"), preserve_index=False).save_to_disk(str(ds))
    with pytest.raises(GenreLabError, match=r"ds: missing column\(s\) \['genre'\]"):
        read_table(ds, TableSpec())
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    with pytest.raises(GenreLabError, match=r"notes is a folder, but not a saved Hugging Face dataset.*readme.txt"):
        read_table(tmp_path / "notes", TableSpec())
    with pytest.raises(GenreLabError, match=r"cannot tell the format .*data.format=csv"):
        detect_format(tmp_path / "movies.txt")


def test_a_parquet_folder_reads_as_one_table_and_the_format_setting_overrides(tmp_path, sample_frame):
    (tmp_path / "lake").mkdir()
    sample_frame.iloc[:200].to_parquet(tmp_path / "lake" / "part-0.parquet")
    sample_frame.iloc[200:].to_parquet(tmp_path / "lake" / "part-1.parquet")
    (tmp_path / "lake" / "_SUCCESS").write_text("")  # what Spark leaves beside its parts
    assert read_table(tmp_path / "lake", TableSpec()).movie_ids == sample_frame.id.tolist()
    sample_frame.to_csv(tmp_path / "movies.txt", sep="\t", index=False)
    assert read_table(tmp_path / "movies.txt", TableSpec(format="tsv")).movie_ids == sample_frame.id.tolist()
    with pytest.raises(GenreLabError, match=r"data.format='xlsx' must be one of"):
        read_table(tmp_path / "movies.txt", TableSpec(format="xlsx"))


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_predictions_written_by_extension_read_back_equal(tmp_path, suffix):
    frame = pd.DataFrame({"id": ["a", "b"], "genres": ["x|y", ""], "prob_x": [0.25, np.nan], "status": ["ok", "e"]})
    back = read_frame(write_frame(frame, tmp_path / f"p{suffix}"), "fail", KEY)
    assert back.id.tolist() == ["a", "b"] and back.genres.tolist() == ["x|y", ""]
    if suffix == ".parquet":
        assert pd.read_parquet(tmp_path / "p.parquet").prob_x.dtype == np.float64  # numbers, not strings
    if suffix == ".jsonl":
        assert json.loads((tmp_path / "p.jsonl").read_text().splitlines()[0])["prob_x"] == 0.25
    with pytest.raises(GenreLabError, match=r"out=.*p.xlsx: write predictions to a .csv, .tsv, .jsonl or .parquet"):
        write_frame(frame, tmp_path / "p.xlsx")
