"""The load generator: bounded in time, loopback only, figures from what it measured."""

import numpy as np
import pytest

from genre_lab.benchmark.http_load import LoadResult, load

pytest.importorskip("fastapi")


def test_it_refuses_anything_but_loopback():
    with pytest.raises(ValueError, match="loopback"):
        load("http://example.com/v1/predict", [{"texts": ["a"]}], clients=1, seconds=0.1)


def test_clients_keep_a_server_busy_for_the_time_given_and_count_what_came_back():
    from genre_lab.serving.app import ServedModel, ServeLimits, create_app
    from tests.serving.conftest import running

    def compute(texts):
        return (np.full((len(texts), 2), 0.7, np.float32), np.ones((len(texts), 2), np.int64),
                np.zeros(len(texts), bool))

    model = ServedModel(["a", "b"], "{synopsis}", compute, {"sha256": "0" * 64})
    with running(create_app(model, ServeLimits(max_rows=1))) as url:
        result = load(f"{url}/v1/predict", [{"texts": ["x"]}, {"texts": ["x", "y"]}], clients=4, seconds=1.0)
    figures = result.figures()
    assert 0.9 <= result.seconds < 5 and figures["requests"] > 0
    assert figures["errors"] > 0  # the second body has 2 rows, over max_rows=1: a 413, not counted as answered
    assert figures["p50_ms"] <= figures["p99_ms"]


def test_figures_are_percentiles_of_the_latencies():
    figures = LoadResult(2, 2.0, [0.001 * i for i in range(1, 101)]).figures()
    assert figures["requests_per_s"] == 50 and figures["p50_ms"] == pytest.approx(50.5)
    assert figures["p99_ms"] == pytest.approx(99.01)
