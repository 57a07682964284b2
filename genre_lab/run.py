"""A finished run: its checkpoint, model, tokenizer and data settings, from ``run_dir`` or ``ckpt_path``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from genre_lab.backbones import load_tokenizer
from genre_lab.data.datamodule import data_defaults
from genre_lab.data.table import TableSpec
from genre_lab.errors import GenreLabError
from genre_lab.model.module import GenreClassifier
from genre_lab.run_layout import RunLayout

log = logging.getLogger(__name__)


@dataclass
class Run:
    """Everything eval / predict / export need, read from the checkpoint (and the run directory)."""

    ckpt_path: Path
    dir: Path | None

    @classmethod
    def locate(cls, run_dir: str | None = None, ckpt_path: str | None = None) -> Run:
        if not run_dir and not ckpt_path:
            raise GenreLabError("say which model: run_dir=<a train run directory> or ckpt_path=<a .ckpt file>")
        if ckpt_path:
            ckpt = Path(ckpt_path)
            if not ckpt.is_file():
                raise GenreLabError(f"ckpt_path={ckpt}: no such checkpoint file")
            parent = RunLayout(ckpt.resolve().parent.parent)
            return cls(ckpt, parent.root if parent.metrics.is_file() else None)
        root = Path(run_dir)
        if not root.is_dir():
            raise GenreLabError(f"run_dir={root}: no such directory")
        layout = RunLayout(root)
        best, last = layout.best, layout.last
        if best.is_file():
            return cls(best, root)
        if last.is_file():
            # a run that never validated (trainer.limit_val_batches=0) saves no best.ckpt, only last.ckpt
            log.warning("run_dir=%s has no checkpoints/best.ckpt (no validation-scored checkpoint): using %s, "
                        "the weights after the last training epoch", root, last)
            return cls(last, root)
        if layout.removed_note.is_file():
            raise GenreLabError(f"run_dir={root} has no checkpoints left. {layout.removed_note.read_text().strip()}")
        raise GenreLabError(
            f"run_dir={root} holds no checkpoints/best.ckpt or last.ckpt — did the run finish its first epoch? "
            "(debug=fast_dev_run saves none.) An interrupted run leaves checkpoints/interrupted.ckpt: pass "
            "ckpt_path=… to use it or another file."
        )

    @cached_property
    def checkpoint(self) -> dict[str, Any]:
        try:
            return torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise GenreLabError(f"{self.ckpt_path}: not a readable genre_lab checkpoint ({err})") from None

    @cached_property
    def model(self) -> Any:
        if "label_space" not in self.checkpoint:
            raise GenreLabError(f"{self.ckpt_path}: not a genre_lab checkpoint (no label space inside)")
        # What load_from_checkpoint does, from the dict already in memory (the file is read once).
        model = GenreClassifier(**self.checkpoint["hyper_parameters"])
        model.on_load_checkpoint(self.checkpoint)
        model.load_state_dict(self.checkpoint["state_dict"])
        return model.eval()

    @property
    def data_hparams(self) -> dict[str, Any]:
        """The datamodule's settings at training time (text template, max_length, split, …)."""
        return dict(self.checkpoint.get("datamodule_hyper_parameters", {}))

    @property
    def spec(self) -> TableSpec:
        return TableSpec.from_settings(self.data_hparams)

    def precision(self, requested: str | None = None) -> str:
        """``requested`` if given, else the precision the run was trained in."""
        return str(requested or self.checkpoint.get("precision") or "32-true")

    @property
    def max_length(self) -> int:
        return int(self.data_hparams.get("max_length", data_defaults()["max_length"]))

    @property
    def truncation(self) -> str:
        """Which tokens of a text longer than ``max_length`` the run's model saw (``data.truncation``)."""
        return str(self.data_hparams.get("truncation", data_defaults()["truncation"]))

    @property
    def tokenizer_source(self) -> str:
        """The run's own saved tokenizer folder when present (no network), else the backbone's name."""
        if self.dir is not None and RunLayout(self.dir).tokenizer.is_dir():
            return str(RunLayout(self.dir).tokenizer)
        return str(self.checkpoint["hyper_parameters"]["backbone"])

    @cached_property
    def tokenizer(self) -> Any:
        return load_tokenizer(self.tokenizer_source)

    @property
    def cache_dir(self) -> Path:
        return RunLayout(self.dir if self.dir is not None else self.ckpt_path.parent).eval_cache
