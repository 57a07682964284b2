"""Where a training run keeps its files: the one definition that train, resume, eval/predict/export, compare,
the sweep summary and the sweeper's checkpoint retention all read.

The checkpoint callbacks are built here too (``best_checkpoint``, ``last_checkpoint``), so their folder and file
names cannot drift from what resume and eval look for; their configs set only what may change (the metric).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

# the file Lightning's CSVLogger writes in its log directory
HISTORY_FILE = "metrics.csv"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        """Weights, label space, decoder, hyper-parameters of the best epoch (eval, predict, export)."""
        return self.checkpoints / "best.ckpt"

    @property
    def last(self) -> Path:
        """The full training state after the last finished epoch (resume=true)."""
        return self.checkpoints / "last.ckpt"

    @property
    def baseline(self) -> Path:
        """A baseline run's fitted model, decision rule and data settings (skops; genre_lab.model.baseline)."""
        return self.checkpoints / "model.skops"

    @property
    def ensemble(self) -> Path:
        """An ensemble run's definition: members, weights, decision rule (genre_lab.ensemble)."""
        return self.root / "ensemble.json"

    @property
    def interrupted(self) -> Path:
        return self.checkpoints / "interrupted.ckpt"

    @property
    def removed_note(self) -> Path:
        """Left by the sweeper's keep_checkpoints in place of the checkpoint files it removed."""
        return self.checkpoints / "REMOVED.txt"

    @property
    def csv_logs(self) -> Path:
        return self.root / "csv"

    @property
    def history(self) -> Path:
        """The per-epoch metrics Lightning's CSV logger writes."""
        return self.csv_logs / HISTORY_FILE

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    def read_metrics(self) -> dict[str, Any]:
        """The final figures in ``metrics.json``; ``{}`` while the run has none (not finished, or failed)."""
        return json.loads(self.metrics.read_text()) if self.metrics.is_file() else {}

    def final_figures(self) -> dict[str, float]:
        """The run's final val/ and test/ figures (what an export and the server's /v1/metadata show)."""
        return {k: v for k, v in self.read_metrics().items()
                if k.startswith(("val/", "test/")) and isinstance(v, int | float)}

    @property
    def failed(self) -> Path:
        return self.root / "failed.json"

    @property
    def per_class(self) -> Path:
        return self.root / "per_class.csv"

    @property
    def val_probs(self) -> Path:
        """Validation probabilities, targets and movie ids of the final model (genre_lab.runs.stored_probs)."""
        return self.root / "val_probs.npz"

    @property
    def test_probs(self) -> Path:
        """The labelled test rows' probabilities, as ``val_probs`` (a fold run: the held-out rows)."""
        return self.root / "test_probs.npz"

    @property
    def oof_probs(self) -> Path:
        """A cross-validation's out-of-fold probabilities: every training row scored by the fold model that never
        saw it (genre_lab.sweeps.cross_validation)."""
        return self.root / "oof_probs.npz"

    @property
    def decisions(self) -> Path:
        """eval's per-row true and predicted genres."""
        return self.root / "decisions.csv"

    @property
    def timing(self) -> Path:
        return self.root / "timing.json"

    @property
    def eval_cache(self) -> Path:
        return self.root / "eval_cache"

    @property
    def hydra(self) -> Path:
        return self.root / ".hydra"

    @property
    def config(self) -> Path:
        """The job's resolved config, as Hydra saved it."""
        return self.hydra / "config.yaml"

    @property
    def overrides(self) -> Path:
        """The job's command-line overrides, as Hydra saved them."""
        return self.hydra / "overrides.yaml"

    def read_config(self) -> dict[str, Any]:
        """The job's config as Hydra saved it (interpolations unresolved; a resumed run's first one); ``{}`` when
        there is none."""
        if not self.config.is_file():
            return {}
        return OmegaConf.to_container(OmegaConf.load(self.config), resolve=False)  # type: ignore[return-value]

    @property
    def resumes(self) -> Path:
        """Each ``resume=true``'s own Hydra files, ``resumes/<n>/``; ``.hydra/`` keeps the run's first config."""
        return self.hydra / "resumes"

    def resume_dirs(self) -> list[Path]:
        """``.hydra/resumes/1``, ``2``, …: the run's resumes, oldest first."""
        found = [p for p in self.resumes.glob("*") if p.is_dir() and p.name.isdigit()]
        return sorted(found, key=lambda p: int(p.name))

    @property
    def predictions(self) -> Path:
        """predict's output when no ``out=`` is given."""
        return self.root / "predictions.csv"

    def record(self) -> list[str]:
        """The files that make this directory an earlier run's results (of any command): what no other run may
        write over. A directory holding only ``.hydra/`` (and a log) is an attempt that failed before writing any:
        it may be used again."""
        marks = [self.metrics, self.val_probs, self.test_probs, self.oof_probs, self.ensemble, self.decisions,
                 self.predictions, self.per_class]
        found = [p.relative_to(self.root).as_posix() for p in marks if p.is_file()]
        if self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            found.append("checkpoints/")
        return found


def best_checkpoint(run_dir: str, monitor: str, mode: str = "max") -> Any:
    """``checkpoints/best.ckpt``: the best epoch by ``monitor``, weights only (no optimizer state)."""
    from pytorch_lightning.callbacks import ModelCheckpoint  # deferred: compare reads layouts without Lightning

    best = RunLayout(run_dir).best
    return ModelCheckpoint(dirpath=best.parent, filename=best.stem, monitor=monitor, mode=mode, save_top_k=1,
                           auto_insert_metric_name=False, save_weights_only=True, enable_version_counter=False)


def csv_logger(run_dir: str) -> Any:
    """Lightning's CSVLogger writing ``csv/metrics.csv`` (the per-epoch history resume, compare and the
    notebooks read); its folder comes from here, not from its config."""
    from pytorch_lightning.loggers import CSVLogger  # deferred: as in best_checkpoint

    folder = RunLayout(run_dir).csv_logs
    return CSVLogger(save_dir=folder.parent, name=folder.name, version="")


def last_checkpoint(run_dir: str) -> Any:
    """``checkpoints/last.ckpt`` after every epoch, improved or not: what resume=true continues from."""
    from pytorch_lightning.callbacks import ModelCheckpoint  # deferred: as in best_checkpoint

    last = RunLayout(run_dir).last
    return ModelCheckpoint(dirpath=last.parent, filename=last.stem, monitor=None, save_top_k=1,
                           enable_version_counter=False)
