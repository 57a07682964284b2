"""What a large training file costs before the first step, and predict on it: the table of README "Data at scale".

For each size, a training file of that many rows (scripts/repeat_csv.py from the shared 10-genre file) and a
one-step tiny-model run with validation on a fixed 1,963-row sample of the shared file, as issue 27 measured it:

    genre-lab train model=tiny data.train_csv=<N rows> data.val_csv=<val> +trainer.max_steps=1 trainer.max_epochs=-1

measured by /usr/bin/time (wall, peak RSS) and the run's own log (tokenize time; the "data set-up" line). Then the
same run with the token cache, twice (the second starts from the cache), and predict on the largest file.

    python scripts/bench_data.py --rows 10000 100000 1000000 --work /tmp/bench_data [--no-predict]
    python scripts/bench_data.py --ddp-rows 1000000 --work /tmp/bench_data   # each DDP rank: peak RSS, PSS
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from repeat_csv import repeat_rows  # noqa: E402

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tmdb_movies_10genre.csv"
PATTERNS = {
    "wall_s": (r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", None),
    "peak_gb": (r"Maximum resident set size \(kbytes\): (\d+)", lambda v: int(v) / 1e6),
    "tokenize_s": (r"rows tokenized in ([\d.]+) s", float),
    "setup_s": (r"data set-up: .* read and checked in ([\d.]+) s, split in ([\d.]+) s, tokens in ([\d.]+) s", None),
}


def clock(text: str) -> float:
    """``1:02.5`` or ``1:02:03`` -> seconds."""
    parts = [float(p) for p in text.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def measured(args: list[str], log: Path) -> dict[str, float]:
    """Run ``genre-lab *args`` under /usr/bin/time -v; the figures from its output (written to ``log``)."""
    done = subprocess.run(["/usr/bin/time", "-v", "genre-lab", *args], capture_output=True, text=True)
    text = done.stdout + done.stderr
    log.write_text(text)
    if done.returncode != 0:
        raise SystemExit(f"genre-lab {' '.join(args)} failed (exit {done.returncode}); see {log}")
    figures: dict[str, float] = {}
    for name, (pattern, convert) in PATTERNS.items():
        found = re.search(pattern, text)
        if not found:
            continue
        if name == "wall_s":
            figures[name] = clock(found.group(1))
        elif name == "setup_s":
            figures[name] = sum(float(g) for g in found.groups())
        else:
            figures[name] = convert(found.group(1))
    return figures


def train_args(train: Path, val: Path, run_dir: Path, cache: Path | None) -> list[str]:
    shutil.rmtree(run_dir, ignore_errors=True)  # this script's own run folders: each measurement starts afresh
    return ["train", "model=tiny", f"data.train_csv={train}", f"data.val_csv={val}", "+trainer.max_steps=1",
            "trainer.max_epochs=-1", f"data.token_cache_dir={cache if cache else 'null'}",
            f"hydra.run.dir={run_dir}"]


def bench_size(rows: int, val: Path, work: Path) -> dict[str, float]:
    train = work / f"movies_{rows}.csv"
    if not train.is_file():
        repeat_rows(SHARED, rows, train)
    runs = work / "runs"
    figures = {"rows": rows, **measured(train_args(train, val, runs / f"{rows}", None), work / f"{rows}.log")}
    cache = work / f"cache_{rows}"
    shutil.rmtree(cache, ignore_errors=True)
    measured(train_args(train, val, runs / f"{rows}_fill", cache), work / f"{rows}_fill.log")
    again = measured(train_args(train, val, runs / f"{rows}_cached", cache), work / f"{rows}_cached.log")
    figures.update({f"cached_{k}": v for k, v in again.items() if k in ("wall_s", "setup_s", "peak_gb")})
    return figures


def bench_predict(rows: int, work: Path) -> dict[str, float]:
    """Predict with the smallest size's one-step run on the largest file, to Parquet."""
    run_dir = sorted((work / "runs").glob("[0-9]*"), key=lambda p: int(p.name.split("_")[0]))[0]
    out = work / f"predictions_{rows}.parquet"
    out.unlink(missing_ok=True)
    figures = measured(["predict", f"run_dir={run_dir}", f"input_csv={work / f'movies_{rows}.csv'}", f"out={out}",
                        f"hydra.run.dir={work / 'runs' / 'predict'}"], work / "predict.log")
    return {"rows": rows, **figures}


def process_tree_peaks(args: list[str], log: Path, every_s: float = 0.5) -> list[dict[str, float]]:
    """Run ``genre-lab *args``; every process of its tree's peak RSS and PSS (GB): PSS splits shared pages (a
    memory-mapped token cache) between the processes that map them, so their PSS sum is the memory they use."""
    import psutil

    peaks: dict[int, dict[str, float]] = {}
    with open(log, "w") as out:
        root = subprocess.Popen(["genre-lab", *args], stdout=out, stderr=subprocess.STDOUT)
        tree = psutil.Process(root.pid)
        while root.poll() is None:
            for proc in [tree, *tree.children(recursive=True)]:
                try:
                    full = proc.memory_full_info()
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                seen = peaks.setdefault(proc.pid, {"pid": proc.pid, "rss_gb": 0.0, "pss_gb": 0.0})
                seen["rss_gb"] = max(seen["rss_gb"], full.rss / 1e9)
                seen["pss_gb"] = max(seen["pss_gb"], full.pss / 1e9)
            time.sleep(every_s)
    if root.returncode != 0:
        raise SystemExit(f"genre-lab {' '.join(args)} failed (exit {root.returncode}); see {log}")
    return [p for p in peaks.values() if p["rss_gb"] > 0.2]  # the launcher's helpers aside


def bench_ddp(rows: int, val: Path, work: Path) -> pd.DataFrame:
    """A 2-rank trainer=ddp_cpu one-step run on ``rows`` rows, with the token cache (filled first, as a sweep's
    earlier job or Lightning's prepare_data on rank 0 would)."""
    train, cache = work / f"movies_{rows}.csv", work / f"cache_{rows}"
    if not train.is_file():
        repeat_rows(SHARED, rows, train)
    args = [*train_args(train, val, work / "runs" / f"ddp_{rows}", cache), "trainer=ddp_cpu"]
    return pd.DataFrame(process_tree_peaks(args, work / f"ddp_{rows}.log"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_data"))
    parser.add_argument("--no-predict", action="store_true")
    parser.add_argument("--ddp-rows", type=int, help="instead: peak memory of each rank of a 2-rank DDP run")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    val = args.work / "val.csv"
    pd.read_csv(SHARED, dtype=str, keep_default_na=False).sample(frac=0.2, random_state=0).to_csv(val, index=False)
    if args.ddp_rows:
        print(bench_ddp(args.ddp_rows, val, args.work).round(3).to_string(index=False))
        return
    table = pd.DataFrame([bench_size(rows, val, args.work) for rows in args.rows])
    if "setup_s" in table:  # the "data set-up" log line (absent from code before it); it covers val rows too
        table["setup_us_per_row"] = table.setup_s / (table.rows + len(pd.read_csv(val))) * 1e6
    print(table.round(3).to_string(index=False))
    if not args.no_predict:
        print(pd.DataFrame([bench_predict(max(args.rows), args.work)]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
