"""Rewrite part of a saved checkpoint atomically (the previous file stays valid until the rename)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from genre_lab.io import atomic_target


def store_decoder(path: str | Path, decoder: dict[str, Any]) -> None:
    """Put a (tuned) decision rule into an existing checkpoint, keeping everything else."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["decoder"] = decoder
    with atomic_target(path) as tmp:
        torch.save(checkpoint, tmp)
