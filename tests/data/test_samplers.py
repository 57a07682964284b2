import numpy as np

from genre_lab.data.samplers import EpochShuffleSampler, LengthGroupedSampler, LengthSortedSampler


def lengths(n: int = 1000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(10, 128, size=n)


def padded_tokens(order: list[int], lens: np.ndarray, batch: int) -> int:
    """Tokens a batch costs when padded to its longest row, summed over batches."""
    return sum(int(lens[order[i : i + batch]].max()) * len(order[i : i + batch]) for i in range(0, len(order), batch))


def test_length_grouped_is_a_new_permutation_every_epoch_and_reproducible():
    lens = lengths()
    sampler = LengthGroupedSampler(lens, group=32, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(1000))
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(second) == list(range(1000)) and second != first
    again = LengthGroupedSampler(lens, group=32, seed=3)
    again.set_epoch(1)
    assert list(again) == second


def test_length_grouped_batches_waste_far_less_padding_than_a_shuffle():
    lens = lengths()
    grouped = padded_tokens(list(LengthGroupedSampler(lens, group=32, seed=0)), lens, 32)
    shuffled = padded_tokens(list(EpochShuffleSampler(len(lens), seed=0)), lens, 32)
    real = int(lens.sum())
    assert grouped < 1.1 * real < shuffled  # random batches pad to ~1.6x here


def test_batches_are_shuffled_not_sorted_and_the_short_tail_stays_last():
    lens = lengths(1000)
    sampler = LengthGroupedSampler(lens, group=32, seed=0, window=8)
    order = list(sampler)
    maxima = [lens[order[i : i + 32]].max() for i in range(0, 992, 32)]
    assert maxima != sorted(maxima, reverse=True) and maxima != sorted(maxima)
    # 1000 = 31 x 32 + 8; windows of 8 x 32 rows: the last window (rows 768…999 of the permutation)
    # ends in an incomplete group of its 8 shortest rows, kept last so earlier batches stay whole.
    last_window = sampler.permutation()[768:]
    shortest = last_window[np.argsort(-lens[last_window], kind="stable")][-8:]
    assert sorted(order[992:]) == sorted(shortest.tolist())


def test_length_sorted_sampler_is_longest_first():
    lens = np.array([3, 9, 1, 9, 5])
    assert list(LengthSortedSampler(lens)) == [1, 3, 4, 0, 2]


def test_under_ddp_each_rank_still_gets_length_grouped_batches():
    from lightning_fabric.utilities.distributed import DistributedSamplerWrapper

    lens, batch, world = lengths(2048), 16, 2
    sampler = LengthGroupedSampler(lens, group=batch * world, seed=0)  # what the datamodule builds under DDP
    shards = [list(DistributedSamplerWrapper(sampler, num_replicas=world, rank=r, shuffle=False)) for r in range(world)]
    assert sorted(shards[0] + shards[1]) == list(range(2048))
    for shard in shards:
        assert padded_tokens(shard, lens, batch) < 1.1 * int(lens[shard].sum())


def test_the_batch_with_the_longest_row_comes_first_every_epoch():
    lens = lengths(1000, seed=5)
    sampler = LengthGroupedSampler(lens, group=32, seed=1)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert lens[order[:32]].max() == lens.max()  # an out-of-memory batch shows in the first step
        assert sorted(order) == list(range(1000))
    again = LengthGroupedSampler(lens, group=32, seed=1)
    again.set_epoch(3)
    assert list(again) == order  # still a function of (seed, epoch)
    seconds = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        seconds.append(tuple(list(sampler)[32:64]))
    assert len(set(seconds)) > 1  # the rest stays shuffled
