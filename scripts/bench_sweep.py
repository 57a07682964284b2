"""Benchmark of the Optuna search (README "Sweeps: measured").

The search: seeded TPE, 16 trials of MiniLM, 3 epochs each unless pruned, on a fixed stratified 25 % sample of
tmdb_movies_10genre.csv. Parts (``--parts``, comma-separated; default ``slots,rerun``):
- ``slots``: 2 parallel slots of 1 CPU thread each (`hydra/launcher=parallel`): unpruned; pruned (percentile)
  with the round barrier of earlier versions (`hydra.sweeper.barrier=true`); pruned without it. Training epochs
  (the compute), wall-clock, busy share of the slots, best value; and how much of pruning's compute saving
  reaches the wall-clock with and without the barrier.
- ``rerun``: kill -9 of a search's sweeper in the middle of an epoch, then the same command: the training lost
  (the interrupted epoch's part), the epochs the retry trains, and the rerun's wall-clock.
- ``pruning``: one trial at a time with all cores, unpruned vs pruned (the earlier table);
- ``parallel``: trials per hour of 4 one-epoch trials, one at a time with all cores vs 2 at once.

    python scripts/bench_sweep.py [--csv ../shared/data/tmdb_movies_10genre.csv] [--out bench_sweep]

Prints the tables and the machine, and writes bench_sweep.json / bench_sweep.md into --out. Each search is a
plain `genre-lab train hparams_search=optuna …` command (printed), so any figure can be reproduced alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
               "trials_per_hour": len(jobs) / wall * 3600, "busy_share": results.get("busy_share"),
               "search_wall_s": results.get("wall_s")}
    saved.write_text(json.dumps(figures, indent=2))
    return figures


SLOT_SEARCHES = {"pruned": ["hydra/sweeper/pruner={pruner}"],
                 "pruned_barrier": ["hydra/sweeper/pruner={pruner}", "hydra.sweeper.barrier=true"],
                 "unpruned": ["hydra/sweeper/pruner=none"]}


def slots_part(out: Path, common: list[str], args: argparse.Namespace) -> list[dict]:
    """Pruned without and with the round barrier, and unpruned (``--slot-searches``): 2 slots of 1 thread each."""
    two = [*common, f"hydra.sweeper.n_trials={args.trials}", f"trainer.max_epochs={args.epochs}",
           "hydra/launcher=parallel", "hydra.sweeper.n_jobs=2"]
    rows = [search(f"slots_{name}", out, two, [o.format(pruner=args.pruner) for o in SLOT_SEARCHES[name]], args.reuse)
            for name in args.slot_searches.split(",")]
    unpruned = next((row for row in rows if row["name"] == "slots_unpruned"), None)
    for row in rows:  # share of pruning's compute saving that reaches the wall-clock
        compute = 1 - row["epochs"] / unpruned["epochs"] if unpruned else 0
        wall = 1 - row["wall_s"] / unpruned["wall_s"] if unpruned else 0
        row["wall_saving_of_compute_saving"] = wall / compute if compute > 0 else float("nan")
    return rows


def rerun_part(out: Path, common: list[str], epochs: int) -> dict:
    """kill -9 of the sweeper halfway through the third epoch of its one trial, then the same command."""
    sweep, db = out / "rerun", out / "rerun.db"
    for path in (db, db.with_suffix(".db.lock")):
        path.unlink(missing_ok=True)
    if sweep.exists():
        shutil.rmtree(sweep)
    command = [sys.executable, "-m", "genre_lab", "train", "hparams_search=optuna", *common, "hydra.sweeper.n_trials=1",
               f"trainer.max_epochs={epochs}", "hydra/sweeper/pruner=none", f"hydra.sweeper.storage=sqlite:///{db}",
               "hydra.sweeper.heartbeat_interval=5", "hydra.sweeper.grace_period=15", f"hydra.sweep.dir={sweep}"]
    print("$", " ".join(command[2:]), "  (killed, then run again)", flush=True)
    first = subprocess.Popen(command, cwd=out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = sweep / "0" / "checkpoints" / "last.ckpt"
    while not last.exists():
        if first.poll() is not None:
            sys.exit("the search to kill ended before its first epoch did")
        time.sleep(0.2)
    first_saved = last.stat().st_mtime
    while last.stat().st_mtime == first_saved:  # the second epoch's last.ckpt: an epoch's length
        if first.poll() is not None:
            sys.exit("the search to kill ended before its second epoch did; give --epochs ≥ 3")
        time.sleep(0.2)
    saved = last.stat().st_mtime
    time.sleep((saved - first_saved) / 2)  # halfway through the third epoch
    killed = time.time()
    first.kill()
    first.wait()
    saved = last.stat().st_mtime  # the latest epoch end before the kill
    time.sleep(16)  # past the grace period: the rerun finds the trial stale at once
    again = time.perf_counter()
    rerun = subprocess.run(command, cwd=out, capture_output=True, text=True)
    rerun_wall = time.perf_counter() - again
    (out / "rerun.log").write_text(rerun.stdout + rerun.stderr)
    if rerun.returncode != 0:
        sys.exit(f"the rerun failed (exit {rerun.returncode}); see {out / 'rerun.log'}")
    import optuna

    study = optuna.load_study(study_name="genre_lab", storage=f"sqlite:///{db}")
    retry = study.trials[-1]
    timing = json.loads((sweep / "0" / "timing.json").read_text())
    return {"command": " ".join(command[2:]), "lost_training_s": killed - saved,
            "epoch_s": timing["fit_seconds"] / max(1, len(retry.intermediate_values)),
            "retry_trained_epochs": len(retry.intermediate_values), "planned_epochs": epochs,
            "retried_from_epoch": min(retry.intermediate_values, default=epochs), "rerun_wall_s": rerun_wall,
            "states": [t.state.name for t in study.trials], "final_epochs": json.loads(
                (sweep / "0" / "metrics.json").read_text())["epochs"]}


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    import torch

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{len(os.sched_getaffinity(0))} CPU cores ({cpu}), {gpu}, torch {torch.__version__}"


FOUR_DIGITS = ("best_value", "busy_share")


def table(rows: list[dict], keys: list[str]) -> str:
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[k]:.4f}" if isinstance(row[k], float) and k in FOUR_DIGITS
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
    parser.add_argument("--parts", default="slots,rerun",
                        help="comma-separated: slots, rerun, pruning, parallel (default slots,rerun)")
    parser.add_argument("--slot-searches", default="pruned,pruned_barrier,unpruned",
                        help="the slots part's searches, comma-separated (default pruned,pruned_barrier,unpruned)")
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
    parts = set(args.parts.split(","))
    if "slots" in parts:
        report["slots"] = slots_part(out, common, args)
    if "rerun" in parts:
        report["rerun"] = rerun_part(out, common, args.epochs)
    if "pruning" in parts:
        search_args = [*common, f"hydra.sweeper.n_trials={args.trials}", f"trainer.max_epochs={args.epochs}"]
        report["pruning"] = [search("unpruned", out, search_args, ["hydra/sweeper/pruner=none"], args.reuse),
                             search("pruned", out, search_args, [f"hydra/sweeper/pruner={args.pruner}"],
                                    args.reuse)]
    if "parallel" in parts:
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
        lines += [table(report["parallel"], ["name", "trials", "wall_s", "trials_per_hour"]), ""]
    if "slots" in report:
        lines += [table(report["slots"], ["name", "trials", "epochs", "wall_s", "busy_share", "best_value", "states"]),
                  ""] + [f"{row['name']}: {row['wall_saving_of_compute_saving']:.0%} of pruning's compute saving "
                         "reaches the wall-clock" for row in report["slots"]
                         if row["wall_saving_of_compute_saving"] == row["wall_saving_of_compute_saving"]] + [""]
    if "rerun" in report:
        rerun = report["rerun"]
        lines += [f"killed and rerun: {rerun['lost_training_s']:.1f} s of training lost (one epoch: "
                  f"{rerun['epoch_s']:.1f} s); the retry resumed at epoch {rerun['retried_from_epoch']} and trained "
                  f"{rerun['retry_trained_epochs']} of {rerun['planned_epochs']} epochs; the rerun took "
                  f"{rerun['rerun_wall_s']:.1f} s; trials: {rerun['states']}"]
    text = "\n".join(lines)
    (out / "bench_sweep.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
