"""The micro-batcher: concurrent requests share model calls up to max_batch, each gets its own rows back in order,
max_batch=1 runs them one by one, and a failing call fails only its own requests."""

import asyncio

import numpy as np
import pytest

from genre_lab.serving.batcher import MicroBatcher


class Model:
    """texts -> (probabilities = text lengths, decisions = lengths even, cut = lengths > 5); records each call."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail_on = fail_on

    def __call__(self, texts):
        self.calls.append(list(texts))
        if self.fail_on in texts:
            raise RuntimeError("model failed")
        lengths = np.array([[len(t)] for t in texts], dtype=np.float32)
        return lengths, (lengths % 2 == 0).astype(np.int64), lengths[:, 0] > 5


async def requests(batcher: MicroBatcher, groups: list[list[str]]):
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(g) for g in groups), return_exceptions=True)
    finally:
        await batcher.stop()


def test_requests_that_arrive_together_share_one_call_and_get_their_own_rows_back():
    model = Model()
    groups = [["a", "bb"], ["ccc"], ["dddddd", "e", "ff"]]
    answers = asyncio.run(requests(MicroBatcher(model, max_batch=32, max_wait_ms=200), groups))
    assert model.calls == [["a", "bb", "ccc", "dddddd", "e", "ff"]]
    for group, (probs, decisions, cut) in zip(groups, answers, strict=True):
        assert probs[:, 0].tolist() == [len(t) for t in group]
        assert decisions[:, 0].tolist() == [int(len(t) % 2 == 0) for t in group]
        assert cut.tolist() == [len(t) > 5 for t in group]


def test_a_batch_stops_growing_at_max_batch_texts():
    model = Model()
    asyncio.run(requests(MicroBatcher(model, max_batch=3, max_wait_ms=200), [["a"], ["b", "c"], ["d"], ["e"]]))
    assert [len(call) for call in model.calls] == [3, 2]


def test_max_batch_one_runs_each_request_alone_in_arrival_order():
    model = Model()
    asyncio.run(requests(MicroBatcher(model, max_batch=1, max_wait_ms=200), [["a"], ["b", "c"], ["d"]]))
    assert model.calls == [["a"], ["b", "c"], ["d"]]


def test_a_request_waits_at_most_max_wait_ms_for_company():
    model = Model()

    async def late_second(batcher):
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0.3)  # well past the 20 ms wait: the first request has been answered alone
        second = await batcher.submit(["b"])
        await batcher.stop()
        return await first, second

    asyncio.run(late_second(MicroBatcher(model, max_batch=32, max_wait_ms=20)))
    assert model.calls == [["a"], ["b"]]


def test_a_failing_call_fails_its_requests_and_the_next_batch_is_served():
    model = Model(fail_on="boom")

    async def two_batches(batcher):
        batcher.start()
        failed = await asyncio.gather(batcher.submit(["x", "boom"]), batcher.submit(["y"]), return_exceptions=True)
        after = await batcher.submit(["zz"])
        await batcher.stop()
        return failed, after

    failed, after = asyncio.run(two_batches(MicroBatcher(model, max_batch=8, max_wait_ms=100)))
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert after[0][:, 0].tolist() == [2]


@pytest.mark.parametrize("max_batch", [0, -3])
def test_a_max_batch_below_one_means_one(max_batch):
    assert MicroBatcher(Model(), max_batch=max_batch, max_wait_ms=1).max_batch == 1
