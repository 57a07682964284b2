"""`genre-lab compare PATH… [--sort METRIC] [--out DIR [--overwrite]] [--wandb-dir DIR]
[--wandb-project ENTITY/PROJECT]` and `genre-lab compare RUN_A RUN_B --paired [--resamples N] [--seed S] [--out DIR]`.

A table of finished runs (run directories, or folders holding them such as a sweep), best first, and PNG
plots of their validation curves; runs that differ only in their seed are also summarised as one group
(mean ± std, 95 % interval); optionally W&B runs: offline run folders (read from their files) or an online
project (through the W&B API, needs network and a key). ``--paired``: is B better than A, by a paired
bootstrap over the validation rows both were scored on (genre_lab.scoring.paired). Runs scored on different validation
rows are marked (``val_rows``, ``val_set``) and warned about. ``--out`` never replaces an earlier compare's
results unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from genre_lab.errors import GenreLabError, exit_with
from genre_lab.io import atomic_write_text
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.table import find_runs, read_run, runs_table, show_runs, to_markdown
from genre_lab.scoring.report import print_table

# what each mode writes into --out (curves_<metric>.png: whichever metric an earlier compare plotted)
OUTPUTS = {"ranking": ("compare.csv", "compare.md", "compare_seeds.csv", "compare_seeds.md", "curves_*.png"),
           "paired": ("paired.csv", "paired.md")}
# failed.json files named when every job failed
SHOWN_FAILURES = 3


def draw_curves(runs: list[Path], metric: str, ax: Any) -> int:
    """One line per run on ``ax``: ``metric`` per epoch from the run's CSV log; returns the lines drawn."""
    drawn = 0
    for run in runs:
        log_file = RunLayout(run).history
        if not log_file.is_file():
            continue
        history = pd.read_csv(log_file)
        if metric not in history.columns:
            continue
        points = history[["epoch", metric]].dropna().groupby("epoch").last()
        ax.plot(points.index + 1, points[metric], marker="o", label=run.name if len(runs) < 2 else
                f"{run.parent.name}/{run.name}")
        drawn += 1
    ax.set(xlabel="epoch", ylabel=metric, title=f"{metric} per epoch")
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def validation_curves(runs: list[Path], metric: str, out: Path) -> Path | None:
    """``curves_<metric>.png`` in ``out`` (``draw_curves``); None when no run logged ``metric``."""
    import matplotlib  # deferred: only --out draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # deferred: as matplotlib

    fig, ax = plt.subplots(figsize=(8, 5))
    if not draw_curves(runs, metric, ax):
        plt.close(fig)
        return None
    fig.tight_layout()
    path = out / f"curves_{metric.replace('/', '_')}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def wandb_offline_table(root: Path) -> pd.DataFrame:
    """Offline W&B runs below ``root``.

    A run written by a genre_lab job (``<job>/wandb/offline-run-*/``) is read through its job directory,
    which holds the same figures as plain files. Elsewhere the run's own ``files/wandb-summary.json`` is
    used when present; the binary ``.wandb`` log has no reader in the W&B Python package (0.2x+), so
    other offline runs need ``wandb sync`` and then ``--wandb-project``.
    """
    rows, unreadable = [], []
    for run_file in sorted(root.rglob("run-*.wandb")):
        run_dir, job = run_file.parent, run_file.parents[2]
        wandb_id = run_file.stem.removeprefix("run-")
        layout = RunLayout(job)
        if layout.hydra.is_dir() and (layout.metrics.is_file() or layout.failed.is_file()):
            rows.append({**read_run(job), "wandb_run": wandb_id})
        elif (run_dir / "files" / "wandb-summary.json").is_file():
            data = json.loads((run_dir / "files" / "wandb-summary.json").read_text())
            rows.append({"run": str(run_dir), "wandb_run": wandb_id,
                         **{k: v for k, v in data.items() if isinstance(v, (int, float))}})
        else:
            unreadable.append(str(run_dir))
    if unreadable:
        print(f"skipped {len(unreadable)} offline W&B run(s) outside a genre_lab run directory "
              f"({unreadable[:3]}…): `wandb sync` them and use --wandb-project", file=sys.stderr)
    return pd.DataFrame(rows)


