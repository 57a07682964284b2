"""Probabilities -> genre sets. The one decoder used by training metrics, eval and predict: the rule and its NumPy
implementation are rule.py's (shared with the ONNX runtime); ``Decoder`` adds it on torch tensors."""

from __future__ import annotations

from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from genre_lab.errors import GenreLabError
from genre_lab.scoring.rule import DecisionRule


class Decoder(DecisionRule):
    """The decision rule (``DecisionRule``: threshold, top_k, at_least_one; ``decide`` on NumPy arrays), also
    callable on torch tensors: the training step decides on the device, without a copy to NumPy (a sync)."""

    def __call__(self, probs: torch.Tensor) -> torch.Tensor:
        """``[N, C]`` probabilities -> ``[N, C]`` int64 0/1 decisions, as ``decide`` gives them."""
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


def rule_for_run(saved: Decoder, node: Any) -> Decoder:
    """The decision rule eval and predict apply: ``decode=checkpoint`` (the default) is the checkpoint's rule
    with the node's non-null keys applied; a rule config with a ``_target_`` (``decode=top_k``) replaces it."""
    if "_target_" in node:
        return instantiate(node)
    return saved.with_overrides(**OmegaConf.to_container(node))
