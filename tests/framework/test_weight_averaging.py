"""EMA / SWA (callbacks=ema, callbacks=swa): the weights validation scores are the weights the checkpoints hold."""

import json

import pandas as pd
import pytest
import torch

from genre_lab.errors import GenreLabError
from genre_lab.framework.weight_averaging import EMA, SWA
from genre_lab.runs.layout import RunLayout
from tests.conftest import QUIET, compose_train


def averaged_run(tmp_path, run_frame, *overrides: str) -> RunLayout:
    from genre_lab.train import train

    tmp_path.mkdir(parents=True, exist_ok=True)
    run_frame.to_csv(tmp_path / "four.csv", index=False)
    train(compose_train(["model=tiny", f"data.train_csv={tmp_path / 'four.csv'}", "data.batch_size=16",
                         "trainer.precision=32-true", "model.lr=2e-3", *overrides, *QUIET], tmp_path / "run"))
    return RunLayout(tmp_path / "run")


def logged(layout: RunLayout, epoch: int, name: str) -> float:
    history = pd.read_csv(layout.history).dropna(subset=[name])
    return float(history[history.epoch == epoch][name].iloc[0])


@pytest.mark.parametrize("averaging", [["callbacks=ema", "callbacks.ema.decay=0.9"],
                                       ["callbacks=swa", "callbacks.swa.start_epoch=1"]])
def test_best_checkpoint_holds_the_averaged_weights_validation_scored(tmp_path, run_frame, averaging):
    layout = averaged_run(tmp_path, run_frame, *averaging, "trainer.max_epochs=3")
    best = torch.load(layout.best, map_location="cpu", weights_only=True)
    last = torch.load(layout.last, map_location="cpu", weights_only=True)
    final = json.loads(layout.metrics.read_text())
    # the final figures are computed from best.ckpt: they equal what its epoch logged on the same rows
    assert final["val/auroc_macro"] == pytest.approx(logged(layout, best["epoch"], "val/auroc_macro"), abs=1e-6)
    assert "current_model_state" not in best  # best.ckpt: the averaged weights only
    # last.ckpt: the averaged weights as its state_dict, the raw ones beside them for resume=true
    averaged, raw = last["state_dict"], last["current_model_state"]
    assert set(averaged) == set(raw)
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw if raw[k].is_floating_point())
    if best["epoch"] == last["epoch"]:
        assert all(torch.equal(best["state_dict"][k], averaged[k]) for k in averaged)


def test_swa_scores_the_raw_weights_until_it_starts(tmp_path, run_frame):
    plain = averaged_run(tmp_path / "plain", run_frame, "trainer.max_epochs=2")
    swa = averaged_run(tmp_path / "swa", run_frame, "callbacks=swa", "callbacks.swa.start_epoch=1",
                       "trainer.max_epochs=2")
    # same seed, same steps: epoch 0 is the same model; epoch 1 differs (the average of epoch 1's steps)
    assert logged(swa, 0, "val/auroc_macro") == pytest.approx(logged(plain, 0, "val/auroc_macro"), abs=1e-6)
    assert logged(swa, 1, "val/loss") != pytest.approx(logged(plain, 1, "val/loss"), abs=1e-6)


@pytest.mark.parametrize("make", [lambda: EMA(decay=1.0), lambda: EMA(decay="fast"),
                                  lambda: SWA(start_epoch=-1), lambda: SWA(start_epoch=0.5)])
def test_bad_averaging_settings_are_refused_by_name(make):
    with pytest.raises(GenreLabError, match=r"callbacks\.(ema\.decay|swa\.start_epoch)"):
        make()


def test_a_bad_decay_on_the_command_line_stops_before_the_data_is_read(tmp_path):
    from tests.conftest import genre_lab_here
    from tests.test_ensemble import refused

    result = genre_lab_here("train", "model=tiny", "data=sample", "callbacks=ema", "callbacks.ema.decay=1.5",
                            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    refused(result, "callbacks.ema.decay=1.5 must be a number in (0, 1)")
    # the data-reading log lines ("… rows train=…", "data set-up: …") go to stdout: none was written
    assert "data set-up:" not in result.stdout + result.stderr and RunLayout(tmp_path / "run").record() == []
