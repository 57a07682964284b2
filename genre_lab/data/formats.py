"""Which reader a data path needs, and the one call that reads any of them into a frame: CSV and TSV (files.py),
JSON Lines (jsonl.py), Parquet files or folders of them and Hugging Face datasets saved with ``save_to_disk``
(columnar.py). ``write_frame`` is the output side (predictions by the extension of ``out=``); ``split_folders``
maps a saved dataset dict's splits onto the train, validation and test files.

Every reader returns the same thing: scalar cells as strings ("" when missing), a list-valued cell (a genre list) as
a Python list of strings, and in ``frame.attrs`` where each row is in the file (files.RECORD_LINES/RECORD_UNIT) and
the type of any column that is neither (``COLUMN_TYPES``), which table.py refuses where text is needed.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from genre_lab.data.files import DOWNLOAD_HINT, read_csv
from genre_lab.errors import GenreLabError, require_choice
from genre_lab.io import atomic_target, atomic_write_text

log = logging.getLogger(__name__)

FORMATS = ("auto", "csv", "tsv", "jsonl", "parquet", "dataset")
COMPRESSED = (".gz", ".bz2", ".xz", ".zip")
BY_SUFFIX = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".parquet": "parquet", ".pq": "parquet"}
SEPARATORS = {"csv": ",", "tsv": "\t"}  # the delimited text formats and their field separator
OUTPUTS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}
DATASET_FILES = ("dataset_info.json", "state.json")  # what Dataset.save_to_disk writes beside its .arrow files
DATASET_DICT = "dataset_dict.json"  # what DatasetDict.save_to_disk writes beside one folder per split


def detect_format(path: Path, chosen: str = "auto", key: str = "data.format") -> str:
    """``chosen`` unless it is ``auto``; else by the file's extension (under any compression suffix) or, for a
    folder, by what is in it. Unknown -> GenreLabError naming the setting that overrides it."""
    require_choice(chosen, key, FORMATS)
    if chosen != "auto":
        return chosen
    if path.is_dir():
        return folder_format(path)
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in COMPRESSED:
        suffixes.pop()
    found = BY_SUFFIX.get(suffixes[-1] if suffixes else "")
    if found is None:
        raise GenreLabError(f"{path}: cannot tell the format from the name {path.name!r}; name it .csv, .tsv, "
                            f".jsonl, .parquet (or a saved dataset folder), or set {key}=csv|tsv|jsonl|parquet|dataset")
    return found


def folder_format(path: Path) -> str:
    """A saved dataset (or dataset dict), or a folder of Parquet files (one table in name order)."""
    if (path / DATASET_DICT).is_file() or all((path / name).is_file() for name in DATASET_FILES):
        return "dataset"
    if any(path.glob("*.parquet")):
        return "parquet"
    shown = sorted(p.name for p in path.iterdir())
    files = [name for name in shown if any(s.lower() in BY_SUFFIX for s in Path(name).suffixes)]
    raise GenreLabError(f"{path} is a folder, but not a saved Hugging Face dataset (no {DATASET_DICT}, or "
                        f"{' and '.join(DATASET_FILES)}) nor a folder of .parquet files; it holds {shown[:6]}. Give "
                        + (f"the file itself, e.g. {path / files[0]}, " if files else "a data file, ")
                        + "or a folder written by Dataset.save_to_disk / DatasetDict.save_to_disk")


def read_frame(path: str | Path, errors: str, key: str, fmt: str = "auto", format_key: str = "data.format"
               ) -> pd.DataFrame:
    """The file or folder at ``path`` as a frame (see the module doc). ``errors``/``key``: the encoding-errors
    policy of the text formats and the setting that chose it; ``fmt``/``format_key``: likewise for the format."""
    path = Path(path)
    if not path.exists():
        raise GenreLabError(f"data file not found: {path}. {DOWNLOAD_HINT}")
    found = detect_format(path, fmt, format_key)
    if path.is_dir() != (found == "dataset") and found != "parquet":  # Parquet: a file or a folder of files
        raise GenreLabError(f"{path}: {format_key}={found} reads a {'file' if not path.is_dir() else 'folder'}, "
                            f"and this is a {'folder' if path.is_dir() else 'file'}; set {format_key}=auto")
    if found in SEPARATORS:
        return read_csv(path, errors, key, sep=SEPARATORS[found])
    if found == "jsonl":
        from genre_lab.data.jsonl import read_jsonl
        return read_jsonl(path, errors, key)
    from genre_lab.data.columnar import read_parquet, read_saved_dataset
    return read_parquet(path) if found == "parquet" else read_saved_dataset(path)


def dataset_splits(path: str | Path) -> list[str] | None:
    """The split names of a saved ``DatasetDict`` folder, in its own order; None for anything else."""
    index = Path(path) / DATASET_DICT
    if not index.is_file():
        return None
    try:
        return list(json.loads(index.read_text())["splits"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GenreLabError(f"{index}: not a readable dataset dict index ({err}); re-save the dataset with "
                            "DatasetDict.save_to_disk") from None


def output_format(path: Path, key: str = "out") -> str:
    """The output format by ``path``'s extension; anything else -> GenreLabError before any work is done."""
    found = OUTPUTS.get(path.suffix.lower())
    if found is None:
        raise GenreLabError(f"{key}={path}: write predictions to a .csv, .tsv, .jsonl or .parquet file "
                            f"(chosen by the extension), e.g. {key}={path.with_suffix('.csv')}")
    return found


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """``frame`` to ``path`` in the format of its extension, atomically (no half-written file is ever seen);
    numbers stay numbers in JSONL and Parquet."""
    fmt = output_format(path)
    if fmt in SEPARATORS:
        return atomic_write_text(path, frame.to_csv(index=False, sep=SEPARATORS[fmt]))
    with atomic_target(path) as tmp:
        if fmt == "jsonl":
            frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


SPLIT_NAMES = {"train_csv": ("train",), "val_csv": ("validation", "valid", "val", "dev"), "test_csv": ("test",)}


def split_folders(settings: dict[str, Any]) -> dict[str, Any]:
    """A saved ``DatasetDict`` as ``train_csv``: its train split trains, and its validation and test splits serve
    as ``val_csv`` / ``test_csv`` unless those are given (each then names its split's own folder)."""
    folder = settings["train_csv"]
    splits = dataset_splits(folder) if folder and Path(folder).is_dir() else None
    if splits is None:
        return settings
    if "train" not in splits:
        raise GenreLabError(f"{folder}: a dataset dict without a 'train' split (it has {splits}); give the split "
                            f"to train on, e.g. data.train_csv={Path(folder) / splits[0]}")
    chosen = {}
    for key, names in SPLIT_NAMES.items():
        found = next((n for n in names if n in splits), None)
        if (key == "train_csv" or not settings.get(key)) and found:
            chosen[key] = str(Path(folder) / found)
    log.info("%s: dataset dict with splits %s; using %s", folder, splits, chosen)
    return {**settings, **chosen}
