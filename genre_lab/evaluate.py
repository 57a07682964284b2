"""`genre-lab eval run_dir=… | ckpt_path=…`: score a trained model on its validation split or a labelled CSV.

Any finished run: a transformer's checkpoint, the TF-IDF baseline's model.skops, an ensemble's ensemble.json
(its members run and averaged). Probabilities are cached per (model file, data, precision) in the run's
``eval_cache/``, so a threshold sweep (``genre-lab eval -m run_dir=… decode.threshold=0.2,0.3,0.4``) runs the
model once.
Writes ``metrics.json``, ``per_class.csv``, ``decisions.csv`` (per row: true and predicted genres) and
PNG plots into the eval's output directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from genre_lab.config_dir import config_dir, config_keys
from genre_lab.data.datamodule import data_defaults
from genre_lab.data.movie_data import MovieData
from genre_lab.data.table import TableSpec, read_table, with_policies
from genre_lab.errors import GenreLabError, require_positive, run_app, user_errors
from genre_lab.framework.loggers import instantiate_loggers
from genre_lab.io import atomic_target, file_digest, write_csv
from genre_lab.runs.finished import FinishedRun, locate
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import rule_for_run
from genre_lab.scoring.metrics import Score

log = logging.getLogger(__name__)


@dataclass
class EvalData:
    """Rows to score: movie ids, model texts, multi-hot targets, and what identifies them for the cache."""

    name: str
    movie_ids: list[str]
    texts: list[str]
    targets: np.ndarray
    identity: dict[str, Any]
    token_cache_dir: str | None = None  # where a transformer caches these rows' token ids (the validation split)


ROW_POLICIES = ("empty_text", "encoding_errors")  # eval.yaml's keys for the rows it reads (README, Errors)


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """A key eval does not take (``+data.empty_text=drop``) would be ignored without a word."""
    unknown = sorted(set(cfg) - config_keys("eval"))
    if unknown:
        raise GenreLabError(f"{unknown}: not eval settings. Eval reads the data with the run's own settings; its row "
                            f"policies are top-level: {'=…, '.join(ROW_POLICIES)}=… (`--cfg job` prints its keys)")


def validation_split(run: FinishedRun, spec: TableSpec, token_cache_dir: str | None) -> EvalData:
    """The run's own validation rows, rebuilt from the data settings stored with its model (and ``spec``'s row
    policies).

    Only the rows and texts come from the data (``MovieData``, no tokenizer): each model cuts and tokenizes them
    itself (a transformer as it was trained, into ``token_cache_dir``, this machine's ``paths.cache_dir``, not the
    training machine's).
    """
    if not run.data_hparams:
        raise GenreLabError(f"{run.model_file} stores no data settings; pass input_csv=<a labelled CSV>")
    hp = {**run.data_hparams, **{key: getattr(spec, key) for key in ROW_POLICIES}}
    data = MovieData({**data_defaults(), **hp, "token_cache_dir": None})
    data.spec = spec  # the same settings, with eval's key names in its messages
    if data.label_space != run.label_space:
        raise GenreLabError(f"the training data now has genres {list(data.label_space.names)}, the "
                            f"model {list(run.label_space.names)}: it changed since training")
    texts, targets, movie_ids = data.texts_and_targets("val")
    files = [hp[k] for k in ("train_csv", "val_csv") if hp.get(k)]
    identity = {"split": "val", "data": hp, "files": {f: file_digest(f) for f in files}}
    return EvalData("validation split", movie_ids, texts, targets, identity, token_cache_dir)


def labelled_csv(run: FinishedRun, spec: TableSpec, path: str) -> EvalData:
    """Any CSV with the run's text columns and label column (``spec``: the run's, with eval's row policies)."""
    table = read_table(path, spec, require_labels=True)
    space = run.label_space
    table.labels, unknown = space.conform(table.labels)
    if unknown:
        raise GenreLabError(f"{path}: genre(s) {unknown} are not among the model's genres {list(space.names)}: "
                            f"{run.model_file} was trained on another label space. Evaluate a run trained with "
                            "these genres, or remove those rows.")
    identity = {"csv": str(Path(path).resolve()), "sha256": file_digest(path), "spec": spec.__dict__}
    return EvalData(str(path), table.movie_ids, table.texts, space.encode(table.labels), identity)


def cached_probs(run: FinishedRun, data: EvalData, cfg: DictConfig) -> tuple[np.ndarray, str]:
    """Probabilities from the cache when this model already scored these rows, else computed."""
    key_src = {"model": run.cache_identity(cfg.precision), "data": data.identity}
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True, default=str).encode()).hexdigest()[:20]
    path = run.cache_dir / f"probs-{key}.npy"
    cached = load_cached(path, len(data.targets)) if cfg.cache else None
    if cached is not None:
        return cached, "cache"
    probs = run.probabilities(data.texts, cfg.batch_size, cfg.precision, progress=True,
                              token_cache_dir=data.token_cache_dir)
    if cfg.cache:
        save_cached(path, probs)
    return probs, "computed"


