"""`genre-lab ensemble runs=[A,B,…] [weights=[…] | weights=tune]`: a weighted average of finished runs.

The members are any finished runs (transformer, TF-IDF baseline, ensemble) scored on the same validation rows with
the same genres and text template; anything else is refused. Their stored validation probabilities
(``val_probs.npz``) are averaged with the weights (equal by default; given weights are normalised to sum 1;
``weights=tune`` picks them on the validation rows), and thresholds are tuned on the average as training tunes
them. The ensemble writes a run directory like any run (metrics.json, per_class.csv, val_probs.npz, plots) and
``ensemble.json``, with which `genre-lab eval` and `predict` run each member and average the same way
(genre_lab.runs.finished.EnsembleRun).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from genre_lab.config_dir import config_dir
from genre_lab.data.labels import LabelSpace
from genre_lab.errors import GenreLabError, is_number, require_number, run_app, user_errors
from genre_lab.framework.loggers import instantiate_loggers, log_config
from genre_lab.io import write_json
from genre_lab.runs.finished import (
    ENSEMBLE_FILE,
    ExportedRun,
    FinishedRun,
    average,
    average_stored,
    ensemble_definition,
    locate,
)
from genre_lab.runs.guard import refuse_record
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import Score
from genre_lab.scoring.seed_groups import config_id
from genre_lab.scoring.thresholds import rule_score, threshold_curves

log = logging.getLogger(__name__)
GRID_MEMBERS = 3  # weights=tune tries every grid point up to this many members, a coordinate search beyond
OPTIMISM = ("chosen on the validation rows the ensemble is scored on, so its val/ figures are optimistic (as for "
            "tuned thresholds); for an unbiased figure run genre-lab eval run_dir=<the ensemble> input_csv=<held-out "
            "labelled rows>")


@dataclass
class Member:
    path: Path  # absolute
    run: FinishedRun
    stored: StoredProbs
    figures: dict[str, Any]  # its metrics.json


@dataclass
class Weights:
    values: np.ndarray | None  # None: to be tuned
    source: str  # equal | given | tuned
    note: dict[str, Any]  # what metrics.json says about how they were chosen


def member_paths(runs: Any) -> list[Path]:
    if not isinstance(runs, (list, ListConfig)) or len(runs) < 2:
        raise GenreLabError(f"runs={OmegaConf.to_container(runs) if isinstance(runs, ListConfig) else runs!r}: an "
                            "ensemble needs two or more finished run directories, e.g. runs=[outputs/a,outputs/b]")
    paths = [Path(str(run)).resolve() for run in runs]  # resolved: A, ./A/ and a link to A are one run
    refuse_repeats(paths)
    return paths


def refuse_repeats(paths: list[Path]) -> None:
    """A run listed twice is refused, not warned about: it only multiplies that run's weight, which weights= says
    openly (and weights=tune would split one run's share between identical copies); one way to weigh a member."""
    unique = list(dict.fromkeys(paths))
    if len(unique) == len(paths):
        return
    counts = [paths.count(path) for path in unique]
    repeated = ", ".join(f"{path} ({n} times)" for path, n in zip(unique, counts, strict=True) if n > 1)
    fix = (f"list each run once, with weights=[{','.join(map(str, counts))}] for this average" if len(unique) > 1
           else "an ensemble needs two or more different runs")
    raise GenreLabError(f"runs lists {repeated}: a repeated run only multiplies its weight; {fix}")


def parse_weights(weights: Any, count: int) -> Weights:
    """``weights=``: null (equal), ``tune``, or one number ≥ 0 per member, not all 0 (normalised to sum 1)."""
    if weights is None:
        return Weights(np.full(count, 1.0 / count), "equal", {})
    if weights == "tune":
        return Weights(None, "tuned", {})
    given = OmegaConf.to_container(weights) if isinstance(weights, ListConfig) else weights
    if not isinstance(given, list) or len(given) != count:
        example = ",".join(["1"] * count)
        raise GenreLabError(f"weights={given!r}: give one weight per run ({count}), e.g. weights=[{example}], or "
                            "weights=tune, or leave it out for equal weights")
    if not all(is_number(w) and 0 <= w < float("inf") for w in given) or sum(given) <= 0:
        raise GenreLabError(f"weights={given}: each weight must be a number ≥ 0, and not all of them 0")
    total = float(sum(given))
    values = np.asarray(given, dtype=np.float64) / total
    if abs(total - 1.0) < 1e-9:
        return Weights(values, "given", {})
    log.warning("weights=%s sum to %g, not 1: normalised to %s", given, total, [round(float(v), 6) for v in values])
    return Weights(values, "given", {"weights_given": given, "weights_normalised": True})


def grid_steps(step: Any) -> int:
    """``weight_step`` as the number of steps from 0 to 1 (it must divide 1: the grid's weights sum to 1)."""
    value = require_number(step, "weight_step", lambda v: 0 < v <= 0.5, "in (0, 0.5] that divides 1", "0.05")
    steps = round(1 / value)
    if abs(steps * value - 1) > 1e-9:
        raise GenreLabError(f"weight_step={step} does not divide 1 (the weights must sum to 1); e.g. 0.05, 0.1, 0.25")
    return steps


def load_member(path: Path) -> Member:
    if not path.is_dir():
        raise GenreLabError(f"runs: {path} is not a directory; give finished run directories")
    layout = RunLayout(path)
    run = locate(run_dir=path)  # eval and predict of the ensemble will need the member's model
    if isinstance(run, ExportedRun):
        source = run.manifest.model.get("source_checkpoint")
        raise GenreLabError(f"runs: {path} is an exported ONNX folder, which keeps no validation probabilities to "
                            f"average; give the run directory it was exported from (the one holding {source})")
    figures = layout.read_metrics()
    return Member(path, run, StoredProbs.load(layout.val_probs), figures)


def aligned_members(members: Sequence[Member]) -> list[StoredProbs]:
    """Every member's validation rows in the first member's row order; refused when genres, rows or the text
    template differ (an average is taken genre by genre, row by row, of the same model input)."""
    first = members[0]
    aligned = [first.stored]
    for member in members[1:]:
        names = (str(first.path), str(member.path))
        if member.stored.labels != first.stored.labels:
            raise GenreLabError(f"cannot ensemble {names[0]} and {names[1]}: their genres differ "
                                f"({list(first.stored.labels)} vs {list(member.stored.labels)}); an ensemble "
                                "averages probabilities genre by genre, so its runs need the same genres, in order")
        try:
            aligned.append(member.stored.aligned_to(first.stored, names))
        except GenreLabError as err:
            raise GenreLabError(f"cannot ensemble: {err}") from None
        for what, ours, theirs in (("text template (data.text_template)", first.run.spec.text_template,
                                    member.run.spec.text_template),
                                   ("data.multi_label", first.run.spec.multi_label, member.run.spec.multi_label)):
            if ours != theirs:
                raise GenreLabError(f"cannot ensemble {names[0]} and {names[1]}: their {what} differs ({ours!r} vs "
                                    f"{theirs!r}); eval and predict give every member the same input")
    return aligned


def weight_score(probs: np.ndarray, targets: np.ndarray, decoder: Decoder, tuner: Any) -> float:
    """What ``weights=tune`` maximises: ``tuning.metric`` at the best global threshold (the tuner's first step,
    fast enough for a grid); for a top_k rule, or with ``~tuning`` (micro-F1), the figure of the rule itself."""
    if tuner is not None and decoder.top_k is None:
        return float(threshold_curves(probs, targets, tuner.grid)[tuner.metric].max())
    return rule_score(probs, targets, decoder, tuner.metric if tuner is not None else "f1_micro")


def simplex_grid(count: int, steps: int) -> np.ndarray:
    """Every weight vector of multiples of ``1/steps`` summing to 1, closest to equal weights first (ties go to
    the most even weights)."""
    points = np.array([c for c in itertools.product(range(steps + 1), repeat=count) if sum(c) == steps]) / steps
    return points[np.argsort(np.abs(points - 1.0 / count).sum(axis=1), kind="stable")]


def with_share(weights: np.ndarray, i: int, share: float) -> np.ndarray:
    """``weights`` with member ``i`` at ``share`` and the others scaled to fill the rest."""
    rest = np.delete(weights, i)
    rest = rest / rest.sum() * (1 - share) if rest.sum() > 0 else np.full(len(rest), (1 - share) / len(rest))
    return np.insert(rest, i, share)


def coordinate_search(objective: Callable[[np.ndarray], float], count: int, steps: int,
                      passes: int = 3) -> tuple[np.ndarray, int]:
    """From equal weights, each member's share in turn over the grid, the others in proportion; until no move
    helps (at most ``passes`` rounds). Returns the weights and the candidates tried."""
    weights, tried = np.full(count, 1.0 / count), 1
    best = objective(weights)
    for _ in range(passes):
        moved = False
        for i, k in itertools.product(range(count), range(steps + 1)):
            candidate, tried = with_share(weights, i, k / steps), tried + 1
            value = objective(candidate)
            if value > best + 1e-12:
                weights, best, moved = candidate, value, True
        if not moved:
            break
    return weights, tried


def tune_weights(stored: Sequence[StoredProbs], decoder: Decoder, tuner: Any, steps: int) -> Weights:
    targets = stored[0].targets
    objective = lambda w: weight_score(average([s.probs for s in stored], w), targets, decoder, tuner)  # noqa: E731
    count = len(stored)
    if count <= GRID_MEMBERS:
        grid = simplex_grid(count, steps)
        scores = [round(objective(w), 9) for w in grid]
        weights, method, tried = grid[int(np.argmax(scores))], "grid", len(grid)  # argmax: the first best
    else:
        weights, tried = coordinate_search(objective, count, steps)
        method = "coordinate search"
    metric = "f1_micro" if tuner is None else tuner.metric
    said = f"{metric} at the best global threshold" if tuner is not None and decoder.top_k is None else \
        f"{metric} of the rule {decoder.to_dict()}"
    log.warning("weights=tune chose %s (%s over %d candidates, step %g, maximising %s); %s",
                [round(float(w), 6) for w in weights], method, tried, 1 / steps, said, OPTIMISM)
    return Weights(weights, "tuned", {"weights_tuning": {"method": method, "step": 1 / steps, "candidates": tried,
                                                          "objective": said, "score": objective(weights),
                                                          "caveat": OPTIMISM}})


def base_decoder(cfg: DictConfig, genres: int) -> Decoder:
    if "_target_" not in cfg.decode:
        raise GenreLabError("decode=checkpoint keeps a trained run's rule, for eval and predict; an ensemble tunes "
                            "its own from decode=threshold (the default), top_k or at_least_one")
    return hydra.utils.instantiate(cfg.decode).for_genres(genres, "the runs")


def ensemble(cfg: DictConfig) -> dict[str, Any]:
    """Average the runs, tune thresholds, write the ensemble's run directory; returns its metrics."""
    paths = member_paths(cfg.runs)
    weights = parse_weights(cfg.weights, len(paths))
    steps = grid_steps(cfg.weight_step) if weights.values is None else 0
    tuner = build_tuner(cfg)
    out = Path(cfg.paths.output_dir)
    refuse_record(out, "ensemble")  # again: a caller without the CLI has not been checked
    members = [load_member(path) for path in paths]
    stored = aligned_members(members)
    space = LabelSpace(stored[0].labels, bool(members[0].run.spec.multi_label))
    decoder = base_decoder(cfg, len(space))
    if weights.values is None:
        weights = tune_weights(stored, decoder, tuner, steps)
    first = stored[0]
    rows = StoredProbs(first.movie_ids, average([s.probs for s in stored], weights.values), first.targets, space.names)
    oof = averaged_oof(members, weights.values)
    if oof is not None:
        oof.save(RunLayout(out).oof_probs)
    return write_ensemble(cfg, out, members, weights, space, rows, decoder, tuner)


def averaged_oof(members: Sequence[Member], weights: np.ndarray) -> StoredProbs | None:
    """The members' out-of-fold probabilities (cross-validation runs) averaged with the ensemble's weights, so that
    the ensemble can teach a student (data/teacher=run); None unless every member has them, on the same rows."""
    layouts = [RunLayout(m.path) for m in members]
    if not all(layout.oof_probs.is_file() for layout in layouts):
        return None
    try:
        return average_stored([StoredProbs.load(layout.oof_probs) for layout in layouts], weights,
                              [str(m.path) for m in members])
    except GenreLabError as err:
        log.warning("no oof_probs.npz for the ensemble (it cannot teach): %s", err)
        return None


def write_ensemble(cfg: DictConfig, out: Path, members: Sequence[Member], weights: Weights, space: LabelSpace,
                   rows: StoredProbs, decoder: Decoder, tuner: Any) -> dict[str, Any]:
    definition = out / ENSEMBLE_FILE
    paths = [str(m.path) for m in members]
    config = {**OmegaConf.to_container(cfg, resolve=False), "runs": paths}  # type: ignore[dict-item]
    facts = {"members": paths, "weights": [float(w) for w in weights.values], "weights_source": weights.source,
             **weights.note, "model": "ensemble", "rows": len(rows.targets),
             "member_figures": {str(m.path): m.figures.get(cfg.optimized_metric) for m in members},
             "best_checkpoint": str(definition), "config_id": config_id(config)}

    def keep(scored: Score) -> None:  # eval and predict run the members and decide with the tuned rule
        write_json(definition, ensemble_definition(paths, facts["weights"], weights.source, scored.decoder, space,
                                                   members[0].run.spec.text_template))

    loggers = instantiate_loggers(cfg.get("logger"))
    log_config(loggers, cfg, facts["config_id"])
    title = f"validation (ensemble of {len(members)} runs, weights {[round(w, 3) for w in facts['weights']]})"
    report = Report(out, "val", title, loggers, log_prefix="final/", plots=cfg.plots, finish_loggers=True)
    metrics, _ = finish(rows, space, decoder, tuner, report, facts, keep=keep)
    log.info("ensemble of %s with weights %s; results in %s (eval/predict: run_dir=%s)", paths, metrics["weights"],
             out, out)
    return metrics


@hydra.main(config_path=str(config_dir()), config_name="ensemble", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    return ensemble(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
