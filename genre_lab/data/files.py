"""Turn a data file into a frame of strings: read (and decompress) the bytes, decode them as UTF-8 under an
encoding-errors policy, parse the CSV, and remember the file line where each record starts.

Nothing here knows what the columns mean: table.py checks them and builds the model texts; predict reads its input
through ``read_csv`` too. Messages name the file, and rows by their physical line (``line_numbers``).
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import logging
import lzma
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from genre_lab.errors import GenreLabError
from genre_lab.framework.progress import RowProgress

log = logging.getLogger(__name__)

DOWNLOAD_HINT = (
    "For the movie-genre-prediction data run `python scripts/download_data.py`; with no internet use "
    "`experiment=quickstart` (bundled sample) or point data.train_csv=... at your own CSV."
)

GZIP_MAGIC = b"\x1f\x8b"
CHECK_BLOCK = 1 << 24  # bytes decoded at a time to check a file is UTF-8
MB = 1_000_000
PROGRESS_BYTES = 64 * MB  # a CSV this large (~200k movies, a second or more to parse) is read under a progress bar
PARSE_ROWS = 100_000  # rows parsed at a time under that bar
RECORD_LINES = "record_lines"  # frame.attrs key: the physical line (or row index) where each record starts
# frame.attrs key: how messages name those places ("line(s)" in a text file, "row index" in Parquet, ...)
RECORD_UNIT = "record_unit"
COLUMN_TYPES = "column_types"  # frame.attrs key: {column: type name} of columns holding neither text nor a list


def read_csv(path: str | Path, errors: str, key: str, sep: str = ",") -> pd.DataFrame:
    """Read a CSV (or .csv.gz/.bz2/.xz/.zip; ``sep="\\t"``: a TSV) as strings; missing or unreadable file, bad
    bytes (``errors``: the encoding_errors policy, set by setting ``key``) or unparsable content -> GenreLabError.

    pandas parses the bytes themselves: no Python string of the whole file (at 4 bytes a character inside a
    StringIO it was most of the set-up's peak memory on large files)."""
    path = Path(path)
    kind = "TSV" if sep == "\t" else "CSV"
    data, replace = checked_utf8(path, errors, key)
    try:
        frame = parse_csv(data, sep, replace)
    except pd.errors.EmptyDataError:
        raise GenreLabError(f"{path}: the file is empty; expected a {kind} with a header row") from None
    except pd.errors.ParserError as err:
        first = data[:4096].split(b"\n", 1)[0].decode("utf-8", "replace")
        hint = (delimiter_hint(first) if sep == "," else "") or (
            f" Save it as UTF-8 {'tab' if sep == chr(9) else 'comma'}-separated, with fields that contain "
            f"{'tabs' if sep == chr(9) else 'commas'} or line breaks in double quotes.")
        raise GenreLabError(f"{path}: not a readable {kind} ({str(err).strip()}).{hint}") from None
    frame = frame.reset_index(drop=True)
    frame.attrs[RECORD_LINES] = record_lines(data, len(frame), sep)  # kept by pandas through row selections
    return frame


def parse_csv(data: bytes, sep: str, replace: bool) -> pd.DataFrame:
    """pandas parses ``data`` into a frame of plain Python strings (object columns: the table's row passes iterate
    them ~2x faster than pandas' Arrow strings). A file over ``PROGRESS_BYTES`` is parsed ``PARSE_ROWS`` rows at a
    time under a progress bar in MB (its rows are not known before it is parsed), at the same speed."""
    options = {"sep": sep, "dtype": object, "keep_default_na": False, "na_filter": False, "encoding": "utf-8-sig",
               "encoding_errors": "replace" if replace else "strict"}
    if len(data) <= PROGRESS_BYTES:
        return pd.read_csv(io.BytesIO(data), **options)
    handle, frames = io.BytesIO(data), []
    with RowProgress(-(-len(data) // MB), "reading", unit="MB") as bar, \
            pd.read_csv(handle, chunksize=PARSE_ROWS, **options) as reader:
        for frame in reader:
            frames.append(frame)
            bar.advance(handle.tell() // MB - bar.done)
        bar.advance(bar.total - bar.done)
    return pd.concat(frames, ignore_index=True)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when its name ends in .gz, .bz2, .xz or .zip (as pandas does)."""
    try:
        data = path.read_bytes()
    except PermissionError:
        raise GenreLabError(f"{path}: permission denied; make the file readable (chmod u+r {path}) "
                            "or copy it somewhere you can read") from None
    except OSError as err:
        raise GenreLabError(f"{path}: cannot read the file ({err.strerror or err})") from None
    kind = path.suffix.lower()
    try:
        if kind in DECOMPRESS:
            return DECOMPRESS[kind](data)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, zipfile.BadZipFile) as err:
        raise GenreLabError(f"{path}: not a valid {kind[1:]} file ({err}); re-create it, or decompress it and "
                            "give the .csv") from None
    if data[:2] == GZIP_MAGIC:
        raise GenreLabError(f"{path}: a gzip-compressed file; name it *.csv.gz (read as such) or decompress it "
                            f"(gunzip)")
    return data


def unzip_one(data: bytes) -> bytes:
    """The single file inside a .zip archive (pandas' rule: exactly one member)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise ValueError(f"expected exactly one file inside, found {names[:5]}")
        return archive.read(names[0])


DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress, ".zip": unzip_one}


def checked_utf8(path: Path, errors: str, key: str) -> tuple[bytes, bool]:
    """The file's bytes, checked to be UTF-8 piece by piece (never a whole-file string), and whether the reader
    must replace invalid bytes (``errors=replace``, warned with their lines); invalid bytes under ``errors=fail``
    -> GenreLabError naming the lines and ``key``, the setting that chose the policy."""
    data = read_bytes(path)
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for start in range(0, len(data), CHECK_BLOCK):
            decoder.decode(data[start:start + CHECK_BLOCK], final=start + CHECK_BLOCK >= len(data))
        return data, False
    except UnicodeDecodeError as err:
        if b"\x00" in data[:4096]:
            raise GenreLabError(f"{path}: a binary file, not a CSV or other text file (Excel or Parquet?). Export "
                                "it as UTF-8 CSV, or name a Parquet file *.parquet") from None
        lines = shorten(bad_utf8_lines(data))
        if errors == "replace":
            log.warning("%s: invalid UTF-8 bytes replaced by U+FFFD (%s=replace) on line(s) %s", path, key, lines)
            return data, True
        raise GenreLabError(
            f"{path}: invalid UTF-8 byte {err.object[err.start:err.start + 1]!r} on line(s) {lines}. Re-save the "
            f"file as UTF-8 (e.g. from Latin-1: iconv -f latin1 -t utf-8), or set {key}=replace."
        ) from None


def decode(path: Path, errors: str, key: str) -> str:
    """The file as UTF-8 text (a BOM is dropped) under the encoding-errors policy of ``checked_utf8``."""
    data, replace = checked_utf8(path, errors, key)
    return data.decode("utf-8-sig", errors="replace" if replace else "strict")


def bad_utf8_lines(data: bytes) -> list[int]:
    """1-based physical line numbers holding bytes that are not valid UTF-8."""
    bad = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            bad.append(number)
    return bad


def delimiter_hint(header: Any) -> str:
    """When a header line has no comma but another delimiter, say so (a frame: its single column's name)."""
    if isinstance(header, pd.DataFrame):
        if len(header.columns) != 1:
            return ""
        header = str(header.columns[0])
    if "," in header:
        return ""
    for sep, name in ((";", "semicolon (;)"), ("\t", "tab"), ("|", "pipe (|)")):
        if sep in header:
            return (f" Its header {header!r} looks {name}-separated, but genre_lab reads comma-separated CSV: "
                    f"re-save it with commas (e.g. pandas `pd.read_csv(path, sep={sep!r}).to_csv(path, index=False)`).")
    return ""


def record_lines(data: bytes, rows: int, sep: str = ",") -> np.ndarray | None:
    """The physical line where each of the ``rows`` data records of CSV ``data`` starts; None when the csv
    module splits the text differently from pandas (then line numbers fall back to row + 2).

    When the file has exactly one line per record (no quoted line breaks, no blank lines: the usual case) that is
    row + 2, found by counting newlines; only other files are scanned record by record."""
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if lines == rows + 1:
        return np.arange(2, rows + 2)
    starts = record_starts(io.BytesIO(data), sep)
    return starts if starts is not None and len(starts) == rows else None


def record_starts(stream: IO[bytes], sep: str = ",") -> np.ndarray | None:
    """The physical line where each data record of a CSV byte stream starts, read as the csv module splits it
    (blank lines skipped, as pandas does); None when it cannot split it."""
    reader = csv.reader(io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline=""), delimiter=sep)
    starts, consumed = [], 0
    try:
        for record in reader:
            if record and not (len(record) == 1 and not record[0].strip()):  # pandas skips blank lines
                starts.append(consumed + 1)
            consumed = reader.line_num
    except csv.Error:
        return None
    return np.asarray(starts[1:])  # the first record is the header


def line_numbers(mask: pd.Series, frame: pd.DataFrame, limit: int = 10) -> str:
    """File lines (header is line 1) where the rows of ``frame`` that ``mask`` selects start, shortened.

    A quoted field may span lines, so these are the physical lines ``read_csv`` recorded, not row + 2
    (which is all a frame built in memory can offer).
    """
    starts = frame.attrs.get(RECORD_LINES)
    return shorten([int(starts[i]) if starts is not None else int(i) + 2 for i in mask[mask].index], limit)


def places(mask: pd.Series, frame: pd.DataFrame, limit: int = 10) -> str:
    """Where the rows ``mask`` selects are in the file, as a user can look them up: ``line(s) 3, 6`` in CSV, TSV
    and JSONL; ``row index 4`` (0-based) in Parquet; ``split 'train' row index 4`` in a saved dataset."""
    return f"{frame.attrs.get(RECORD_UNIT, 'line(s)')} {line_numbers(mask, frame, limit)}"


def shorten(lines: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, lines[:limit]))
    return shown + (f", … ({len(lines)} rows)" if len(lines) > limit else "")
