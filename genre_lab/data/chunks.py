"""A data file in frames of a bounded number of rows, and an output written frame by frame: what lets predict run
over a file of any length in bounded memory. Each frame is what formats.read_frame gives for those rows, its
positions (files.RECORD_LINES) counted in the whole file.

A CSV or TSV read in pieces cannot know which physical line a record starts on (a quoted field may span lines):
its frames carry row + 2, exact whenever the file has one line per record (``count_lines`` says), and
``csv_record_starts`` scans the file for the others, once, only when a message needs them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from genre_lab.data.files import DOWNLOAD_HINT, RECORD_LINES, read_bytes, record_starts
from genre_lab.data.formats import SEPARATORS, detect_format, read_frame
from genre_lab.errors import GenreLabError
from genre_lab.io import atomic_target

BLOCK = 1 << 24
OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes as a stream, decompressed by its suffix (a .zip is read whole: one member, small)."""
    opener = OPENERS.get(path.suffix.lower())
    if path.suffix.lower() == ".zip":
        return io.BytesIO(read_bytes(path))
    return opener(path, "rb") if opener else path.open("rb")


def count_lines(path: Path) -> int:
    """Newlines in the (decompressed) file, plus one for a last line without one; read in blocks."""
    count, last = 0, b"\n"
    with open_binary(path) as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            count, last = count + block.count(b"\n"), block[-1:]
    return count + (last != b"\n")


def iter_frames(path: str | Path, errors: str, key: str, fmt: str, format_key: str,
                rows: int) -> Iterator[pd.DataFrame]:
    """``path`` in frames of at most ``rows`` rows (a saved dataset or Parquet: its record batches)."""
    path = Path(path)
    if not path.exists():
        raise GenreLabError(f"data file not found: {path}. {DOWNLOAD_HINT}")
    found = detect_format(path, fmt, format_key)
    if found in SEPARATORS:
        yield from csv_frames(path, errors, key, found, rows)
    elif found == "parquet" and path.is_file():
        yield from parquet_frames(path, rows)
    else:  # JSON Lines and saved datasets: read whole (their own readers), handed out in pieces
        frame = read_frame(path, errors, key, found, format_key)
        for start in range(0, max(len(frame), 1), rows):
            piece = frame.iloc[start : start + rows].reset_index(drop=True)
            piece.attrs = {**frame.attrs, RECORD_LINES: frame.attrs[RECORD_LINES][start : start + rows]}
            yield piece


def csv_frames(path: Path, errors: str, key: str, fmt: str, rows: int) -> Iterator[pd.DataFrame]:
    """pandas' chunked reader; a decoding or parsing error falls back to the whole-file reader, whose messages
    name the lines (read_frame raises them: bad bytes under ``errors=fail``, a ragged row)."""
    replace = errors == "replace"
    done = 0
    try:
        with open_binary(path) as handle:
            reader = pd.read_csv(handle, sep=SEPARATORS[fmt], dtype=object, keep_default_na=False, na_filter=False,
                                 encoding="utf-8-sig", encoding_errors="replace" if replace else "strict",
                                 chunksize=rows)
            for frame in reader:
                frame = frame.reset_index(drop=True)
                frame.attrs[RECORD_LINES] = np.arange(done + 2, done + 2 + len(frame))
                done += len(frame)
                yield frame
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError):
        read_frame(path, errors, key, fmt)  # raises the message naming the place
        raise


def parquet_frames(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genre_lab.data.columnar import arrow_frame
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=rows)
        done = 0
        for batch in batches:
            frame = arrow_frame(pa.Table.from_batches([batch]), "row index")
            frame.attrs[RECORD_LINES] = frame.attrs[RECORD_LINES] + done
            done += len(frame)
            yield frame
    except (OSError, pa.ArrowException) as err:
        raise GenreLabError(f"{path}: not a readable Parquet file ({err})") from None


def csv_record_starts(path: Path, sep: str) -> np.ndarray | None:
    """The physical line where each data record starts, from one streamed scan of the file (files.record_starts)."""
    with open_binary(path) as handle:
        return record_starts(handle, sep)


class FrameWriter:
    """``with FrameWriter(path) as out: out.write(frame) …``: frames appended to a temporary file beside ``path``
    in its extension's format, renamed onto ``path`` only when every frame is written (an error leaves nothing);
    ``replace=False``: io.OutputTaken then if ``path`` appeared meanwhile, and that file is kept."""

    def __init__(self, path: Path, fmt: str, replace: bool = True) -> None:
        self.path, self.fmt, self.rows, self.frames, self.replace = path, fmt, 0, 0, replace
        self.parquet: Any = None

    def __enter__(self) -> FrameWriter:
        self.target = atomic_target(self.path, self.replace)
        self.handle = open(self.target.__enter__(), "wb")
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            table = pa.Table.from_pandas(frame, preserve_index=False,
                                         schema=self.parquet.schema if self.parquet else None)
            self.parquet = self.parquet or pq.ParquetWriter(self.handle, table.schema)
            self.parquet.write_table(table)
        elif self.fmt == "jsonl":
            self.handle.write(frame.to_json(orient="records", lines=True, force_ascii=False).encode())
        else:
            text = frame.to_csv(index=False, header=not self.frames, sep=SEPARATORS[self.fmt])
            self.handle.write(text.encode())
        self.rows += len(frame)
        self.frames += 1

    def __exit__(self, *exc: Any) -> None:
        if self.parquet is not None:
            self.parquet.close()
        self.handle.close()
        self.target.__exit__(*exc)
