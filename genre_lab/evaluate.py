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
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig

from genre_lab.config_dir import config_dir, config_keys
from genre_lab.data.table import with_policies
from genre_lab.errors import GenreLabError, require_positive, run_app, user_errors
from genre_lab.framework.loggers import instantiate_loggers
from genre_lab.io import atomic_target, write_csv
from genre_lab.runs.finished import FinishedRun, locate
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.scored_rows import ROW_POLICIES, EvalData, labelled_csv, validation_split
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import rule_for_run
from genre_lab.scoring.metrics import Score

log = logging.getLogger(__name__)


def refuse_unknown_keys(cfg: DictConfig) -> None:
    """A key eval does not take (``+data.empty_text=drop``) would be ignored without a word."""
    unknown = sorted(set(cfg) - config_keys("eval"))
    if unknown:
        raise GenreLabError(f"{unknown}: not eval settings. Eval reads the data with the run's own settings; its row "
                            f"policies are top-level: {'=…, '.join(ROW_POLICIES)}=… (`--cfg job` prints its keys)")


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
