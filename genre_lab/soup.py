"""`genre-lab soup runs=[A,B,…] [greedy=true]`: one model whose weights are the average of fine-tuned runs'
(a model soup, Wortsman et al. 2022).

The ingredients are transformer runs (run directories, or checkpoint files such as an epoch's ``last.ckpt``)
fine-tuned from the same pretrained backbone with the same genres, head and data: seeds, sweep trials, epochs.
Anything else is refused — weights of other backbones or heads do not line up, and other validation rows could
be another ingredient's training rows. The uniform soup averages all of them; ``greedy=true`` ranks them by
their own validation figure and adds each in turn only when the soup's figure improves. Each candidate is
scored on the first ingredient's validation split, thresholds tuned as training tunes them. The soup is a
run directory like any transformer run's (``checkpoints/best.ckpt``, ``tokenizer/``, metrics.json,
val_probs.npz): eval, predict, export and serve take it, at one model's inference cost. Any temperature
calibration of the ingredients does not carry over (their logits are averaged away): the soup has none.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from genre_lab.config_dir import config_dir
from genre_lab.errors import GenreLabError, require_positive, run_app, user_errors
from genre_lab.framework.loggers import instantiate_loggers, log_config
from genre_lab.io import atomic_target
from genre_lab.model.module import head_of
from genre_lab.runs.finished import Run, locate
from genre_lab.runs.guard import refuse_record
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.results import Report, build_tuner, finish
from genre_lab.runs.scored_rows import EvalData, validation_split
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.metrics import Score, score
from genre_lab.scoring.seed_groups import config_id

log = logging.getLogger(__name__)
# the data settings that decide a run's validation rows and its model input: equal for every ingredient
ROW_KEYS = ("train_csv", "val_csv", "val_size", "split", "seed", "sample", "folds", "fold", "label_column",
            "label_sep", "multi_label", "id_column", "text_template", "max_length", "truncation")
# what a soup's best.ckpt keeps of its first ingredient's checkpoint (no optimizer state, no raw EMA weights)
KEPT = ("pytorch-lightning_version", "hyper_parameters", "hparams_name", "datamodule_hyper_parameters",
        "datamodule_hparams_name", "label_space", "precision")


@dataclass
class Ingredient:
    given: str  # as listed in runs=
    run: Run
    figure: float = float("nan")  # its own figure on the soup's validation rows

    @property
    def state(self) -> dict[str, torch.Tensor]:
        return self.run.checkpoint["state_dict"]


def load_ingredient(entry: Any) -> Ingredient:
    path = Path(str(entry))
    if not path.exists():
        raise GenreLabError(f"runs: {path} does not exist; give run directories or checkpoint files (.ckpt)")
    run = locate(run_dir=path) if path.is_dir() else locate(ckpt_path=path)
    if not isinstance(run, Run):
        raise GenreLabError(f"runs: {path} is not a transformer run ({Path(run.model_file).name}); a soup averages "
                            "the weights of fine-tuned transformer runs (an ensemble averages any runs' "
                            "probabilities: genre-lab ensemble)")
    if run.checkpoint.get("hyper_parameters", {}).get("peft"):
        raise GenreLabError(f"runs: {path} trained LoRA adapters (peft=lora), whose low-rank factors do not average "
                            "into the average of their updates; export the runs (export merges the adapters) or "
                            "average their probabilities with genre-lab ensemble")
    return Ingredient(str(entry), run)


def ingredients(runs: Any) -> list[Ingredient]:
    listed = OmegaConf.to_container(runs) if isinstance(runs, ListConfig) else runs
    if not isinstance(listed, list) or len(listed) < 2:
        raise GenreLabError(f"runs={listed!r}: a soup averages two or more fine-tuned runs (or checkpoint files), "
                            "e.g. runs=[outputs/seed1,outputs/seed2]")
    found = [load_ingredient(entry) for entry in listed]
    for other in found[1:]:
        refuse_unlike(found[0], other)
    return found


def differences(a: Run, b: Run) -> list[str]:
    """What keeps two runs' weights from being averaged into one model scored on ``a``'s validation rows."""
    ha, hb = a.checkpoint["hyper_parameters"], b.checkpoint["hyper_parameters"]
    head_a, head_b = head_of(ha), head_of(hb)
    found = [f"{what} ({x!r} vs {y!r})" for what, x, y in (
        ("backbone", ha["backbone"], hb["backbone"]),
        ("genres", genres(a), genres(b)),
        *((f"head (model.{key})", head_a[key], head_b[key]) for key in head_a)) if x != y]
    da, db = a.data_hparams, b.data_hparams
    found += [f"data.{key} ({da.get(key)!r} vs {db.get(key)!r})" for key in ROW_KEYS if da.get(key) != db.get(key)]
    sa, sb = a.checkpoint["state_dict"], b.checkpoint["state_dict"]  # the architecture: layers and their sizes
    if not found and {k: v.shape for k, v in sa.items()} != {k: v.shape for k, v in sb.items()}:
        found.append("weights (their parameter names or shapes)")
    return found


def genres(run: Run) -> list[str]:
    """From the checkpoint itself: a checkpoint of another architecture cannot even build the model."""
    return list(run.checkpoint.get("label_space", {}).get("names", []))


def refuse_unlike(first: Ingredient, other: Ingredient) -> None:
    found = differences(first.run, other.run)
    if found:
        raise GenreLabError(f"cannot make a soup of {first.given} and {other.given}: their {'; '.join(found[:3])} "
                            "differ. A soup averages runs fine-tuned from the same pretrained backbone, with the same "
                            "genres, head and data (seeds, sweep trials, epochs' checkpoints); to combine other runs, "
                            "average their probabilities with genre-lab ensemble")


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point tensors (in float32, then their own dtype); other tensors (integer
    buffers) must be equal and are kept."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            total = torch.stack([s[key].float() for s in states]).sum(0)
            out[key] = (total / len(states)).to(first.dtype)
        else:
            out[key] = first.clone()
    return out


class SoupScorer:
    """Scores weights on the first ingredient's validation rows (tokenized once) with tuned thresholds."""

    def __init__(self, cfg: DictConfig, base: Run) -> None:
        self.run, self.cfg = base, cfg
        self.rows: EvalData = validation_split(base, base.spec, cfg.token_cache_dir)
        self.ids = base.token_ids(self.rows.texts, cfg.token_cache_dir)
        self.decoder = hydra.utils.instantiate(cfg.decode).for_genres(len(base.label_space), "the runs")
        self.tuner = build_tuner(cfg)
        base.model.calibration = None  # the soup's probabilities are its own logits'

    def probs(self, state: dict[str, torch.Tensor]) -> np.ndarray:
        self.run.model.load_state_dict(state)
        return self.run.probabilities_of(self.ids, self.cfg.batch_size, self.cfg.precision)

    def figure(self, probs: np.ndarray) -> float:
        names = self.run.label_space.names
        metrics = score(probs, self.rows.targets, self.decoder, names, "val", self.tuner).metrics
        name = self.cfg.optimized_metric
        if name not in metrics:
            known = ", ".join(sorted(k for k in metrics if k.startswith("val/"))[:6])
            raise GenreLabError(f"optimized_metric={name}: not a figure of the validation rows (e.g. {known})")
        return float(metrics[name])


