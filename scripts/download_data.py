#!/usr/bin/env python
"""Fetch the public movie-genre-prediction data (Hugging Face `datadrivenscience/movie-genre-prediction`).

Needs internet once. Writes `data/movie-genre-prediction/train.csv` (and `test.csv` when the data set has a
test split) in the columns genre_lab's default data config expects: id, movie_name, synopsis, genre.

    python scripts/download_data.py [--out DIR] [--repo OWNER/NAME]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO_ID = "datadrivenscience/movie-genre-prediction"
COLUMNS = ["id", "movie_name", "synopsis", "genre"]


def read_split(files: list[Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in sorted(files)]
    return pd.concat(frames, ignore_index=True)


def convert(snapshot: Path, out: Path) -> list[Path]:
    """Turn a downloaded snapshot (CSV or parquet files per split) into train.csv / test.csv under ``out``."""
    written = []
    for split in ("train", "test"):
        files = [p for p in snapshot.rglob("*") if p.suffix in (".csv", ".parquet") and split in p.name]
        if not files:
            continue
        frame = read_split(files)
        wanted = COLUMNS if split == "train" else [c for c in COLUMNS if c in frame.columns]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            raise SystemExit(f"error: {split} files {files} lack columns {missing}; found {list(frame.columns)}")
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{split}.csv"
        tmp = target.with_suffix(".csv.tmp")
        frame[wanted].to_csv(tmp, index=False)
        tmp.replace(target)
        written.append(target)
    if not any(p.name == "train.csv" for p in written):
        raise SystemExit(f"error: no train split (*train*.csv / *train*.parquet) found under {snapshot}")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/movie-genre-prediction"))
    parser.add_argument("--repo", default=REPO_ID)
    args = parser.parse_args(argv)
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(args.repo, repo_type="dataset",
                                          allow_patterns=["*.csv", "*.parquet", "**/*.csv", "**/*.parquet"]))
    except Exception as err:  # network, auth or offline mode: one clear message
        print(f"error: could not download {args.repo} from the Hugging Face Hub ({type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''}). This needs internet. Offline, train on the bundled "
              "sample (genre-lab train experiment=quickstart) or your own CSV (data.train_csv=...).",
              file=sys.stderr)
        return 2
    for path in convert(snapshot, args.out):
        print(f"wrote {path} ({sum(1 for _ in path.open()) - 1} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