def wandb_online_table(project: str) -> pd.DataFrame:
    import wandb  # deferred: only --wandb-* loads it

    runs = wandb.Api().runs(project)
    return pd.DataFrame([{"run": r.name, "group": r.group, "state": r.state,
                          **{k: v for k, v in r.summary.items() if isinstance(v, (int, float))}} for r in runs])


class ArgumentParser(argparse.ArgumentParser):
    """argparse with genre_lab's one error path: ``genre-lab: error: …`` on stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise GenreLabError(f"compare: {message} (genre-lab compare --help lists the options)")


def compare(argv: list[str] | None = None) -> pd.DataFrame:
    parser = ArgumentParser(prog="genre-lab compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="run directories or folders holding them")
    parser.add_argument("--sort", default="val/f1_micro", help="metric to rank by (default val/f1_micro)")
    parser.add_argument("--curve", default="val/f1_micro", help="per-epoch metric to plot")
    parser.add_argument("--out", type=Path, default=None, help="where to write compare.csv/.md and plots")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier compare's results in --out")
    parser.add_argument("--wandb-dir", type=Path, help="folder holding offline W&B runs")
    parser.add_argument("--wandb-project", help="entity/project of online W&B runs")
    parser.add_argument("--paired", action="store_true",
                        help="two run directories A B: paired bootstrap of B - A over their validation rows")
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (≥ 1000; default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    args = parser.parse_args(argv)
    earlier = check_out(args.out, OUTPUTS["paired" if args.paired else "ranking"], args.overwrite)
    if args.paired:
        return paired(args, earlier)
    if not args.paths and not args.wandb_dir and not args.wandb_project:
        parser.error("give run directories, --wandb-dir or --wandb-project")
    return ranking(args, earlier)


def ranking(args: argparse.Namespace, earlier: list[Path]) -> pd.DataFrame:
    """Every run found, best first by ``--sort``, with the seed groups; written to ``--out`` when given."""
    frames = []
    runs = find_runs(args.paths) if args.paths else []
    if args.paths and not runs:
        raise GenreLabError(f"no finished runs (metrics.json beside .hydra/) under {[str(p) for p in args.paths]}")
    if runs:
        frames.append(runs_table(runs, args.sort).assign(source="local"))
    if args.wandb_dir:
        frames.append(wandb_offline_table(args.wandb_dir).assign(source="wandb-offline"))
    if args.wandb_project:
        frames.append(wandb_online_table(args.wandb_project).assign(source="wandb"))
    frame = pd.concat(frames, ignore_index=True)
    refuse_all_failed(frame)
    if args.sort not in frame.columns:
        metrics = sorted(c for c in frame.columns if "/" in c)
        raise GenreLabError(f"--sort {args.sort}: no run has it; available: {metrics}")
    frame = frame.sort_values(args.sort, ascending=False, na_position="last", kind="stable").reset_index(drop=True)
    frame.insert(0, "rank", range(1, len(frame) + 1))
    mixed = mixed_rows_warning(frame)
    columns = ["rank", "run", "overrides", "status", args.sort, *[c for c in ("val/f1_macro", "val/top1_accuracy",
               "test/f1_micro") if c != args.sort], "val_rows", *(["val_set"] if mixed else []), "source"]
    view = show_runs(frame, columns, f"{len(frame)} runs ranked by {args.sort}", args.sort,
                     [c for c in columns[5:] if "/" in c], counts=["val_rows"])
    if mixed:
        print(f"genre-lab: warning: {mixed}", file=sys.stderr)
    for path in args.paths:  # a search with confirmation runs (hydra.sweeper.confirm)
        if (path / "confirmation.csv").is_file():
            confirmed = pd.read_csv(path / "confirmation.csv")
            print_table(confirmed.to_dict("records"), list(confirmed.columns),
                        f"{path}: the top configurations retrained over seeds, best mean first")
    if args.out:
        prepare_out(args.out, earlier)
        atomic_write_text(args.out / "compare.csv", frame.to_csv(index=False))
        note = f"\n**Warning:** {mixed}.\n" if mixed else ""
        atomic_write_text(args.out / "compare.md", view.markdown + note)
        if not view.groups.empty:
            atomic_write_text(args.out / "compare_seeds.csv", view.groups.to_csv(index=False))
            atomic_write_text(args.out / "compare_seeds.md", view.groups_markdown)
        plot = validation_curves(runs, args.curve, args.out)
        if plot:
            print(f"curves: {plot}")
    return frame


def check_out(out: Path | None, outputs: tuple[str, ...], overwrite: bool) -> list[Path]:
    """Before any work: refuse an ``--out`` that is a file, or a folder holding an earlier compare's results
    (``outputs``) unless ``--overwrite``; returns those results, replaced when writing."""
    if out is None:
        return []
    existing = next(p for p in (out, *out.absolute().parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == out else f"lies inside a file ({existing})"
        raise GenreLabError(f"--out {out} {where}; compare writes a folder of results there: choose a new --out")
    earlier = sorted({p for pattern in outputs for p in out.glob(pattern)}) if existing == out else []
    if earlier and not overwrite:
        raise GenreLabError(f"--out {out} already holds {', '.join(p.name for p in earlier)} from an earlier "
                            "compare; choose a new --out, or pass --overwrite to replace them")
    return earlier


def prepare_out(out: Path, earlier: list[Path]) -> None:
    """``out`` as a folder without the earlier results (--overwrite): none of them outlives this compare, such as
    the curves of another metric or seed groups this one does not have."""
    out.mkdir(parents=True, exist_ok=True)
    for path in earlier:
        path.unlink(missing_ok=True)


def refuse_all_failed(frame: pd.DataFrame) -> None:
    """Every run found failed: say so, where their failed.json files are and the first error (rather than that
    no run has the --sort metric)."""
    if "status" not in frame.columns or not frame.status.eq("failed").all():
        return
    files = [str(RunLayout(run).failed) for run in frame.run[:SHOWN_FAILURES]]
    more = ", …" if len(frame) > SHOWN_FAILURES else ""
    errors = [str(e).splitlines()[0] for e in frame.get("error", pd.Series(dtype=str)).dropna() if str(e).strip()]
    first = f"; the first error: {errors[0]}" if errors else ""
    raise GenreLabError(f"every job failed ({len(frame)} runs), no figures to compare: see their failed.json "
                        f"({', '.join(files)}{more}){first}")


def mixed_rows_warning(frame: pd.DataFrame) -> str | None:
    """Runs scored on different validation rows (``val_set``; runs without val_probs.npz aside), group by group
    with their ranks; None when all known runs share their rows."""
    if "val_set" not in frame.columns or frame.val_set.dropna().nunique() < 2:
        return None
    groups = [f"{int(runs.val_rows.iloc[0])} rows (ids {val_set}): {ranked_names(runs)}"
              for val_set, runs in frame.dropna(subset=["val_set"]).groupby("val_set", sort=False)]
    return (f"runs scored on different validation rows, their figures are not comparable: {'; '.join(groups)} "
            "(compare runs trained on the same data, split and sampling: data.val_size, data.seed, …)")


def ranked_names(runs: pd.DataFrame) -> str:
    """``#1 sweep/0, #3 sweep/2``: runs by rank and the last two parts of their paths."""
    return ", ".join(f"#{rank} {Path(run).parent.name}/{Path(run).name}"
                     for rank, run in zip(runs["rank"], runs.run, strict=True))


def paired(args: argparse.Namespace, earlier: list[Path]) -> pd.DataFrame:
    if len(args.paths) != 2:
        raise GenreLabError(f"--paired compares two run directories A B; got {len(args.paths)}")
    from genre_lab.runs.paired import compare_paired  # deferred: its decoder brings torch; the ranking needs none

    run_a, run_b = args.paths
    table = compare_paired(run_a, run_b, args.resamples, args.seed)
    print_table(table.to_dict("records"), list(table.columns),
                f"B = {run_b} vs A = {run_a}: paired bootstrap, {args.resamples} resamples, seed {args.seed}")
    if args.out:
        prepare_out(args.out, earlier)
        atomic_write_text(args.out / "paired.csv", table.to_csv(index=False))
        atomic_write_text(args.out / "paired.md", to_markdown(table, list(table.columns)))
    return table


def main(argv: list[str] | None = None) -> None:
    try:
        compare(sys.argv[1:] if argv is None else argv)
    except GenreLabError as err:
        exit_with(err)


if __name__ == "__main__":
    main()
