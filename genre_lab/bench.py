"""`genre-lab bench`: the notebook's recipe against genre_lab's default, side by side in one process.

Same CSV, same split (the datamodule's), same backbone. The notebook recipe is the HF ``Trainer`` with
every text padded to 128 tokens, batch 8, fp32; genre_lab's is what ``genre-lab train`` does with the
composed config (dynamic padding, length-grouped batches, the configured precision, fused AdamW).
Each measurement skips warm-up steps, repeats ``bench.repeats`` times and reports the median.
Prints a table and writes ``bench.json`` into the run directory. The machinery is in ``genre_lab.benchmark``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from genre_lab.benchmark.genre_lab_recipe import GenreLabRecipe, tokenization_figures
from genre_lab.benchmark.measuring import Figures, Recipe
from genre_lab.benchmark.notebook_recipe import NotebookRecipe
from genre_lab.benchmark.report import bench_report, print_comparison, setup_facts, title
from genre_lab.config_dir import config_dir
from genre_lab.data.datamodule import GenreDataModule
from genre_lab.errors import GenreLabError, run_app, user_errors
from genre_lab.io import write_json

log = logging.getLogger(__name__)


def require_bench_extra() -> None:
    try:
        # deferred on purpose: the bench extra, named in the error when missing
        import accelerate  # noqa: F401  (the HF Trainer needs it)
        import psutil  # noqa: F401
    except ImportError as err:
        raise GenreLabError(f"genre-lab bench needs {err.name}: pip install 'genre_lab[bench]'") from None


def measure(cfg: DictConfig, recipe: Recipe, eval_rows: int) -> Figures:
    """One recipe's figures: tokenization, training and eval rates with their peak memory, and (with
    ``bench.quality_epochs``) top-1 and micro-F1."""
    settings = cfg.bench
    log.info("%s: timing training (%d samples x %d repeats) and eval (%d rows)",
             recipe.name, settings.train_samples, settings.repeats, eval_rows)
    figures: Figures = {"tokenize_s": recipe.tokenize_s}
    steps = max(1, settings.train_samples // recipe.batch_size)
    figures.update(recipe.train_rates(settings.warmup_steps, steps, settings.repeats))
    figures.update(recipe.eval_rates(eval_rows, settings.repeats))
    if settings.quality_epochs:
        log.info("%s: training %d epoch(s) on the full split for quality", recipe.name, settings.quality_epochs)
        figures.update(recipe.quality(settings.quality_epochs, hydra.utils.instantiate(cfg.decode)))
    recipe.release()
    return figures


def bench(cfg: DictConfig) -> dict[str, Any]:
    """Both recipes measured on the configured data; writes ``bench.json``, prints the table, returns the report."""
    require_bench_extra()
    datamodule: GenreDataModule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    data = datamodule.data
    log.info(data.describe())
    tokens = tokenization_figures(data, cfg.bench.tokenize_rows)
    eval_rows = min(cfg.bench.eval_samples, len(data.splits["val"].rows))
    with tempfile.TemporaryDirectory() as workdir:
        recipes: list[Recipe] = [NotebookRecipe(cfg, data, Path(workdir)), GenreLabRecipe(cfg, datamodule)]
        results = {recipe.name: measure(cfg, recipe, eval_rows) for recipe in recipes}
    setup = setup_facts(cfg, data, tokens)
    report = bench_report(results, setup)
    out = Path(cfg.paths.output_dir) / "bench.json"
    write_json(out, report)
    print_comparison(results, title(setup))
    log.info("genre_lab tokenized %d rows in %.2f s (mean %.1f tokens); the training file's ids load from "
             "the cache in %.3f s; figures in %s", tokens["tokenize_rows"], tokens["tokenize_rows_s"],
             tokens["mean_tokens"], tokens["token_cache_load_s"], out)
    return report


@hydra.main(config_path=str(config_dir()), config_name="bench", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    bench(cfg)


if __name__ == "__main__":
    run_app(main)