def greedy_soup(found: list[Ingredient], scorer: SoupScorer
                ) -> tuple[list[Ingredient], list[dict[str, Any]], np.ndarray]:
    """Ingredients best first; each joins only when the soup's figure improves. Returns the soup, its trail and
    its probabilities (already computed for the last kept step: not run again)."""
    own = [scorer.probs(ingredient.state) for ingredient in found]
    for ingredient, probs in zip(found, own, strict=True):
        ingredient.figure = scorer.figure(probs)
        log.info("soup ingredient %s: %s %.4f", ingredient.given, scorer.cfg.optimized_metric, ingredient.figure)
    ranked = sorted(zip(found, own, strict=True), key=lambda pair: -pair[0].figure)
    first, best_probs = ranked[0]
    soup, best = [first], first.figure
    trail = [{"run": first.given, "own": first.figure, "soup": best, "kept": True}]
    for candidate, _ in ranked[1:]:
        probs = scorer.probs(average_states([i.state for i in [*soup, candidate]]))
        value = scorer.figure(probs)
        kept = value > best
        trail.append({"run": candidate.given, "own": candidate.figure, "soup": value, "kept": kept})
        log.info("greedy soup: %s %s (%s %.4f vs %.4f)", "adds" if kept else "leaves out", candidate.given,
                 scorer.cfg.optimized_metric, value, best)
        if kept:
            soup, best, best_probs = [*soup, candidate], value, probs
    return soup, trail, best_probs


