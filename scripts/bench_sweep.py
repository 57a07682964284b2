"""Benchmark of the Optuna search (README "Sweeps: measured"): what pruning saves, and parallel trials on CPU.

1. The same seeded TPE search (16 trials of MiniLM, 3 epochs each unless pruned, on a fixed stratified 25 %
   sample of tmdb_movies_10genre.csv) with pruning off and on: training epochs run (the compute), wall time,
   best val/f1_micro.
2. Trials per hour of 4 one-epoch trials: one at a time with all cores vs `hydra/launcher=parallel` with 2 at
   once (cores split between them).

    python scripts/bench_sweep.py [--csv ../shared/data/tmdb_movies_10genre.csv] [--out bench_sweep]

Prints both tables and the machine, and writes bench_sweep.json / bench_sweep.md into --out. Each search is a
plain `genre-lab train hparams_search=optuna …` command (printed), so any figure can be reproduced alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]


def stratified_sample(csv: Path, frac: float, seed: int, out: Path) -> Path:
    """A fixed per-genre share of the rows (the first genre of each row decides its stratum)."""
    frame = pd.read_csv(csv)
    label = frame["genre"] if "genre" in frame else frame["genres"].str.split("|").str[0]
    sample = frame.groupby(label, group_keys=False).sample(frac=frac, random_state=seed)
    path = out / f"sample_{int(frac * 100)}pct.csv"
    sample.sort_index().to_csv(path, index=False)
    return path


def search(name: str, out: Path, common: list[str], extra: list[str], reuse: bool = False) -> dict:
    """Run one search; its figures from the sweep directory (with ``reuse``, those of an earlier run of the
    same command in ``out``, so one half of the benchmark can be rerun alone)."""
    sweep, saved = out / name, out / f"{name}.json"
    if reuse and saved.is_file():
        figures = json.loads(saved.read_text())
        if figures["command"].endswith(" ".join([*common, *extra, f"hydra.sweep.dir={sweep}"])):
            print(f"{name}: figures of the earlier run in {sweep}", flush=True)
            return figures
    command = [sys.executable, "-m", "genre_lab", "train", "hparams_search=optuna", *common, *extra,
               f"hydra.sweep.dir={sweep}"]
    print("$", " ".join(command[2:]), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=out, capture_output=True, text=True)
    wall = time.perf_counter() - started
    (out / f"{name}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        sys.exit(f"{name} failed (exit {result.returncode}); see {out / f'{name}.log'}:\n{result.stderr[-3000:]}")
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    jobs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]
    figures = {"name": name, "command": " ".join(command[2:]), "wall_s": wall, "trials": len(jobs),
               "epochs": sum(j["epochs"] for j in jobs), "states": results["states"],
               "best_value": results.get("best_value"), "best_trial": results.get("best_trial"),
               "trials_per_hour": len(jobs) / wall * 3600}
    saved.write_text(json.dumps(figures, indent=2))
    return figures


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{len(os.sched_getaffinity(0))} CPU cores ({cpu}), {gpu}, torch {torch.__version__}"


def table(rows: list[dict], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[k]:.4f}" if isinstance(row[k], float) and k == "best_value"
                                       else f"{row[k]:.1f}" if isinstance(row[k], float) else str(row[k])
                                       for k in keys) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=ROOT.parent / "shared" / "data" / "tmdb_movies_10genre.csv")
    parser.add_argument("--out", type=Path, default=Path("bench_sweep"))
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--frac", type=float, default=0.25)
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text (the mean is 63)")
    parser.add_argument("--pruner", default="percentile", help="hydra/sweeper/pruner for the pruned search")
    parser.add_argument("--skip", choices=["pruning", "parallel"], help="run only the other part")
    parser.add_argument("--reuse", action="store_true",
                        help="take the figures of a search already run with the same command in --out")
    args = parser.parse_args()
    if not args.csv.is_file():
        sys.exit(f"--csv {args.csv}: no such file (the shared TMDB data, or any movie CSV)")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out.resolve()
    sample = stratified_sample(args.csv, args.frac, 0, out)
    common = ["model=minilm", f"data.train_csv={sample}", f"data.max_length={args.max_length}", "seed=0",
              "logger=csv", "callbacks.progress_bar=null"]
    report: dict = {"machine": machine(), "sample": str(sample), "sample_rows": len(pd.read_csv(sample))}
    if args.skip != "pruning":
        search_args = [*common, f"hydra.sweeper.n_trials={args.trials}", f"trainer.max_epochs={args.epochs}"]
        report["pruning"] = [search("unpruned", out, search_args, ["hydra/sweeper/pruner=none"], args.reuse),
                             search("pruned", out, search_args, [f"hydra/sweeper/pruner={args.pruner}"],
                                    args.reuse)]
    if args.skip != "parallel":
        quick = [*common, "hydra.sweeper.n_trials=4", "trainer.max_epochs=1", "hydra/sweeper/pruner=none"]
        report["parallel"] = [search("serial_1x2threads", out, quick, ["hydra.sweeper.n_jobs=1"], args.reuse),
                              search("parallel_2x1thread", out, quick,
                                     ["hydra/launcher=parallel", "hydra.sweeper.n_jobs=2"], args.reuse)]
    (out / "bench_sweep.json").write_text(json.dumps(report, indent=2))
    lines = [f"Machine: {report['machine']}; sample: {report['sample_rows']} rows of {args.csv.name}", ""]
    if "pruning" in report:
        unpruned, pruned = report["pruning"]
        lines += [table(report["pruning"], ["name", "trials", "epochs", "wall_s", "best_value", "states"]), "",
                  f"compute saved by pruning: {unpruned['epochs'] / max(pruned['epochs'], 1):.2f}x fewer epochs, "
                  f"{unpruned['wall_s'] / pruned['wall_s']:.2f}x less wall time; best value "
                  f"{pruned['best_value'] - unpruned['best_value']:+.4f}", ""]
    if "parallel" in report:
        lines += [table(report["parallel"], ["name", "trials", "wall_s", "trials_per_hour"])]
    text = "\n".join(lines)
    (out / "bench_sweep.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
