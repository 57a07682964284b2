"""The labelled rows a finished run is scored on: its own validation split (rebuilt from the data settings stored
with its model) or any labelled CSV. eval scores them; soup tunes and picks its members on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genre_lab.data.datamodule import data_defaults
from genre_lab.data.movie_data import MovieData
from genre_lab.data.table import TableSpec, read_table
from genre_lab.errors import GenreLabError
from genre_lab.io import file_digest
from genre_lab.runs.finished import FinishedRun


@dataclass
class EvalData:
    """Rows to score: movie ids, model texts, multi-hot targets, and what identifies them for the cache."""

    name: str
    movie_ids: list[str]
    texts: list[str]
    targets: np.ndarray
    identity: dict[str, Any]
    token_cache_dir: str | None = None  # where a transformer caches these rows' token ids (the validation split)


ROW_POLICIES = ("empty_text", "encoding_errors")  # eval.yaml's keys for the rows it reads (README, Errors)


def validation_split(run: FinishedRun, spec: TableSpec, token_cache_dir: str | None) -> EvalData:
    """The run's own validation rows, rebuilt from the data settings stored with its model (and ``spec``'s row
    policies).

    Only the rows and texts come from the data (``MovieData``, no tokenizer): each model cuts and tokenizes them
    itself (a transformer as it was trained, into ``token_cache_dir``, this machine's ``paths.cache_dir``, not the
    training machine's).
    """
    if not run.data_hparams:
        raise GenreLabError(f"{run.model_file} stores no data settings; pass input_csv=<a labelled CSV>")
    hp = {**run.data_hparams, **{key: getattr(spec, key) for key in ROW_POLICIES}}
    data = MovieData({**data_defaults(), **hp, "token_cache_dir": None})
    data.spec = spec  # the same settings, with eval's key names in its messages
    if data.label_space != run.label_space:
        raise GenreLabError(f"the training data now has genres {list(data.label_space.names)}, the "
                            f"model {list(run.label_space.names)}: it changed since training")
    texts, targets, movie_ids = data.texts_and_targets("val")
    files = [hp[k] for k in ("train_csv", "val_csv") if hp.get(k)]
    identity = {"split": "val", "data": hp, "files": {f: file_digest(f) for f in files}}
    return EvalData("validation split", movie_ids, texts, targets, identity, token_cache_dir)


def labelled_csv(run: FinishedRun, spec: TableSpec, path: str) -> EvalData:
    """Any CSV with the run's text columns and label column (``spec``: the run's, with eval's row policies)."""
    table = read_table(path, spec, require_labels=True)
    space = run.label_space
    table.labels, unknown = space.conform(table.labels)
    if unknown:
        raise GenreLabError(f"{path}: genre(s) {unknown} are not among the model's genres {list(space.names)}: "
                            f"{run.model_file} was trained on another label space. Evaluate a run trained with "
                            "these genres, or remove those rows.")
    identity = {"csv": str(Path(path).resolve()), "sha256": file_digest(path), "spec": spec.__dict__}
    return EvalData(str(path), table.movie_ids, table.texts, space.encode(table.labels), identity)
