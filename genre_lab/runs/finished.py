"""Finished runs for eval, predict and export, from ``run_dir`` or ``ckpt_path``: one interface (``FinishedRun``)
over a transformer run (``Run``: checkpoint, tokenizer), the TF-IDF baseline (``BaselineRun``: model.skops), an
ensemble of runs (``EnsembleRun``: ensemble.json) and an exported ONNX folder (``ExportedRun``: genre_lab.json, run
by genre_lab/serving); ``locate`` returns the right one.

It is over 350 lines: the four kinds each implement the whole interface, kept side by side so that a change to
``FinishedRun`` is made, and reviewed, for all four at once."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from genre_lab.backbones import cache_dir as machine_cache
from genre_lab.backbones import load_tokenizer
from genre_lab.data.datamodule import data_defaults
from genre_lab.data.labels import LabelSpace
from genre_lab.data.table import TableSpec
from genre_lab.data.token_cache import cached_tokenize
from genre_lab.data.token_rows import kept_tokens
from genre_lab.data.tokens import TokenIds, make_collator, tokenize, tokenize_flagging_truncation
from genre_lab.errors import GenreLabError
from genre_lab.framework.progress import RowProgress
from genre_lab.model.baseline import TfidfLogReg
from genre_lab.model.inference import predict_probs
from genre_lab.model.module import GenreClassifier
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.serving.manifest import MANIFEST, Manifest
from genre_lab.serving.onnx_runtime import OnnxGenreModel

log = logging.getLogger(__name__)
# an ensemble run's definition file (genre-lab ensemble), as RunLayout names it
ENSEMBLE_FILE = RunLayout(".").ensemble.name
ENSEMBLE_KEYS = ("members", "weights", "decoder", "label_space")


ENSEMBLE_FORMAT = 1


def ensemble_definition(members: Sequence[str], weights: Sequence[float], source: str, decoder: Decoder,
                        space: LabelSpace, text_template: str) -> dict[str, Any]:
    """What ``ensemble.json`` holds (genre-lab ensemble, a cross-validation): ``EnsembleRun`` reads it back."""
    return {"format": ENSEMBLE_FORMAT, "members": list(members), "weights": [float(w) for w in weights],
            "weights_source": source, "decoder": decoder.to_dict(), "label_space": space.to_dict(),
            "text_template": text_template}


class FinishedRun(Protocol):
    """What eval and predict use of a run, whatever its model."""

    dir: Path | None  # the run directory, when the model file sits in one

    @property
    def model_file(self) -> Path: ...  # best.ckpt, model.skops, ensemble.json or an exported model.onnx

    @property
    def label_space(self) -> LabelSpace: ...

    @property
    def decoder(self) -> Decoder: ...  # the run's own decision rule

    @property
    def data_hparams(self) -> dict[str, Any]: ...  # the datamodule's settings at training time

    @property
    def spec(self) -> TableSpec: ...

    @property
    def cache_dir(self) -> Path: ...  # eval's probability cache

    @property
    def cut_note(self) -> str: ...  # what happens to the texts flagged as cut, for predict's warning

    def cache_identity(self, precision: str | None) -> dict[str, Any]: ...

    def probabilities(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                      progress: bool = False, token_cache_dir: str | None = None) -> np.ndarray: ...

    def probabilities_and_cuts(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``probabilities``, and which texts the model saw only part of (longer than its input limit), from
        one tokenization."""
        ...


