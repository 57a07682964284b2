import pandas as pd
import pytest

from genre_lab.data.table import TableSpec, build_text, read_table, template_fields
from genre_lab.errors import GenreLabError


def test_template_matches_the_notebook_and_cleans_whitespace():
    row = {"synopsis": "  A heist\n goes wrong. ", "movie_name": "Night Vault", "genre": "crime"}
    assert build_text(row, "{synopsis} {movie_name}") == "A heist goes wrong. Night Vault"
    assert build_text({"synopsis": "Text", "movie_name": float("nan")}, "{movie_name}: {synopsis}") == ": Text"
    assert template_fields("{movie_name}. {synopsis} ({movie_name})") == ["movie_name", "synopsis"]
    with pytest.raises(GenreLabError, match="column names"):
        template_fields("{} {0}")


def test_missing_columns_are_named_with_the_columns_found(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"id": [1], "title": ["T"], "synopsis": ["S"]}).to_csv(path, index=False)
    with pytest.raises(GenreLabError) as err:
        read_table(path, TableSpec())
    message = str(err.value)
    assert "missing column(s) ['movie_name', 'genre']" in message
    assert "found ['id', 'title', 'synopsis']" in message


def test_empty_synopsis_and_missing_file_are_reported(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"synopsis": ["ok", " ", "fine"], "movie_name": ["a", "b", "c"], "genre": ["x", "y", "x"]}).to_csv(
        path, index=False
    )
    with pytest.raises(GenreLabError, match=r"empty 'synopsis' on line\(s\) 3"):
        read_table(path, TableSpec())
    with pytest.raises(GenreLabError, match="not found.*download_data"):
        read_table(tmp_path / "nope.csv", TableSpec())


def test_multilabel_table(multilabel_csv):
    table = read_table(multilabel_csv, TableSpec(label_column="genres", multi_label=True))
    assert len(table) == 400
    assert table.labels[0] == ["scifi", "thriller"]
    assert table.texts[0].endswith("The Translator Unit")
