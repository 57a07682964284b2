"""``val_probs.npz``: a finished run's validation probabilities, targets and movie ids, with its genres.

Runs are compared row by row from these files (paired bootstrap, ensembles) without running any network.
The rule the run decided with is in its ``metrics.json`` (``decoder``).
"""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_lab.errors import GenreLabError
from genre_lab.io import atomic_target

FORMAT = 1


@dataclass
class StoredProbs:
    movie_ids: np.ndarray  # str, one per row
    probs: np.ndarray  # float32 [rows, genres]
    targets: np.ndarray  # uint8 multi-hot [rows, genres]
    labels: tuple[str, ...]  # the genres, in column order

    def save(self, path: str | Path) -> Path:
        with atomic_target(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, format=np.int64(FORMAT), movie_ids=np.asarray(self.movie_ids, dtype=str),
                                probs=self.probs.astype(np.float32), targets=self.targets.astype(np.uint8),
                                labels=np.asarray(self.labels, dtype=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> StoredProbs:
        path = Path(path)
        if not path.is_file():
            raise GenreLabError(f"{path} does not exist: runs store their validation probabilities since this "
                                "version; retrain the run, or score it again with genre-lab eval")
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = cls(data["movie_ids"], data["probs"], data["targets"], tuple(str(x) for x in data["labels"]))
        except (OSError, ValueError, KeyError) as err:
            raise GenreLabError(f"{path} is not a readable val_probs.npz ({err})") from None
        if stored.probs.shape != stored.targets.shape or len(stored.movie_ids) != len(stored.probs):
            raise GenreLabError(f"{path}: probabilities {stored.probs.shape}, targets {stored.targets.shape} and "
                                f"{len(stored.movie_ids)} ids do not match")
        return stored

    def aligned_to(self, other: StoredProbs, names: tuple[str, str]) -> StoredProbs:
        """These rows in ``other``'s row order; a GenreLabError when the two were not scored on the same rows
        and genres (``names`` say which runs, for the message)."""
        if self.labels != other.labels:
            raise GenreLabError(f"{names[0]} and {names[1]} have different genres ({list(self.labels)} vs "
                                f"{list(other.labels)}): they cannot be compared row by row")
        ours, theirs = list(map(str, self.movie_ids)), list(map(str, other.movie_ids))
        if len(set(ours)) != len(ours) or set(ours) != set(theirs):
            only = sorted(set(ours) ^ set(theirs))[:5]
            raise GenreLabError(f"{names[0]} and {names[1]} were scored on different validation rows ({len(ours)} "
                                f"vs {len(theirs)} rows; ids in one only, e.g. {only}): compare runs trained with "
                                "the same data, split (data.val_size, seed of the split) and sampling")
        position = {movie: i for i, movie in enumerate(ours)}
        order = np.array([position[movie] for movie in theirs])
        if not np.array_equal(self.targets[order], other.targets):
            raise GenreLabError(f"{names[0]} and {names[1]} have the same row ids but different genres on them: "
                                "they were trained on different files")
        return StoredProbs(self.movie_ids[order], self.probs[order], self.targets[order], self.labels)


def validation_rows(path: str | Path) -> tuple[int, str] | None:
    """Which rows a run was scored on: (their number, a digest of the set of movie ids), read from its
    ``val_probs.npz``; None when there is none or it cannot be read. Figures of runs with different digests are
    not comparable (compare marks them), even with the same number of rows."""
    try:
        with np.load(path, allow_pickle=False) as data:
            ids = sorted(map(str, data["movie_ids"]))  # loads this array only, not the probabilities
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):  # a mark, not worth a crash
        return None
    return len(ids), hashlib.sha256("\0".join(ids).encode()).hexdigest()[:8]
