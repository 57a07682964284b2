"""Dividing a machine between concurrent jobs: GPU blocks and CPU threads (GPU counts faked)."""

import logging

import pytest

from genre_lab.errors import GenreLabError
from genre_lab.sweeps.shares import Share, gpus_per_job, plan_shares, visible_gpus


def test_each_concurrent_job_gets_its_own_gpu_and_a_fair_share_of_the_cores():
    shares = plan_shares(4, ["0", "1", "2", "3"], cores=16)
    assert [s.gpus for s in shares] == [("0",), ("1",), ("2",), ("3",)]
    assert {s.threads for s in shares} == {4}
    assert shares[2].environment() == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "RAYON_NUM_THREADS": "4",
                                       "CUDA_VISIBLE_DEVICES": "2"}


def test_multi_gpu_jobs_get_disjoint_blocks_of_the_visible_ids():
    shares = plan_shares(2, ["GPU-a", "GPU-b", "GPU-c", "GPU-d"], cores=8, per_job=2)
    assert [s.gpus for s in shares] == [("GPU-a", "GPU-b"), ("GPU-c", "GPU-d")]


def test_more_jobs_than_gpus_share_them_round_robin_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        shares = plan_shares(3, ["0", "1"], cores=6)
    assert [s.gpus for s in shares] == [("0",), ("1",), ("0",)]
    assert "jobs share GPUs" in caplog.text


def test_a_job_needing_more_gpus_than_visible_is_refused():
    with pytest.raises(GenreLabError, match="2 GPUs .* only 1 are visible"):
        plan_shares(1, ["0"], cores=4, per_job=2)


def test_on_cpu_the_cores_are_divided_and_never_oversubscribed(caplog):
    assert plan_shares(2, [], cores=2) == [Share(None, 1), Share(None, 1)]
    assert "CUDA_VISIBLE_DEVICES" not in Share(None, 1).environment()  # no GPU: CUDA is left alone
    assert [s.threads for s in plan_shares(3, [], cores=16)] == [5, 5, 5]
    with caplog.at_level(logging.WARNING):
        assert plan_shares(4, [], cores=2)[0].threads == 1
    assert "oversubscribed" in caplog.text


@pytest.mark.parametrize(("devices", "count"), [(1, 1), (2, 2), ("2", 2), ([0, 3], 2), ("auto", 1), (-1, 1)])
def test_gpus_per_job_from_trainer_devices(devices, count):
    assert gpus_per_job(devices) == count


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5")
    assert visible_gpus() == ["3", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
