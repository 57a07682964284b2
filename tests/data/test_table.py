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


def test_empty_synopsis_is_reported(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"synopsis": ["ok", " ", "fine"], "movie_name": ["a", "b", "c"], "genre": ["x", "y", "x"]}).to_csv(
        path, index=False
    )
    with pytest.raises(GenreLabError, match=r"empty 'synopsis' on line\(s\) 3"):
        read_table(path, TableSpec())


def test_multilabel_table(multilabel_csv):
    table = read_table(multilabel_csv, TableSpec(label_column="genres", multi_label=True))
    assert len(table) == 400
    assert table.labels[0] == ["scifi", "thriller"]
    assert table.texts[0].endswith("The Translator Unit")


def test_line_numbers_are_physical_lines_when_quoted_fields_span_lines(tmp_path):
    """A synopsis with line breaks (quoted) takes several lines: messages name the line where a record starts."""
    frame = pd.DataFrame({
        "id": ["1", "2", "3", "4", "5"],
        "synopsis": ["A storm.\nA lighthouse.\nA keeper.", "Two chefs.\nOne kitchen.", "", "Ghosts.", "Aliens."],
        "movie_name": list("abcde"), "genre": ["x", "", "y", "x", "y"],
    })  # records start on lines 2, 5, 7, 8, 9
    path = tmp_path / "x.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(GenreLabError, match=r"empty 'synopsis' on line\(s\) 7\."):
        read_table(path, TableSpec())
    with pytest.raises(GenreLabError, match=r"'genre' on line\(s\) 5\."):
        read_table(path, TableSpec(empty_text="drop"))
    frame.loc[1, "genre"], frame.loc[4, "id"] = "x", "2"
    frame.to_csv(path, index=False)
    with pytest.raises(GenreLabError, match=r"duplicate 'id' values \['2'\] on line\(s\) 5, 9\."):
        read_table(path, TableSpec(empty_text="drop"))


def test_a_large_table_builds_its_texts_in_pieces_with_progress_and_the_same_texts(multilabel_csv, monkeypatch,
                                                                                    caplog):
    import logging

    from genre_lab.data import table as table_module
    from genre_lab.framework import progress

    spec = TableSpec(label_column="genres", multi_label=True)
    whole = read_table(multilabel_csv, spec)
    monkeypatch.setattr(table_module, "TEXT_ROWS", 7)  # 400 rows: 58 pieces, the last one short
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    with caplog.at_level(logging.INFO, logger="genre_lab.framework.progress"):
        pieces = read_table(multilabel_csv, spec)
    assert pieces.texts == whole.texts and len(pieces.texts) == 400
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("building texts: ") and "/400 rows" in m and "ETA" in m for m in messages), messages
    assert messages[-1].startswith("building texts: 400 rows in ")
