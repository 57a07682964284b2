"""The README's recipe table: TF-IDF + LR, a shipped transformer recipe over 3 seeds, and their ensembles.

For one data config (the seeded 80/20 split of a shared file), in --out/<data>/:
1. `genre-lab train model=tfidf_lr data=<data>` (deterministic: one run);
2. `genre-lab train experiment=<recipe> seed=k` for k = 1, 2, 3 (as `-m seed=1,2,3` would; the split is fixed
   by data.seed, the seed moves initialisation, dropout and batch order);
3. `genre-lab ensemble runs=[tfidf, recipe seed k]` for each seed (equal weights, thresholds tuned as usual).
Prints, and writes to --out/<data>/table.md, the mean ± std over the seeds of top-1 accuracy, tuned micro-F1 and
tuned macro-F1 (validation rows; tuned figures are optimistic by construction, for every row alike).

    python scripts/recipe_table.py --data tmdb_10genre --experiment tmdb_10genre_recipe [--out recipe_results]

Steps whose run directory already holds metrics.json are not run again (so an interrupted table resumes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from genre_lab.io import atomic_write_text
from genre_lab.runs.layout import RunLayout
from genre_lab.scoring.seed_groups import interval

FIGURES = (("top-1", "val/top1_accuracy"), ("micro-F1 (tuned)", "val/f1_micro"), ("macro-F1 (tuned)", "val/f1_macro"))


def genre_lab(*args: str, cwd: Path) -> None:
    command = [sys.executable, "-m", "genre_lab", *args]
    print("$ genre-lab", " ".join(args), flush=True)
    done = subprocess.run(command, cwd=cwd)
    if done.returncode != 0:  # genre-lab has printed why; pass its exit code on (2: bad input)
        print(f"recipe_table: error: step failed (exit {done.returncode}): genre-lab {' '.join(args)}", file=sys.stderr)
        sys.exit(done.returncode)


def finished(run: Path) -> bool:
    return RunLayout(run).metrics.is_file()


def metrics(run: Path) -> dict:
    return RunLayout(run).read_metrics()


def row(name: str, runs: list[Path]) -> str:
    figures = [metrics(r) for r in runs]
    cells = []
    for _, key in FIGURES:
        mean, std, _ = interval([f[key] for f in figures])
        cells.append(f"{mean:.3f}" if len(runs) == 1 else f"{mean:.3f} ± {std:.3f}")
    return f"| {name} | {len(runs)} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="data config, e.g. tmdb_10genre or tmdb_multilabel")
    parser.add_argument("--experiment", required=True, help="the recipe, e.g. tmdb_10genre_recipe")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--out", type=Path, default=Path("recipe_results"))
    args = parser.parse_args()
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} is a file; give a folder (it is created if missing)")
    root = (args.out / args.data).resolve()
    root.mkdir(parents=True, exist_ok=True)
    tfidf, recipe = root / "tfidf_lr", root / "recipe"
    if not finished(tfidf):
        genre_lab("train", "model=tfidf_lr", f"data={args.data}", f"hydra.run.dir={tfidf}", cwd=root)
    seeds = args.seeds.split(",")
    jobs = [recipe / f"seed{seed}" for seed in seeds]
    for seed, job in zip(seeds, jobs, strict=True):  # one run per seed (what -m seed=1,2,3 runs, one at a time)
        if not finished(job):
            resume = ["resume=true"] if RunLayout(job).last.is_file() else []  # an interrupted run continues
            genre_lab("train", f"experiment={args.experiment}", f"seed={seed}", *resume, f"hydra.run.dir={job}",
                      "callbacks.progress_bar=null", cwd=root)
    ensembles = [root / f"ensemble_seed{seed}" for seed in seeds]
    for job, ensemble in zip(jobs, ensembles, strict=True):
        if not finished(ensemble):
            genre_lab("ensemble", f"runs=[{tfidf},{job}]", f"hydra.run.dir={ensemble}", cwd=root)
    lines = [f"{args.data}: seeded 80/20 split (data.seed 42), validation rows; mean ± std over seeds {args.seeds}",
             "", "| run | runs | " + " | ".join(name for name, _ in FIGURES) + " |", "|---" * (2 + len(FIGURES)) + "|",
             row("TF-IDF + LR (model=tfidf_lr)", [tfidf]), row(f"experiment={args.experiment}", jobs),
             row("ensemble of the two (equal weights)", ensembles)]
    text = "\n".join(lines) + "\n"
    atomic_write_text(root / "table.md", text)
    print(text)


if __name__ == "__main__":
    main()
