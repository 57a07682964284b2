"""Tokenization and padding: the one way texts become model inputs (training, eval, predict).

Token ids are kept unpadded in one flat int32 array plus row offsets (``TokenIds``): compact, fast to
save and load (the on-disk cache, ``token_cache.py``), and each batch is padded only to its own longest row.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer

from genre_lab.errors import GenreLabError


@dataclass(frozen=True)
class TokenIds:
    """Variable-length token-id rows: row ``i`` is ``flat[offsets[i]:offsets[i + 1]]``."""

    flat: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]]) -> TokenIds:
        lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int32, count=int(offsets[-1]))
        return cls(flat, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.flat[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, rows: Sequence[int] | np.ndarray) -> TokenIds:
        """The given rows, in that order, as a new compact ``TokenIds``."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # one gather: every token position of the chosen rows
        starts = np.repeat(self.offsets[rows] - offsets[:-1], lengths)
        return TokenIds(self.flat[starts + np.arange(offsets[-1])], offsets)

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as handle:
            np.savez(handle, flat=self.flat, offsets=self.offsets)

    @classmethod
    def load(cls, path: str | Path) -> TokenIds:
        with np.load(path) as data:
            return cls(data["flat"], data["offsets"])

    def check(self) -> None:
        """ValueError unless the offsets delimit ``flat`` exactly (what a loaded file must satisfy)."""
        offsets = self.offsets
        if self.flat.ndim != 1 or offsets.ndim != 1 or not len(offsets) or offsets[0] != 0 \
                or offsets[-1] != len(self.flat) or (np.diff(offsets) < 0).any():
            raise ValueError(f"inconsistent token ids: {len(self.flat)} ids, offsets of shape {offsets.shape}")


# which tokens of a text longer than max_length the model sees (special tokens are always kept)
TRUNCATIONS = ("head", "tail", "head+tail")
KEPT = {"head": "their first {n} tokens", "tail": "their last {n} tokens",
        "head+tail": "their first quarter and last three quarters of {n} tokens"}


def check_truncation(truncation: Any) -> None:
    if truncation not in TRUNCATIONS:
        raise GenreLabError(f"data.truncation={truncation!r} must be head (keep a long text's first max_length "
                            "tokens), tail (its last) or head+tail (its first quarter and last three quarters), "
                            "e.g. data.truncation=head")


def kept_tokens(truncation: str, max_length: int) -> str:
    """What the model sees of a text cut at ``max_length``, for messages."""
    return KEPT[truncation].format(n=max_length)


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int, truncation: str = "head") -> TokenIds:
    """Truncate at ``max_length`` (``truncation``: which tokens of a longer text are kept); no padding here (each
    batch is padded to its own longest row).

    Calls the Rust tokenizer directly (a private copy, so the caller's tokenizer keeps its settings):
    same ids as ``tokenizer(texts, truncation=True, max_length=...)`` (with ``truncation_side="left"`` for
    ``tail``), without building attention masks and type ids nobody uses — about 25 % faster on 54k synopses.
    """
    return tokenize_flagging_truncation(tokenizer, texts, max_length, truncation)[0]


def tokenize_flagging_truncation(tokenizer: Any, texts: Sequence[str], max_length: int,
                                 truncation: str = "head") -> tuple[TokenIds, np.ndarray]:
    """``tokenize``, and a boolean mask of the rows that were longer than ``max_length`` and cut."""
    check_truncation(truncation)
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    if truncation == "head+tail":
        backend.no_truncation()
    else:
        backend.enable_truncation(max_length, direction="left" if truncation == "tail" else "right")
    encodings = backend.encode_batch_fast(list(texts), add_special_tokens=True)
    rows = [e.ids for e in encodings]
    if truncation != "head+tail":
        cut = np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(encodings))
        return TokenIds.from_lists(rows), cut
    cut = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)) > max_length
    for i in np.flatnonzero(cut):
        rows[i] = head_and_tail(rows[i], encodings[i].special_tokens_mask, max_length)
    return TokenIds.from_lists(rows), cut


def head_and_tail(ids: list[int], special: list[int], max_length: int) -> list[int]:
    """The first quarter and the last three quarters of the text's token budget, special tokens kept in place.

    Sun et al. 2019, "How to Fine-Tune BERT for Text Classification?" (arXiv:1905.05583): keeping the head and
    the tail (128 + 382 of 512 tokens) beat head-only and tail-only truncation on long reviews.
    """
    text = [i for i, s in enumerate(special) if not s]
    start, stop = text[0], text[-1] + 1  # the special tokens before and after the text stay
    budget = max_length - (len(ids) - (stop - start))
    head = -(-budget // 4)  # 510 -> 128 as in the paper
    return ids[:start] + ids[start : start + head] + ids[stop - (budget - head) : stop] + ids[stop:]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Digest of everything that decides the ids: vocabulary, normaliser, pre-tokeniser, special tokens."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


@dataclass(frozen=True)
class PadCollator:
    """Pads a list of ``{"input_ids": ids[, "labels": multi-hot][, "teacher": soft targets]}`` into tensors.

    Padding on the right to the longest row (or to ``pad_to``, the notebook's way), rounded up to a
    multiple of ``pad_multiple`` (8 suits tensor cores). Plain data, picklable: DataLoader workers
    never touch the tokenizer (so no fork-after-parallelism warnings from it).
    """

    pad_id: int
    pad_to: int | None = None
    pad_multiple: int | None = None

    def __call__(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        lengths = [len(item["input_ids"]) for item in items]
        width = self.pad_to or max(lengths)
        if self.pad_multiple:
            width = -(-width // self.pad_multiple) * self.pad_multiple
        input_ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, (item, n) in enumerate(zip(items, lengths, strict=True)):
            input_ids[row, :n] = torch.as_tensor(np.asarray(item["input_ids"], dtype=np.int64))
            mask[row, :n] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask}
        for key in ("labels", "teacher"):  # per-genre rows, where the dataset has them
            if key in items[0]:
                batch[key] = torch.as_tensor(np.stack([item[key] for item in items]), dtype=torch.float32)
        return batch


def make_collator(tokenizer: Any, pad_to: int | None = None, pad_multiple: int | None = None) -> PadCollator:
    """Dynamic padding per batch with the tokenizer's pad id; ``pad_to`` pads every batch to that length."""
    if tokenizer.pad_token_id is None:
        raise GenreLabError(f"tokenizer {tokenizer.name_or_path!r} has no pad token; pick an encoder that defines one")
    return PadCollator(int(tokenizer.pad_token_id), pad_to, pad_multiple)
