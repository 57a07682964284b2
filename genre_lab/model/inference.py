"""Batched, length-sorted inference with dynamic padding: token ids -> probabilities, in input order.

Shared by eval, predict and threshold tuning. Sorting by length means each batch pads to similar
lengths (little wasted compute); the results are put back in the caller's order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genre_lab.data.token_rows import length_sorted_batches
from genre_lab.data.tokens import TokenIds
from genre_lab.framework.progress import RowProgress


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """The autocast context Lightning uses for ``precision`` (disabled for full precision)."""
    dtype = torch.bfloat16 if str(precision).startswith("bf16") else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=str(precision).endswith("-mixed"))


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    input_ids: TokenIds,
    collate: Any,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    precision: str = "32-true",
    progress: bool = False,
) -> np.ndarray:
    """The network's logits ``[len(input_ids), num_labels]`` (float32, before any calibration) for unpadded token
    ids (``data.tokens.tokenize``), in input order.

    ``model`` is a ``GenreClassifier``; ``collate`` pads a list of ``{"input_ids": …}`` (``data.tokens.make_collator``);
    ``precision`` is a Lightning precision string: ``bf16-mixed``/``16-mixed`` run under autocast.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    was_training = model.training
    model.eval().to(device)
    out: np.ndarray | None = None
    batches = length_sorted_batches(input_ids.lengths, batch_size)
    with RowProgress(len(input_ids), "predicting", enabled=progress) as bar:
        for idx in batches:
            batch = collate([{"input_ids": input_ids[i]} for i in idx])
            with autocast(device, precision):
                logits = model(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            logits = logits.float().cpu().numpy()
            if out is None:
                out = np.empty((len(input_ids), logits.shape[1]), dtype=np.float32)
            out[idx] = logits
            bar.advance(len(idx))
    model.train(was_training)
    return out if out is not None else np.empty((0, 0), dtype=np.float32)


def predict_probs(model: torch.nn.Module, input_ids: TokenIds, collate: Any, batch_size: int = 64,
                  device: str | torch.device | None = None, precision: str = "32-true",
                  progress: bool = False) -> np.ndarray:
    """Probabilities as the model defines them (``model.probabilities``: its calibration, then sigmoid for bce,
    softmax for ce) of ``predict_logits``."""
    logits = predict_logits(model, input_ids, collate, batch_size, device, precision, progress)
    return model.probabilities(torch.from_numpy(logits)).numpy() if logits.size else logits
