"""Probabilities -> genre sets. The one decoder used by training metrics, eval and predict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genre_lab.errors import GenreLabError, is_number, require_int


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
        listed = isinstance(self.threshold, Sequence) and not isinstance(self.threshold, str) \
            and len(self.threshold) > 0
        values = list(self.threshold) if listed else [self.threshold]
        bad = [v for v in values if not is_number(v) or not 0.0 < float(v) < 1.0]
        if bad:
            shown = bad if listed else self.threshold
            raise GenreLabError(f"decode.threshold={shown!r} must be a number in (0, 1) (or a list of them, one per "
                                "genre); e.g. decode.threshold=0.5")
        if self.top_k is not None:
            self.top_k = require_int(self.top_k, "decode.top_k", 1, 2)
        if not isinstance(self.at_least_one, bool):
            raise GenreLabError(f"decode.at_least_one={self.at_least_one!r} must be true or false")
        self.threshold = [float(v) for v in values] if listed else float(self.threshold)

    def for_genres(self, count: int, source: str = "the model") -> Decoder:
        """This decoder, checked against a label space of ``count`` genres (``source`` names where they came from)."""
        if self.top_k is not None and self.top_k > count:
            raise GenreLabError(f"decode.top_k={self.top_k} but {source} has {count} genres; "
                                f"use decode.top_k between 1 and {count}")
        if isinstance(self.threshold, list) and len(self.threshold) != count:
            raise GenreLabError(f"decode.threshold has {len(self.threshold)} values but {source} has {count} genres; "
                                "give one value, or one per genre")
        return self

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


def rule_for_run(saved: Decoder, node: Any) -> Decoder:
    """The decision rule eval and predict apply: ``decode=checkpoint`` (the default) is the checkpoint's rule
    with the node's non-null keys applied; a rule config with a ``_target_`` (``decode=top_k``) replaces it."""
    if "_target_" in node:
        return instantiate(node)
    return saved.with_overrides(**OmegaConf.to_container(node))
