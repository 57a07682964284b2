"""Texts to token-id rows cut as the run was trained, and the length-sorted, padded batches they run in.

tokenizers and NumPy only: data/tokens.py (training, eval, predict) and the ONNX runtime (genre_lab/serving) both cut
and pad through these functions, so an exported model sees exactly the ids its run saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from genre_lab.checks import GenreLabError

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


def cutting_tokenizer(backend: Tokenizer, max_length: int, truncation: str) -> Tokenizer:
    """``backend`` (changed in place, and returned) set to cut as ``truncation`` says and never to pad: head and
    tail are the tokenizer's own right and left truncation; head+tail is cut after encoding (``encode_cut``)."""
    check_truncation(truncation)
    backend.no_padding()
    if truncation == "head+tail":
        backend.no_truncation()
    else:
        backend.enable_truncation(max_length, direction="left" if truncation == "tail" else "right")
    return backend


def encode_cut(backend: Tokenizer, texts: Sequence[str], max_length: int,
               truncation: str) -> tuple[list[list[int]], np.ndarray]:
    """Token ids of ``texts`` (special tokens added) from a ``cutting_tokenizer``, and a boolean mask of the texts
    that were longer than ``max_length`` and cut."""
    encodings = backend.encode_batch_fast(list(texts), add_special_tokens=True)
    rows = [e.ids for e in encodings]
    if truncation != "head+tail":
        return rows, np.fromiter((bool(e.overflowing) for e in encodings), dtype=bool, count=len(encodings))
    cut = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows)) > max_length
    for i in np.flatnonzero(cut):
        rows[i] = head_and_tail(rows[i], encodings[i].special_tokens_mask, max_length)
    return rows, cut


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


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches over rows sorted by length (longest first, so memory peaks at once): each batch pads to
    similar lengths, little compute is spent on padding."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``[len(rows), width]`` int64 input ids padded on the right with ``pad_id``, and the attention mask (1 on real
    tokens); ``width`` None: the longest row's length."""
    lengths = [len(row) for row in rows]
    width = max(lengths, default=0) if width is None else width
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, (row, n) in enumerate(zip(rows, lengths, strict=True)):
        input_ids[i, :n] = np.asarray(row, dtype=np.int64)
        mask[i, :n] = 1
    return input_ids, mask
