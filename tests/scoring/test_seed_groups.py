"""Runs that differ only in their seed: one group with the right mean, std and interval."""

import math

import pandas as pd
import pytest
from scipy import stats

from genre_lab.scoring.seed_groups import config_id, interval, seed_groups


def test_config_id_ignores_the_seed_and_nothing_else():
    base = {"seed": 1, "model": {"lr": 1e-4}, "data": {"seed": "${seed}"}, "trial": None, "paths": {"output_dir": "a"}}
    assert config_id(base) == config_id({**base, "seed": 2, "trial": {"number": 3}, "paths": {"output_dir": "b"}})
    assert config_id(base) != config_id({**base, "model": {"lr": 2e-4}})


def test_a_group_of_three_seeds_has_the_right_mean_std_and_interval():
    frame = pd.DataFrame({
        "run": list("abcde"), "status": ["ok"] * 4 + ["failed"], "seed": [1, 2, 3, 1, 2],
        "config_id": ["x", "x", "x", "y", "y"],
        "overrides": ["model.lr=1e-4 seed=1", "model.lr=1e-4 seed=2", "model.lr=1e-4 seed=3", "model.lr=2e-4 seed=1",
                      "model.lr=2e-4 seed=2"],
        "val/f1_micro": [0.50, 0.54, 0.58, 0.40, None],
    })
    groups = seed_groups(frame, ["val/f1_micro"]).set_index("config_id")
    x = groups.loc["x"]
    assert (x.seeds, x.seed_values, x.overrides) == (3, "1,2,3", "model.lr=1e-4")
    assert x["val/f1_micro"] == pytest.approx(0.54)
    assert x["val/f1_micro std"] == pytest.approx(0.04)  # sample std of 0.50, 0.54, 0.58
    assert x["val/f1_micro ±95%"] == pytest.approx(stats.t.ppf(0.975, 2) * 0.04 / math.sqrt(3))
    assert groups.loc["y"].seeds == 1 and math.isnan(groups.loc["y"]["val/f1_micro std"])  # the failed run is out
    assert list(groups.index) == ["x", "y"]  # best mean first
    assert interval([0.3])[0] == 0.3
