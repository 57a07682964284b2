from pathlib import Path

import pandas as pd
import pytest

from genre_lab.compare import compare
from genre_lab.errors import GenreLabError
from tests.conftest import TINY_FAST, genre_lab_here


def test_compare_ranks_every_run_of_a_sweep(grid_sweep, tmp_path):
    result = genre_lab_here("compare", str(grid_sweep), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 runs ranked by val/f1_micro" in result.stdout
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert table["rank"].tolist() == [1, 2, 3, 4]
    assert table["val/f1_micro"].is_monotonic_decreasing
    png = (tmp_path / "cmp" / "curves_val_f1_micro.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_compare_sorts_by_any_metric_and_explains_unknown_ones(grid_sweep):
    frame = compare([str(grid_sweep), "--sort", "val/top1_accuracy"])
    assert frame["val/top1_accuracy"].is_monotonic_decreasing
    with pytest.raises(GenreLabError, match="no run has it; available"):
        compare([str(grid_sweep), "--sort", "val/nonsense"])


def test_compare_reads_offline_wandb_summaries(tmp_path):
    run = tmp_path / "wandb" / "offline-run-1" / "files"
    run.mkdir(parents=True)
    (run.parent / "run-abc123.wandb").write_bytes(b"")
    (run / "wandb-summary.json").write_text('{"final/val/f1_micro": 0.61, "_step": 3}')
    frame = compare(["--wandb-dir", str(tmp_path / "wandb"), "--sort", "final/val/f1_micro"])
    assert frame["final/val/f1_micro"].tolist() == [0.61]


def test_a_seed_multirun_is_summarised_as_one_group_and_compared_row_by_row(four_csv, tmp_path):
    """The documented way to get mean ± std: -m seed=1,2,3; the runs share the split, so --paired works."""
    import numpy as np

    from genre_lab.runs.stored_probs import StoredProbs

    sweep = tmp_path / "sweep"
    result = genre_lab_here("train", "-m", *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1",
                            "seed=1,2,3", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    groups = pd.read_csv(sweep / "sweep_seeds.csv", dtype={"config_id": str})
    assert len(groups) == 1 and groups.seeds[0] == 3 and groups.seed_values[0] == "1,2,3"
    runs = pd.read_csv(sweep / "sweep_summary.csv")
    assert groups["val/f1_micro"][0] == pytest.approx(runs["val/f1_micro"].mean())
    assert groups["val/f1_micro std"][0] == pytest.approx(runs["val/f1_micro"].std(ddof=1))
    assert "differ only in their seed" in (sweep / "sweep_summary.md").read_text()

    first, second = (StoredProbs.load(sweep / job / "val_probs.npz") for job in ("0", "1"))
    assert sorted(first.movie_ids) == sorted(second.movie_ids)  # the split is fixed by data.seed
    assert not np.array_equal(first.probs, second.probs)  # the training seed changed the model
    table = compare([str(sweep / "0"), str(sweep / "1"), "--paired", "--out", str(tmp_path / "p")]).set_index("figure")
    assert table.loc["f1_micro", "95% low"] <= table.loc["f1_micro", "B - A"] <= table.loc["f1_micro", "95% high"]
    assert (tmp_path / "p" / "paired.md").is_file()
    seeds = compare([str(sweep), "--out", str(tmp_path / "c")])
    assert set(seeds.config_id) == {groups.config_id[0]} and (tmp_path / "c" / "compare_seeds.csv").is_file()
    with pytest.raises(GenreLabError, match="two run directories"):
        compare([str(sweep / "0"), "--paired"])


def digests(folder):
    from genre_lab.io import file_digest

    return {p.name: file_digest(p) for p in sorted(folder.iterdir())}


def test_compare_never_replaces_an_earlier_compare_or_a_file_unless_overwrite(grid_sweep, tmp_path):
    out, mine = tmp_path / "cmp", tmp_path / "notes.txt"
    assert genre_lab_here("compare", str(grid_sweep), "--out", str(out), cwd=tmp_path).returncode == 0
    (out / "mine.txt").write_text("kept")  # a file compare does not write is no reason to refuse
    before = digests(out)
    again = genre_lab_here("compare", str(grid_sweep), "--sort", "val/f1_macro", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and again.stdout == ""  # refused before reading a run
    [line] = again.stderr.splitlines()
    assert line.startswith(f"genre-lab: error: --out {out} already holds compare.csv") and "--overwrite" in line
    assert digests(out) == before
    mine.write_text("mine")
    as_file = genre_lab_here("compare", str(grid_sweep), "--out", str(mine), "--overwrite", cwd=tmp_path)
    assert as_file.returncode == 2 and as_file.stderr.startswith(f"genre-lab: error: --out {mine} is a file")
    assert len(as_file.stderr.splitlines()) == 1 and mine.read_text() == "mine"
    # --paired writes paired.csv/.md: beside a ranking, fine; over an earlier paired result, refused
    pair = [str(grid_sweep / "0"), str(grid_sweep / "1"), "--paired", "--resamples", "1000", "--out", str(out)]
    assert genre_lab_here("compare", *pair, cwd=tmp_path).returncode == 0
    paired_twice = genre_lab_here("compare", *pair, cwd=tmp_path)
    assert paired_twice.returncode == 2 and "already holds paired.csv, paired.md" in paired_twice.stderr
    replaced = genre_lab_here("compare", str(grid_sweep), "--sort", "val/f1_macro", "--out", str(out), "--overwrite",
                              cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert pd.read_csv(out / "compare.csv")["val/f1_macro"].is_monotonic_decreasing
    assert (out / "mine.txt").read_text() == "kept" and (out / "paired.csv").is_file()
    (tmp_path / "empty").mkdir()
    assert genre_lab_here("compare", str(grid_sweep), "--out", str(tmp_path / "empty"), cwd=tmp_path).returncode == 0


def test_compare_of_a_sweep_whose_jobs_all_failed_says_so_and_where(tmp_path):
    sweep = tmp_path / "sweep"
    train = genre_lab_here("train", "-m", "model=tfidf_lr", f"data.train_csv={tmp_path / 'missing.csv'}",
                           "seed=1,2,3,4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert train.returncode == 0 and len(list(sweep.glob("*/failed.json"))) == 4, train.stderr[-3000:]
    result = genre_lab_here("compare", str(sweep), cwd=tmp_path)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "every job failed (4 runs)" in line and "no run has it" not in line
    assert str(sweep / "0" / "failed.json") in line and str(sweep / "3" / "failed.json") not in line
    assert f"data file not found: {tmp_path / 'missing.csv'}" in line  # the first error


def test_compare_marks_runs_scored_on_different_validation_rows(four_csv, grid_sweep, tmp_path):
    import shutil

    sweep = tmp_path / "sweep"
    train = genre_lab_here("train", "-m", "model=tfidf_lr", f"data.train_csv={four_csv}", "data.val_size=0.15,0.5",
                           f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert train.returncode == 0, train.stderr[-3000:]
    old = shutil.copytree(sweep / "0", tmp_path / "old")
    (old / "val_probs.npz").unlink()  # a run from before val_probs.npz: unknown rows, not warned about
    result = genre_lab_here("compare", str(sweep), str(old), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    assert (table.val_rows[str(sweep / "0")], table.val_rows[str(sweep / "1")]) == (24, 80)
    assert pd.isna(table.val_rows[str(old)])
    [warning] = [line for line in result.stderr.splitlines() if "not comparable" in line]
    assert warning.startswith("genre-lab: warning:") and "24 rows" in warning and "80 rows" in warning
    assert "sweep/0" in warning and "sweep/1" in warning and "/old" not in warning
    assert "not comparable" in (tmp_path / "cmp" / "compare.md").read_text()
    same = genre_lab_here("compare", str(grid_sweep), cwd=tmp_path)  # one split: rows counted, no warning
    assert same.returncode == 0 and "not comparable" not in same.stderr and "val_rows" in same.stdout


def test_validation_rows_are_the_row_count_and_the_set_of_movie_ids(tmp_path):
    import numpy as np

    from genre_lab.runs.stored_probs import StoredProbs, validation_rows

    def stored(ids: list[str]) -> Path:
        rows = np.zeros((len(ids), 2))
        return StoredProbs(np.array(ids), rows, rows, ("a", "b")).save(tmp_path / f"{'_'.join(ids)}.npz")

    first = validation_rows(stored(["1", "2", "3"]))
    assert first[0] == 3 and first == validation_rows(stored(["3", "1", "2"]))  # the order does not matter
    assert validation_rows(stored(["1", "2", "4"])) != first  # the same count on other rows does
    assert validation_rows(tmp_path / "missing.npz") is None


def test_the_grid_sweeps_jobs_score_differently(grid_sweep):
    """The tiny model learns (issue 23): the sweep and compare tests rank runs that differ, not constant predictors."""
    frame = compare([str(grid_sweep)])
    assert frame["val/f1_micro"].nunique() >= 3 and frame["val/top1_accuracy"].nunique() >= 2
