"""Rewrite parts of a saved checkpoint atomically (the previous file stays valid until the rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def store_decoder(path: str | Path, decoder: dict[str, Any]) -> None:
    """Put a (tuned) decision rule into an existing checkpoint, keeping everything else."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["decoder"] = decoder
    atomic_torch_save(checkpoint, path)
