"""A bench config on the tiny model and a few sample rows, and its datamodule, set up as bench sets it up."""

from __future__ import annotations

import hydra
import pytest

from tests.conftest import compose_cfg

# 6 rows per genre of the bundled sample: 48 training and 12 validation rows
TINY_BENCH = ["model=tiny", "data=sample", "data.sample.per_class=6", "trainer.precision=32-true"]


@pytest.fixture(scope="module")
def bench_cfg(tmp_path_factory):
    return compose_cfg("bench", TINY_BENCH, tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def datamodule(bench_cfg):
    datamodule = hydra.utils.instantiate(bench_cfg.data, _convert_="all")
    datamodule.setup("fit")
    return datamodule
