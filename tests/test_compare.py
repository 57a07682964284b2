import pandas as pd
import pytest

from genre_lab.compare import compare
from genre_lab.errors import GenreLabError
from tests.conftest import genre_lab_here


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
