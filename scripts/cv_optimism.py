"""How optimistic thresholds tuned on the scored rows are: a k-fold cross-validation per split seed, its held-out
figures with thresholds tuned out of fold (``val/``) against the same rows with thresholds tuned on themselves
(``val_tuned_on_val/``), as a single run reports them. The table of README "Cross-validation".

    python scripts/cv_optimism.py [--model tfidf_lr] [--seeds 1 2 3] [--folds 5] [--work /tmp/cv_optimism]

Each seed is ``data.seed`` (it moves the validation split and the folds); the files are the shared ones.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import pandas as pd

DATA = {"tmdb_10genre": "tmdb_movies_10genre.csv", "tmdb_multilabel": "tmdb_movies_multilabel.csv"}
FIGURES = ("f1_micro", "f1_macro")


def cross_validate(data: str, model: str, seed: int, folds: int, work: Path) -> dict[str, float]:
    run = work / f"{data}_{model}_seed{seed}"
    if not (run / "metrics.json").is_file():
        started = time.perf_counter()
        command = ["genre-lab", "train", f"model={model}", f"data={data}", f"data.folds={folds}", f"data.seed={seed}",
                   "logger=csv", f"hydra.run.dir={run}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
        (run / "cv_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    metrics = json.loads((run / "metrics.json").read_text())
    row = {"data": data, "seed": seed, "wall_minutes": float((run / "cv_seconds.txt").read_text()) / 60}
    for name in FIGURES:
        row[f"{name} out of fold"] = metrics[f"val/{name}"]
        row[f"{name} tuned on itself"] = metrics[f"val_tuned_on_val/{name}"]
        row[f"{name} optimism"] = metrics[f"val_tuned_on_val/{name}"] - metrics[f"val/{name}"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tfidf_lr")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cv_optimism"))
    args = parser.parse_args()
    rows = [cross_validate(data, args.model, seed, args.folds, args.work) for data in DATA for seed in args.seeds]
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.round(4).to_string(index=False))
    summary = table.drop(columns="seed").groupby("data").agg(["mean", "std"]).round(4)
    print(summary.to_string())


if __name__ == "__main__":
    main()
