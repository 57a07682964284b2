"""Tokenization and padding: the one way texts become model inputs (training, eval, predict)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Truncate at ``max_length``; no padding here (each batch is padded to its own longest row)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def make_collator(tokenizer: Any, pad_to: int | None = None) -> Any:
    """Dynamic padding per batch; ``pad_to`` pads every batch to that length (the notebook's way)."""
    from transformers import DataCollatorWithPadding

    if pad_to is None:
        return DataCollatorWithPadding(tokenizer, padding="longest")
    return DataCollatorWithPadding(tokenizer, padding="max_length", max_length=pad_to)
