"""files.py: a file (plain or compressed, any bytes) to a frame of strings, and rows back to their file lines."""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import zipfile

import pandas as pd
import pytest

from genre_lab.data.files import (
    bad_utf8_lines,
    decode,
    delimiter_hint,
    line_numbers,
    read_bytes,
    read_csv,
    record_lines,
    shorten,
)
from genre_lab.data.formats import read_frame
from genre_lab.errors import GenreLabError

KEY = "data.encoding_errors"
FRAME = pd.DataFrame({"id": ["1", "2"], "synopsis": ["A heist, gone wrong.", "Café"], "genre": ["crime", "drama"]},
                     dtype=object)  # cells are plain Python strings (what the table's row passes iterate fastest)


def zipped(*members: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in members:
            archive.writestr(name, FRAME.to_csv(index=False))
    return buffer.getvalue()


def test_missing_file_and_directory_are_reported(tmp_path):
    with pytest.raises(GenreLabError, match="not found.*download_data"):
        read_frame(tmp_path / "nope.csv", "fail", KEY)
    (tmp_path / "movies.csv").write_text("id\n1\n")
    with pytest.raises(GenreLabError, match=r"is a folder, but not a saved Hugging Face dataset .* Give the file "
                                            r"itself, e.g. .*movies.csv"):
        read_frame(tmp_path, "fail", KEY)


@pytest.mark.parametrize(("suffix", "pack"), [
    (".csv", str.encode), (".csv.gz", lambda t: gzip.compress(t.encode())),
    (".csv.bz2", lambda t: bz2.compress(t.encode())), (".csv.xz", lambda t: lzma.compress(t.encode())),
    (".csv.zip", lambda t: zipped("movies.csv")), (".CSV.GZ", lambda t: gzip.compress(t.encode())),
])
def test_plain_and_compressed_files_read_as_the_same_strings(tmp_path, suffix, pack):
    path = tmp_path / f"movies{suffix}"
    path.write_bytes(pack(FRAME.to_csv(index=False)))
    frame = read_csv(path, "fail", KEY)
    pd.testing.assert_frame_equal(frame, FRAME)
    assert list(frame.attrs["record_lines"]) == [2, 3]


def test_broken_or_misnamed_archives_are_explained(tmp_path):
    packed = gzip.compress(FRAME.to_csv(index=False).encode())
    (tmp_path / "cut.csv.gz").write_bytes(packed[:20])
    with pytest.raises(GenreLabError, match=r"cut.csv.gz: not a valid gz file .*decompress it and give the .csv"):
        read_bytes(tmp_path / "cut.csv.gz")
    (tmp_path / "two.csv.zip").write_bytes(zipped("a.csv", "b.csv"))
    with pytest.raises(GenreLabError, match=r"not a valid zip file \(expected exactly one file inside, found "
                                            r"\['a.csv', 'b.csv'\]\)"):
        read_bytes(tmp_path / "two.csv.zip")
    (tmp_path / "packed.csv").write_bytes(packed)
    with pytest.raises(GenreLabError, match=r"packed.csv: a gzip-compressed file; name it \*.csv.gz"):
        read_bytes(tmp_path / "packed.csv")


def test_empty_and_unparsable_files_are_explained(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(GenreLabError, match="empty.csv: the file is empty; expected a CSV with a header row"):
        read_csv(tmp_path / "empty.csv", "fail", KEY)
    (tmp_path / "ragged.csv").write_text("id,synopsis\n1,a\n2,b,c,d\n")
    with pytest.raises(GenreLabError, match=r"ragged.csv: not a readable CSV \(.*\)\. Save it as UTF-8 "
                                            r"comma-separated"):
        read_csv(tmp_path / "ragged.csv", "fail", KEY)


def test_bad_bytes_fail_naming_lines_and_key_or_are_replaced(tmp_path, caplog):
    path = tmp_path / "latin1.csv"
    path.write_bytes("\ufeffid,synopsis\n1,Caf\u00e9\n2,ok\n3,na\u00efve\n".encode("utf-8")[:3]
                     + "id,synopsis\n1,Café\n2,ok\n3,naïve\n".encode("latin-1"))
    assert bad_utf8_lines(path.read_bytes()) == [2, 4]
    with pytest.raises(GenreLabError, match=r"invalid UTF-8 byte b'\\xe9' on line\(s\) 2, 4\..*set "
                                            r"data.encoding_errors=replace"):
        decode(path, "fail", KEY)
    with caplog.at_level(logging.WARNING):
        text = decode(path, "replace", "encoding_errors")
    assert text == "id,synopsis\n1,Caf\ufffd\n2,ok\n3,na\ufffdve\n"  # the BOM is dropped
    assert "(encoding_errors=replace) on line(s) 2, 4" in caplog.text
    (tmp_path / "sheet.csv").write_bytes(b"PK\x03\x04\x00\x00\xff\xfe" * 50)
    with pytest.raises(GenreLabError, match="binary file, not a CSV"):
        decode(tmp_path / "sheet.csv", "replace", KEY)


def test_delimiter_hint_names_the_separator_a_header_uses():
    assert "looks semicolon (;)-separated" in delimiter_hint("id;synopsis;genre")
    assert "sep='\\t'" in delimiter_hint(pd.DataFrame(columns=["id\tsynopsis"]))
    assert delimiter_hint("id,synopsis;x") == delimiter_hint(pd.DataFrame(columns=["a", "b"])) == ""


def test_record_lines_are_physical_lines_when_quoted_fields_span_lines(tmp_path):
    frame = pd.DataFrame({"synopsis": ["A storm.\nA lighthouse.\nA keeper.", "Two chefs.\nOne kitchen.", "Ghosts."],
                          "genre": ["x", "y", "x"]})  # records start on lines 2, 5, 7
    text = frame.to_csv(index=False)
    assert list(record_lines(text.encode(), 3)) == [2, 5, 7]
    assert list(record_lines(text.encode() + b"\n\n", 3)) == [2, 5, 7]  # blank lines: pandas skips them too
    assert record_lines(text.encode(), 4) is None  # split otherwise than pandas: row + 2 instead
    one_line_each = pd.DataFrame({"synopsis": ["A storm.", "Two chefs."], "genre": ["x", "y"]}).to_csv(index=False)
    assert list(record_lines(one_line_each.encode(), 2)) == [2, 3]  # counted, not scanned
    assert list(record_lines(one_line_each.encode().rstrip(b"\n"), 2)) == [2, 3]  # no newline at the end
    (tmp_path / "x.csv").write_text(text)
    read = read_csv(tmp_path / "x.csv", "fail", KEY)
    assert line_numbers(read.genre == "x", read) == "2, 7"
    assert line_numbers(read.genre == "x", read[read.genre == "x"]) == "2, 7"  # kept through a selection
    assert line_numbers(frame.genre == "x", frame) == "2, 4"  # built in memory: row + 2


def test_long_line_lists_are_shortened_with_a_count():
    assert shorten([3, 5]) == "3, 5"
    assert shorten(list(range(2, 15)), limit=3) == "2, 3, 4, … (13 rows)"


def test_a_large_file_is_parsed_in_pieces_under_a_progress_bar_with_the_same_result(tmp_path, monkeypatch, caplog):
    """Over PROGRESS_BYTES the CSV is parsed PARSE_ROWS rows at a time (progress in MB): the same frame, the same
    record lines (quoted line breaks included) and, for a ragged row in a later piece, the same error."""
    from genre_lab.data import files
    from genre_lab.framework import progress

    rows = [f'{i},"Line one of {i}.\nLine two, {i}.",{"xy"[i % 2]}' if i % 3 == 0 else f"{i},Plain {i}.,z"
            for i in range(40)]
    path = tmp_path / "big.csv"
    path.write_text("id,synopsis,genre\n" + "\n".join(rows) + "\n")
    whole = read_csv(path, "fail", KEY)
    monkeypatch.setattr(files, "PROGRESS_BYTES", 100)
    monkeypatch.setattr(files, "PARSE_ROWS", 7)
    monkeypatch.setattr(files, "MB", 50)  # "MB" of 50 bytes: several progress steps in a small file
    monkeypatch.setattr(progress, "INTERVAL_S", 0.0)
    with caplog.at_level(logging.INFO, logger="genre_lab.framework.progress"):
        pieces = read_csv(path, "fail", KEY)
    pd.testing.assert_frame_equal(pieces, whole)
    assert all(dtype == "object" for dtype in pieces.dtypes) and all(type(v) is str for v in pieces.synopsis)
    assert list(pieces.attrs["record_lines"]) == list(whole.attrs["record_lines"])
    assert pieces.attrs["record_lines"][3] == 6  # row 3 follows one two-line record
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("reading: ") and " MB (" in m and "ETA" in m for m in messages), messages
    assert messages[-1].startswith(f"reading: {-(-path.stat().st_size // 50)} MB in ")

    path.write_text(path.read_text() + "41,a,b,c\n")
    with pytest.raises(GenreLabError, match=r"Expected 3 fields in line 42, saw 4") as in_pieces:
        read_csv(path, "fail", KEY)
    monkeypatch.setattr(files, "PROGRESS_BYTES", 10**9)
    with pytest.raises(GenreLabError) as at_once:
        read_csv(path, "fail", KEY)
    assert str(in_pieces.value) == str(at_once.value)
