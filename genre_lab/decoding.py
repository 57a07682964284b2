"""Probabilities -> genre sets. The one decoder used by training metrics, eval and predict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from genre_lab.errors import GenreLabError


@dataclass
class Decoder:
    """Decide which genres a movie gets from its per-genre probabilities.

    - ``threshold``: one value for all genres or one per genre; a genre is chosen when its
      probability is strictly above it (as torchmetrics does).
    - ``top_k``: instead of thresholds, the ``k`` most probable genres.
    - ``at_least_one``: threshold, but a movie with no genre above it gets its arg-max.
    """

    threshold: float | Sequence[float] = 0.5
    top_k: int | None = None
    at_least_one: bool = False

    def __post_init__(self) -> None:
        values = [self.threshold] if isinstance(self.threshold, (int, float)) else list(self.threshold)
        bad = [v for v in values if not 0.0 < float(v) < 1.0]
        if bad:
            raise GenreLabError(f"decode.threshold must be in (0, 1), got {bad}; e.g. decode.threshold=0.5")
        if self.top_k is not None and self.top_k < 1:
            raise GenreLabError(f"decode.top_k={self.top_k} must be a positive number of genres")
        if not isinstance(self.threshold, (int, float)):
            self.threshold = [float(v) for v in self.threshold]

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` probabilities -> ``[N, C]`` int64 0/1 decisions."""
        if self.top_k is not None:
            k = min(self.top_k, probs.shape[-1])
            picked = torch.zeros_like(probs, dtype=torch.bool)
            return picked.scatter(-1, probs.topk(k, dim=-1).indices, True).long()
        threshold = torch.as_tensor(self.threshold, dtype=probs.dtype, device=probs.device)
        if threshold.ndim == 1 and threshold.numel() != probs.shape[-1]:
            raise GenreLabError(
                f"decode.threshold has {threshold.numel()} values but the model has {probs.shape[-1]} genres"
            )
        picked = probs > threshold
        if self.at_least_one:  # without boolean indexing: no device sync in the training step
            empty = ~picked.any(dim=-1, keepdim=True)
            top = torch.zeros_like(picked).scatter(-1, probs.argmax(dim=-1, keepdim=True), True)
            picked = picked | (empty & top)
        return picked.long()

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """NumPy in, NumPy out (eval, predict)."""
        return self(torch.from_numpy(np.asarray(probs, dtype=np.float32))).numpy()

    def with_overrides(self, **changes: Any) -> Decoder:
        """A copy with the non-null ``changes`` applied (e.g. ``decode.threshold=0.3`` on the CLI)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