def file_identity(path: Path) -> list[Any]:
    """What changes when a model file is replaced: eval's probability cache is keyed by it."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def eval_cache_of(run_dir: Path | None, model_file: Path) -> Path:
    return RunLayout(run_dir if run_dir is not None else model_file.parent).eval_cache


def average(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of members' probabilities (``weights`` sum to 1): the ensemble's, when it is built from
    stored probabilities and when eval/predict run its members, so the two agree exactly."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in probs])
    return np.tensordot(np.asarray(weights, dtype=np.float64), stacked, axes=1).astype(np.float32)


def average_stored(parts: Sequence[StoredProbs], weights: Sequence[float], names: Sequence[str]) -> StoredProbs:
    """The weighted mean of stored probabilities of the same rows, each aligned to the first's row order (``names``
    say whose they are in the GenreLabError for rows or genres that differ)."""
    first = parts[0]
    aligned = [first] + [p.aligned_to(first, (name, names[0])) for p, name in zip(parts[1:], names[1:], strict=True)]
    return StoredProbs(first.movie_ids, average([p.probs for p in aligned], weights), first.targets, first.labels)


@dataclass
class Run:
    """A transformer run: everything eval / predict / export need, read from the checkpoint (and the run
    directory, which keeps the tokenizer)."""

    ckpt_path: Path
    dir: Path | None

    @classmethod
    def in_directory(cls, root: Path) -> Run:
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
            f"run_dir={root} holds no checkpoints/best.ckpt or last.ckpt (nor a baseline's model.skops, an "
            f"{ENSEMBLE_FILE} or an export's {MANIFEST}) — did the run finish its first epoch? (debug=fast_dev_run "
            "saves none.) An interrupted run leaves checkpoints/interrupted.ckpt: pass ckpt_path=… to use it or "
            "another file."
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
    def model_file(self) -> Path:
        return self.ckpt_path

    @property
    def label_space(self) -> LabelSpace:
        return self.model.label_space

    @property
    def decoder(self) -> Decoder:
        return self.model.decoder

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
        return eval_cache_of(self.dir, self.ckpt_path)

    def cache_identity(self, precision: str | None) -> dict[str, Any]:
        return {"ckpt": file_identity(self.ckpt_path), "precision": self.precision(precision)}

    def token_ids(self, texts: Sequence[str], token_cache_dir: str | None = None) -> TokenIds:
        """``texts`` cut and tokenized as the run was trained; through this machine's token cache when given
        (keyed by the texts themselves, so any set of rows is safe to cache)."""
        if not token_cache_dir:
            return tokenize(self.tokenizer, texts, self.max_length, self.truncation)
        return cached_tokenize(texts, "texts", self.tokenizer, self.max_length, token_cache_dir, self.truncation)

    def probabilities(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                      progress: bool = False, token_cache_dir: str | None = None) -> np.ndarray:
        """``[len(texts), genres]`` probabilities, in ``precision`` (None: the run's training precision)."""
        return self.probabilities_of(self.token_ids(texts, token_cache_dir), batch_size, precision, progress)

    def probabilities_and_cuts(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``probabilities``, and which texts are longer than ``max_length`` (the model sees only part of them):
        the texts are tokenized once for both."""
        ids, cut = tokenize_flagging_truncation(self.tokenizer, texts, self.max_length, self.truncation)
        return self.probabilities_of(ids, batch_size, precision, progress), cut

    def probabilities_of(self, ids: TokenIds, batch_size: int = 64, precision: str | None = None,
                         progress: bool = False) -> np.ndarray:
        """The model's probabilities of already tokenized texts (``token_ids``)."""
        return predict_probs(self.model, ids, make_collator(self.tokenizer), batch_size,
                             precision=self.precision(precision), progress=progress)

    @property
    def cut_note(self) -> str:
        return (f"longer than max_length={self.max_length} tokens, truncated (the model sees only "
                f"{kept_tokens(self.truncation, self.max_length)})")


class SavedRule:
    """Label space and decision rule of a run whose settings are a plain dict (``saved``): baselines, ensembles."""

    saved: dict[str, Any]

    @property
    def label_space(self) -> LabelSpace:
        space = self.saved["label_space"]
        return LabelSpace(tuple(space["names"]), bool(space["multi_label"]))

    @property
    def decoder(self) -> Decoder:
        return Decoder(**self.saved["decoder"])


@dataclass
class BaselineRun(SavedRule):
    """A TF-IDF baseline run (``genre-lab train model=tfidf_lr``): the fitted pipeline and, saved with it, the
    decision rule, the data settings and the label space."""

    model_file: Path
    dir: Path | None

    @cached_property
    def model(self) -> TfidfLogReg:
        return TfidfLogReg.load(self.model_file)

    @property
    def saved(self) -> dict[str, Any]:
        if not self.model.run.get("label_space"):
            raise GenreLabError(f"{self.model_file} holds no run settings (label space, decision rule): it was not "
                                "written by genre-lab train model=tfidf_lr")
        return self.model.run

    @property
    def data_hparams(self) -> dict[str, Any]:
        return dict(self.saved.get("data", {}))

    @property
    def spec(self) -> TableSpec:
        return TableSpec.from_settings(self.data_hparams)

    @property
    def cache_dir(self) -> Path:
        return eval_cache_of(self.dir, self.model_file)

    def cache_identity(self, precision: str | None) -> dict[str, Any]:
        return {"model": file_identity(self.model_file)}  # scikit-learn computes in float64 whatever is asked

    def probabilities(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                      progress: bool = False, token_cache_dir: str | None = None) -> np.ndarray:
        """TF-IDF reads whole texts: no batches, precision or token ids to choose."""
        return self.model.predict_proba(texts)

    def probabilities_and_cuts(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """TF-IDF has no input limit: no text is cut."""
        return self.probabilities(texts, batch_size, precision, progress), np.zeros(len(texts), dtype=bool)

    @property
    def cut_note(self) -> str:
        return ""


@dataclass
class EnsembleRun(SavedRule):
    """An ensemble (``genre-lab ensemble``): its members' runs, run one by one and averaged with its weights,
    decided by the rule tuned on the averaged validation probabilities."""

    model_file: Path
    dir: Path | None

    @cached_property
    def saved(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.model_file.read_text())
        except (OSError, ValueError) as err:
            raise GenreLabError(f"{self.model_file}: not a readable genre_lab ensemble ({err})") from None
        missing = [k for k in ENSEMBLE_KEYS if not isinstance(saved, dict) or k not in saved]
        if missing:
            raise GenreLabError(f"{self.model_file}: not a genre_lab ensemble (no {missing}); genre-lab ensemble "
                                "writes it")
        return saved

    @cached_property
    def members(self) -> list[FinishedRun]:
        members = [self._member(path) for path in self.saved["members"]]
        for path, member in zip(self.saved["members"], members, strict=True):
            if member.label_space != self.label_space:
                raise GenreLabError(f"ensemble {self.model_file}: member {path} now has genres "
                                    f"{list(member.label_space.names)}, the ensemble {list(self.label_space.names)}")
        return members

    def _member(self, path: str) -> FinishedRun:
        try:
            return locate(run_dir=path)
        except GenreLabError as err:
            raise GenreLabError(f"ensemble {self.model_file}: member {path}: {err}") from None

    @property
    def weights(self) -> list[float]:
        return [float(w) for w in self.saved["weights"]]

    @property
    def data_hparams(self) -> dict[str, Any]:
        """The first member's: the members were checked to share their validation rows and text template. The
        validation rows of fold runs (a cross-validation's members) differ from fold to fold; the rows they all
        score are the held-out ones, which the same settings without the fold give."""
        return {**self.members[0].data_hparams, "folds": None, "fold": None}

    @property
    def spec(self) -> TableSpec:
        return self.members[0].spec

    @property
    def cache_dir(self) -> Path:
        return eval_cache_of(self.dir, self.model_file)

    def cache_identity(self, precision: str | None) -> dict[str, Any]:
        return {"ensemble": file_identity(self.model_file),
                "members": [member.cache_identity(precision) for member in self.members]}

    def probabilities(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                      progress: bool = False, token_cache_dir: str | None = None) -> np.ndarray:
        """Each member's probabilities (``precision`` None: each transformer member's own), averaged."""
        return average([m.probabilities(texts, batch_size, precision, progress, token_cache_dir)
                        for m in self.members], self.weights)

    def probabilities_and_cuts(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``probabilities``, and the texts cut for any member (each member tokenizes them once)."""
        probs, cuts = zip(*(m.probabilities_and_cuts(texts, batch_size, precision, progress) for m in self.members),
                          strict=True)
        return average(probs, self.weights), np.logical_or.reduce(cuts)

    @property
    def cut_note(self) -> str:
        notes = [f"{path}: {m.cut_note}" for path, m in zip(self.saved["members"], self.members, strict=True)
                 if m.cut_note]
        return f"cut for a member ({'; '.join(notes)})"


@dataclass
class ExportedRun:
    """An exported ONNX folder (``genre-lab export format=onnx``): its manifest, run by the ONNX runtime. It computes
    as it was exported (fp32, or int8 weights): eval's and predict's ``precision`` does not apply to it."""

    folder: Path
    dir: Path | None = None  # not a run directory: nothing (eval's cache included) is written into the folder

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.read(self.folder)

    @cached_property
    def runtime(self) -> OnnxGenreModel:
        return OnnxGenreModel(self.folder)

    @property
    def model_file(self) -> Path:
        return self.folder / self.manifest.onnx_file

    @property
    def label_space(self) -> LabelSpace:
        return LabelSpace(tuple(self.manifest.genres), bool(self.manifest.multi_label))

    @property
    def decoder(self) -> Decoder:
        return Decoder(**self.manifest.decision_rule)

    @property
    def data_hparams(self) -> dict[str, Any]:
        return {**self.manifest.data, "text_template": self.manifest.text_template,
                "max_length": self.manifest.max_length, "truncation": self.manifest.truncation}

    @property
    def spec(self) -> TableSpec:
        return TableSpec.from_settings(self.data_hparams)

    @property
    def cache_dir(self) -> Path:
        """This machine's cache, by the graph's hash: the exported folder stays as exported (and may be read-only)."""
        return machine_cache() / "eval_cache" / str(self.manifest.model.get("sha256", "unhashed"))[:16]

    def cache_identity(self, precision: str | None) -> dict[str, Any]:
        return {"onnx": file_identity(self.model_file), "sha256": self.manifest.model.get("sha256")}

    def probabilities(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                      progress: bool = False, token_cache_dir: str | None = None) -> np.ndarray:
        """The runtime's probabilities (calibrated, as exported); the texts are tokenized as they run."""
        return self.probabilities_and_cuts(texts, batch_size, precision, progress)[0]

    def probabilities_and_cuts(self, texts: Sequence[str], batch_size: int = 64, precision: str | None = None,
                               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if precision is not None:
            log.warning("precision=%s does not apply to an exported ONNX model, which computes as it was exported "
                        "(%s weights)", precision, self.manifest.model.get("quantization") or "fp32")
        with RowProgress(len(texts), "predicting", enabled=progress) as bar:
            return self.runtime.probabilities_and_cuts(texts, batch_size, on_batch=bar.advance)

    @property
    def cut_note(self) -> str:
        return (f"longer than max_length={self.manifest.max_length} tokens, truncated (the model sees only "
                f"{kept_tokens(self.manifest.truncation, self.manifest.max_length)})")


def locate(run_dir: str | Path | None = None, ckpt_path: str | Path | None = None) -> FinishedRun:
    """The finished run at ``run_dir`` (a run directory) or ``ckpt_path`` (a .ckpt, model.skops or ensemble.json)."""
    if not run_dir and not ckpt_path:
        raise GenreLabError("say which model: run_dir=<a run directory or an exported ONNX folder> or ckpt_path=<a "
                            f".ckpt file, a baseline's model.skops or an {ENSEMBLE_FILE}>")
    if ckpt_path:
        return from_file(Path(ckpt_path))
    root = Path(run_dir)  # type: ignore[arg-type]
    if not root.is_dir():
        raise GenreLabError(f"run_dir={root}: no such directory")
    if (root / ENSEMBLE_FILE).is_file():
        return EnsembleRun(root / ENSEMBLE_FILE, root)
    if (root / MANIFEST).is_file():
        return ExportedRun(root)
    if RunLayout(root).baseline.is_file():
        return BaselineRun(RunLayout(root).baseline, root)
    return Run.in_directory(root)


def from_file(path: Path) -> FinishedRun:
    """``ckpt_path=``: the kind of run by the file; its run directory when it sits in one (with metrics.json)."""
    if not path.is_file():
        raise GenreLabError(f"ckpt_path={path}: no such checkpoint file")
    if path.name == ENSEMBLE_FILE:
        return EnsembleRun(path, path.resolve().parent)
    if path.name == MANIFEST or (path.suffix == ".onnx" and (path.parent / MANIFEST).is_file()):
        return ExportedRun(path.parent)
    root = RunLayout(path.resolve().parent.parent)
    run_dir = root.root if root.metrics.is_file() else None
    return BaselineRun(path, run_dir) if path.suffix == ".skops" else Run(path, run_dir)
