"""Rewrite part of a saved checkpoint atomically (the previous file stays valid until the rename)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pytorch_lightning.plugins.io import TorchCheckpointIO

from genre_lab.io import atomic_target


def store_in_checkpoint(path: str | Path, **entries: Any) -> None:
    """Put entries (the tuned ``decoder``, the fitted ``calibration``) into an existing checkpoint, keeping
    everything else; an entry given as None is removed."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    for key, value in entries.items():
        if value is None:
            checkpoint.pop(key, None)
        else:
            checkpoint[key] = value
    with atomic_target(path) as tmp:
        torch.save(checkpoint, tmp)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that writes beside the target and renames (same folder, fsynced).

    Lightning's own save goes through a temp file in the system temp folder, which is a plain copy when
    that folder is on another disk; here a crash or a full disk mid-save leaves the previous file intact.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_target(path) as tmp:
            torch.save(checkpoint, tmp)
