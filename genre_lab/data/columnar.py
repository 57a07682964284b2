"""Arrow-backed inputs into formats.py's frame: Parquet (a file, or a folder of files read as one table) and
Hugging Face datasets saved with ``save_to_disk`` (``datasets``, an optional extra; its ``ClassLabel`` ids become
genre names). Rows are named by their 0-based row index, as ``table.slice`` and ``dataset[i]`` count them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from genre_lab.data.files import COLUMN_TYPES, RECORD_LINES, RECORD_UNIT
from genre_lab.data.formats import DATASET_DICT, dataset_splits
from genre_lab.errors import GenreLabError


def is_scalar(kind: pa.DataType) -> bool:
    """Types whose values read as one cell of text (a number, a date, a category)."""
    if pa.types.is_dictionary(kind):
        return is_scalar(kind.value_type)
    return any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
                                       pa.types.is_floating, pa.types.is_boolean, pa.types.is_decimal,
                                       pa.types.is_temporal, pa.types.is_null))


def is_list(kind: pa.DataType) -> bool:
    return pa.types.is_list(kind) or pa.types.is_large_list(kind)


def as_text(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Scalar cells as strings, nulls as ""."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return pc.fill_null(pc.cast(column, pa.string()), "").to_numpy(zero_copy_only=False)


def arrow_frame(table: pa.Table, unit: str) -> pd.DataFrame:
    """An Arrow table as formats.py's frame; ``unit`` names a row in messages (e.g. ``row index``)."""
    columns: dict[str, Any] = {}
    types: dict[str, str] = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        if is_scalar(column.type):
            columns[name] = as_text(column)
        elif is_list(column.type) and is_scalar(column.type.value_type):
            values = as_text(pc.list_flatten(column))
            ends = np.cumsum(pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False))
            columns[name] = pd.Series([v.tolist() for v in np.split(values, ends[:-1])] if len(ends) else [],
                                      dtype=object)
        else:
            columns[name] = pd.Series(column.to_pylist(), dtype=object)
            types[name] = str(column.type)
    frame = pd.DataFrame(columns)
    frame.attrs.update({RECORD_LINES: np.arange(table.num_rows), RECORD_UNIT: unit, COLUMN_TYPES: types})
    return frame


def read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet file, or every .parquet file of a folder (and its sub-folders) in name order as one table (files
    such as Spark's _SUCCESS are not read)."""
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else path  # a folder: its .parquet files only
    try:
        table = pq.ParquetDataset(files).read() if path.is_dir() else pq.read_table(files)
    except (OSError, pa.ArrowException) as err:
        raise GenreLabError(f"{path}: not a readable Parquet {'folder' if path.is_dir() else 'file'} ({err}). "
                            "Re-write it (e.g. pandas DataFrame.to_parquet) or set data.format to its format") from None
    return arrow_frame(table, "row index")


def load_dataset_folder(path: Path) -> Any:
    try:
        import datasets
    except ImportError:
        raise GenreLabError(f"{path} is a saved Hugging Face dataset; reading it needs the datasets package: "
                            "pip install 'genre_lab[datasets]'") from None
    datasets.disable_progress_bars()
    try:
        return datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError, pa.ArrowException) as err:
        raise GenreLabError(f"{path}: not a readable saved dataset ({type(err).__name__}: {err}); re-save it "
                            "with Dataset.save_to_disk") from None


def read_saved_dataset(path: Path) -> pd.DataFrame:
    """One split saved by ``Dataset.save_to_disk`` (a split folder of a ``DatasetDict`` counts as one)."""
    splits = dataset_splits(path)
    if splits is not None:
        raise GenreLabError(f"{path} is a dataset dict with splits {splits}; give one split's folder, e.g. "
                            f"{path / splits[-1]}")
    dataset = load_dataset_folder(path)
    table = with_genre_names(dataset.with_format("arrow")[:], dataset.features)
    split = path.name if (path.parent / DATASET_DICT).is_file() else None
    return arrow_frame(table, f"split {split!r} row index" if split else "row index")


def with_genre_names(table: pa.Table, features: Any) -> pa.Table:
    """``ClassLabel`` columns (and lists of them) with their names instead of their integer ids."""
    for name, feature in features.items():
        inner = getattr(feature, "feature", None)  # List(ClassLabel) / Sequence(ClassLabel)
        label = feature if hasattr(feature, "int2str") else inner if hasattr(inner, "int2str") else None
        if label is None:
            continue
        names = pa.array(label.names, pa.string())
        column = table.column(name).combine_chunks()
        if is_list(column.type):
            column = type(column).from_arrays(column.offsets, names.take(column.flatten()))
        else:
            column = names.take(column)
        table = table.set_column(table.column_names.index(name), name, column)
    return table