def soup(cfg: DictConfig) -> dict[str, Any]:
    """Average the runs' weights (all, or greedily), tune thresholds, write the soup's run directory."""
    require_positive(cfg.batch_size, "batch_size")
    out = Path(cfg.paths.output_dir)
    refuse_record(out, "soup")  # again: a caller without the CLI has not been checked
    found = ingredients(cfg.runs)
    scorer = SoupScorer(cfg, found[0].run)
    chosen, trail, probs = greedy_soup(found, scorer) if cfg.greedy else (found, [], None)
    state = average_states([i.state for i in chosen])
    if probs is None:
        probs = scorer.probs(state)
    facts = {"model": "soup", "soup": "greedy" if cfg.greedy else "uniform", "members": [i.given for i in chosen],
             "candidates": [i.given for i in found], "greedy_trail": trail, "rows": len(probs),
             "best_checkpoint": str(RunLayout(out).best), "config_id": config_id(OmegaConf.to_container(cfg))}
    return write_soup(cfg, out, found[0].run, state, probs, scorer, facts)


def write_soup(cfg: DictConfig, out: Path, base: Run, state: dict[str, torch.Tensor], probs: np.ndarray,
               scorer: SoupScorer, facts: dict[str, Any]) -> dict[str, Any]:
    layout = RunLayout(out)
    space = base.label_space

    def keep(scored: Score) -> None:  # best.ckpt: the averaged weights and the tuned rule, as training leaves it
        checkpoint = {k: base.checkpoint[k] for k in KEPT if k in base.checkpoint}
        checkpoint.update(state_dict=state, decoder=scored.decoder.to_dict(),
                          soup={"members": facts["members"], "kind": facts["soup"]})
        layout.checkpoints.mkdir(parents=True, exist_ok=True)
        with atomic_target(layout.best) as tmp:
            torch.save(checkpoint, tmp)
        save_tokenizer(base, layout.tokenizer)

    loggers = instantiate_loggers(cfg.get("logger"))
    log_config(loggers, cfg, facts["config_id"])
    title = f"validation ({facts['soup']} soup of {len(facts['members'])} of {len(facts['candidates'])} runs)"
    report = Report(out, "val", title, loggers, log_prefix="final/", plots=cfg.plots, finish_loggers=True)
    rows = StoredProbs(np.asarray(scorer.rows.movie_ids), probs, scorer.rows.targets, space.names)
    metrics, _ = finish(rows, space, scorer.decoder, scorer.tuner, report, facts, keep=keep)
    log.info("soup of %s; results in %s (eval/predict/export/serve: run_dir=%s)", facts["members"], out, out)
    return metrics


def save_tokenizer(run: Run, folder: Path) -> None:
    """The first ingredient's tokenizer folder (every ingredient shares its backbone's)."""
    source = Path(run.tokenizer_source)
    if source.is_dir():
        shutil.copytree(source, folder, dirs_exist_ok=True)
    else:
        run.tokenizer.save_pretrained(folder)


@hydra.main(config_path=str(config_dir()), config_name="soup", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> float | None:
    return soup(cfg).get(cfg.optimized_metric)


if __name__ == "__main__":
    run_app(main)
