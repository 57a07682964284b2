"""The decision rule on NumPy probabilities: the one implementation that eval, predict, threshold tuning and the ONNX
runtime (genre_lab/serving) decide with. NumPy only, so the runtime imports it where torch is not installed;
decoding.py's ``Decoder`` adds the same rule on torch tensors for the training step's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

import numpy as np

from genre_lab.checks import GenreLabError, is_number, require_int

Rule = TypeVar("Rule", bound="DecisionRule")  # a method of the rule returns the caller's class (Decoder)


@dataclass
class DecisionRule:
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

    def for_genres(self: Rule, count: int, source: str = "the model") -> Rule:
        """This rule, checked against a label space of ``count`` genres (``source`` names where they came from)."""
        if self.top_k is not None and self.top_k > count:
            raise GenreLabError(f"decode.top_k={self.top_k} but {source} has {count} genres; "
                                f"use decode.top_k between 1 and {count}")
        if isinstance(self.threshold, list) and len(self.threshold) != count:
            raise GenreLabError(f"decode.threshold has {len(self.threshold)} values but {source} has {count} genres; "
                                "give one value, or one per genre")
        return self

    def decide(self, probs: np.ndarray) -> np.ndarray:
        """``[N, C]`` probabilities -> ``[N, C]`` int64 0/1 decisions (compared in float32, as training does)."""
        probs = np.asarray(probs, dtype=np.float32)
        if self.top_k is not None:
            k = min(self.top_k, probs.shape[-1])
            picked = np.zeros(probs.shape, dtype=bool)
            # stable: of equal probabilities the first genre is taken, as argmax does below
            np.put_along_axis(picked, np.argsort(-probs, axis=-1, kind="stable")[:, :k], True, axis=-1)
            return picked.astype(np.int64)
        threshold = np.asarray(self.threshold, dtype=np.float32)
        if threshold.ndim == 1 and threshold.size != probs.shape[-1]:
            raise GenreLabError(f"decode.threshold has {threshold.size} values but the model has {probs.shape[-1]} "
                                "genres")
        picked = probs > threshold
        if self.at_least_one and len(probs):
            empty = ~picked.any(axis=-1)
            picked[np.flatnonzero(empty), probs[empty].argmax(axis=-1)] = True
        return picked.astype(np.int64)

    def with_overrides(self: Rule, **changes: Any) -> Rule:
        """A copy with the non-null ``changes`` applied (e.g. ``decode.threshold=0.3`` on the CLI)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
