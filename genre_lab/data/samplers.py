"""Index samplers: seeded per-epoch shuffles, length-grouped training batches, length-sorted eval.

All are plain index samplers (not batch samplers), so Lightning's distributed wrapper shards them
unchanged: under DDP with ``W`` ranks, rank ``r`` takes positions ``r, r+W, …``. A group of
``batch_size x W`` consecutive positions therefore becomes one batch on each rank, which is why the
length-grouped sampler groups by ``batch_size x world_size``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch): Lightning calls ``set_epoch`` before each epoch,
    so a resumed run sees the same order as an uninterrupted one."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def permutation(self) -> np.ndarray:
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        return torch.randperm(self.size, generator=generator).numpy()

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation().tolist())

    def __len__(self) -> int:
        return self.size


class LengthGroupedSampler(EpochShuffleSampler):
    """Shuffled batches of similar-length rows, so dynamic padding wastes little compute.

    Each epoch: a seeded permutation is cut into windows of ``group x window`` rows; each window is
    sorted by length and cut into groups of ``group`` rows (one batch each); the full groups are then
    shuffled. Batches differ every epoch and their order is random, yet each holds neighbours in
    length. A last incomplete group stays last, so every other batch keeps its boundaries. The group holding
    the longest row goes first (as Hugging Face's length-grouped sampler does): a batch too large for the
    device fails in the first step of the epoch, not an hour into it.
    """

    def __init__(self, lengths: Sequence[int], group: int, seed: int, window: int = 64) -> None:
        super().__init__(len(lengths), seed)
        self.lengths = np.asarray(lengths)
        self.group, self.window = group, window

    def __iter__(self) -> Iterator[int]:
        perm = self.permutation()
        span = self.group * self.window
        groups: list[np.ndarray] = []
        for start in range(0, self.size, span):
            chunk = perm[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            groups.extend(chunk[i : i + self.group] for i in range(0, len(chunk), self.group))
        tail = [groups.pop()] if groups and len(groups[-1]) < self.group else []
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(groups))
        if len(order):
            longest = int(np.argmax([self.lengths[groups[i]].max() for i in order]))
            order = np.concatenate([order[longest:longest + 1], np.delete(order, longest)])
        return iter(np.concatenate([groups[i] for i in order] + tail).tolist() if groups or tail else [])


class LengthSortedSampler(Sampler[int]):
    """Longest rows first (validation/test during fit): little padding; metrics do not depend on order."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.order = np.argsort(-np.asarray(lengths), kind="stable")

    def __iter__(self) -> Iterator[int]:
        return iter(self.order.tolist())

    def __len__(self) -> int:
        return len(self.order)
