"""The README's calibration table: a shipped recipe trained with `calibration=temperature` on each shared file, its
validation figures before (`val_uncalibrated/…`) and after (`val/…`) the fitted temperatures.

    python scripts/calibration_table.py [--out calibration_results] [--seed 1]

runs, in --out/<data>/ (skipped when it already holds metrics.json, so an interrupted table resumes):
    genre-lab train experiment=<recipe> calibration=temperature seed=<seed>
and prints (and writes to --out/table.md) ECE, multi-label ECE, Brier, top-1 and tuned micro/macro-F1 before → after.
Calibration is fitted after training, so one run gives both columns: the network is the same.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from genre_lab.io import atomic_write_text
from genre_lab.runs.layout import RunLayout

RECIPES = {"tmdb_10genre": "tmdb_10genre_recipe", "tmdb_multilabel": "tmdb_multilabel_recipe"}
FIGURES = (("ECE (top-1)", "ece"), ("ECE (every genre)", "ece_genres"), ("Brier", "brier"),
           ("top-1", "top1_accuracy"), ("micro-F1 (tuned)", "f1_micro"), ("macro-F1 (tuned)", "f1_macro"))


def train(run: Path, data: str, seed: int) -> None:
    if RunLayout(run).metrics.is_file():
        return
    args = [f"experiment={RECIPES[data]}", "calibration=temperature", f"seed={seed}", f"hydra.run.dir={run}"]
    print("$ genre-lab train", " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "genre_lab", "train", *args])
    if done.returncode != 0:  # genre-lab has printed why
        sys.exit(f"calibration_table: error: genre-lab train {' '.join(args)} failed (exit {done.returncode})")


def rows(run: Path, data: str) -> list[str]:
    metrics = json.loads(RunLayout(run).metrics.read_text())
    t = metrics["calibration"]["temperature"]
    shown = f"{t[0]:.2f}" if len(t) == 1 else f"{min(t):.2f}–{max(t):.2f} ({len(t)} genres)"
    cells = [f"{metrics[f'val_uncalibrated/{key}']:.4f} → {metrics[f'val/{key}']:.4f}" for _, key in FIGURES]
    return [f"| {data} | {shown} | " + " | ".join(cells) + " |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("calibration_results"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", default=",".join(RECIPES), help="comma-separated: " + ", ".join(RECIPES))
    args = parser.parse_args()
    table = ["| data | temperature | " + " | ".join(name for name, _ in FIGURES) + " |",
             "|---|---|" + "---|" * len(FIGURES)]
    for data in args.data.split(","):
        if data not in RECIPES:
            sys.exit(f"calibration_table: error: --data {data}: choose from {', '.join(RECIPES)}")
        run = args.out.resolve() / data
        train(run, data, args.seed)
        table += rows(run, data)
    text = "\n".join(table) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "table.md", text)


if __name__ == "__main__":
    main()
