"""`seed` + `trainer.deterministic=true` on CPU: two runs give bit-identical results."""

from __future__ import annotations

import json

from genre_lab.train import train
from tests.conftest import QUIET, compose_train


def test_two_seeded_cpu_runs_give_identical_metrics(tmp_path, four_csv):
    overrides = ["model=tiny", f"data.train_csv={four_csv}", "trainer.max_epochs=2", "trainer.accelerator=cpu",
                 "trainer.deterministic=true", "trainer.precision=32-true", "data.batch_size=16", "seed=7",
                 "model.dropout=0.1", *QUIET]
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        train(compose_train(overrides, out))
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics.pop("best_checkpoint").startswith(str(out))  # the only field that names the run directory
        results.append((metrics, (out / "per_class.csv").read_bytes(), (out / "csv" / "metrics.csv").read_bytes()))
    assert results[0][0]["val/f1_micro"] > 0 and results[0][0]["global_step"] == 16
    assert results[0] == results[1]  # every figure, to the last bit, and the per-epoch history