def load_cached(path: Path, rows: int) -> np.ndarray | None:
    """The cached probabilities at ``path``; None (recompute) when absent, unreadable or of another shape."""
    if not path.is_file():
        return None
    try:
        probs = np.load(path)
    except (OSError, ValueError, EOFError) as err:
        log.warning("probability cache %s unreadable (%s); recomputing", path, err)
        return None
    if probs.ndim != 2 or len(probs) != rows:
        log.warning("probability cache %s has shape %s for %d rows; recomputing", path, probs.shape, rows)
        return None
    log.info("probabilities from cache %s", path)
    return probs


def save_cached(path: Path, probs: np.ndarray) -> None:
    """Cache for the next eval; a read-only run directory (or a full disk) only costs the speed-up."""
    try:
        with atomic_target(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, probs)
    except OSError as err:
        log.warning("probability cache not written to %s (%s); eval goes on without it", path.parent, err)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    require_positive(cfg.batch_size, "batch_size")
    refuse_unknown_keys(cfg)
    run = locate(cfg.get("run_dir"), cfg.get("ckpt_path"))
    out = Path(cfg.paths.output_dir)
    space = run.label_space
    # Settings are checked before any work: a bad value must not leave a cache entry in the run directory.
    decoder = rule_for_run(run.decoder, cfg.decode)
    decoder.for_genres(len(space))
    spec = with_policies(run.spec, {**{key: cfg.get(key) for key in ROW_POLICIES}, "format": cfg.get("input_format")})
    data = labelled_csv(run, spec, cfg.input_csv) if cfg.get("input_csv") else \
        validation_split(run, spec, cfg.token_cache_dir)
    probs, source = cached_probs(run, data, cfg)
    facts = {"checkpoint": str(run.model_file), "data": data.name, "rows": len(data.targets), "probabilities": source}

    def keep(scored: Score) -> None:  # per row: the true and the predicted genres
        write_csv(RunLayout(out).decisions, [
            {"id": i, "true": "|".join(t), "predicted": "|".join(p)}
            for i, t, p in zip(data.movie_ids, space.decode(data.targets), space.decode(scored.decisions), strict=True)
        ])

    report = Report(out, "eval", f"eval on {data.name} ({len(data.targets)} rows)",
                    instantiate_loggers(cfg.get("logger")), plots=cfg.plots, keep_probs=False, finish_loggers=True)
    rows = StoredProbs(np.asarray(data.movie_ids), probs, data.targets, space.names)
    metrics, scored = finish(rows, space, decoder, build_tuner(cfg, cfg.tune), report, facts, keep=keep)
    log.info("decision rule %s; results in %s", scored.decoder.to_dict(), out)
    return metrics


@hydra.main(config_path=str(config_dir()), config_name="eval", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    return evaluate(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
