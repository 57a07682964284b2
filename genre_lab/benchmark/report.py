"""Bench's report: ``bench.json`` (each recipe's figures, genre_lab / notebook ratios, the setup) and the table
printed side by side."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig

from genre_lab.benchmark.measuring import Figures
from genre_lab.data.movie_data import MovieData
from genre_lab.scoring.report import print_table

RECIPES = ("notebook", "genre_lab")  # bench.json's keys of each recipe's figures
ROWS = [  # (label, key, higher is better): the ratio column is always genre_lab / notebook
    ("training samples/s", "train_samples_per_s", True),
    ("training real tokens/s", "train_tokens_per_s", True),
    ("eval samples/s", "eval_samples_per_s", True),
    ("eval real tokens/s", "eval_tokens_per_s", True),
    ("training peak RSS MiB (lower is better)", "train_peak_rss_mib", False),
    ("training peak GPU MiB (lower is better)", "train_peak_gpu_mib", False),
    ("eval peak RSS MiB (lower is better)", "eval_peak_rss_mib", False),
    ("eval peak GPU MiB (lower is better)", "eval_peak_gpu_mib", False),
    ("tokenization s, training file (lower is better)", "tokenize_s", False),
    ("top-1 accuracy", "top1_accuracy", True),
    ("micro-F1 (decode=, default threshold 0.5)", "f1_micro", True),
]
COLUMNS = ["measure", "notebook recipe", "genre_lab", "genre_lab / notebook"]


def setup_facts(cfg: DictConfig, data: MovieData, tokens: Figures) -> dict[str, Any]:
    """What the figures were measured on: device, threads, precision, backbone, data, the bench settings."""
    return {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch_threads": torch.get_num_threads(), "precision": str(cfg.trainer.precision),
            "backbone": cfg.model.backbone, "data": data.describe(), "tokens": tokens,
            "notebook": dict(cfg.notebook), "bench": dict(cfg.bench)}


def ratios(results: dict[str, Figures]) -> Figures:
    """genre_lab / notebook of every figure both recipes have (and neither is 0)."""
    notebook, ours = results["notebook"], results["genre_lab"]
    return {key: ours[key] / value for key, value in notebook.items() if ours.get(key) and value}


def bench_report(results: dict[str, Figures], setup: dict[str, Any]) -> dict[str, Any]:
    """``bench.json``: ``notebook`` and ``genre_lab`` (their figures), ``ratio`` and ``setup``."""
    return {**results, "ratio": ratios(results), "setup": setup}


def title(setup: dict[str, Any]) -> str:
    return f"{setup['backbone']} on {setup['device']} ({setup['precision']}); {setup['data']}"


def comparison_rows(results: dict[str, Figures]) -> list[dict[str, str]]:
    """One row per figure of ``ROWS`` that both recipes have, in ``ROWS``' order."""
    notebook, ours = results["notebook"], results["genre_lab"]
    return [{"measure": label, "notebook recipe": f"{notebook[key]:.4g}", "genre_lab": f"{ours[key]:.4g}",
             "genre_lab / notebook": f"{ours[key] / notebook[key]:.2f}x" if notebook[key] else ""}
            for label, key, _ in ROWS if key in notebook and key in ours]


def print_comparison(results: dict[str, Figures], heading: str) -> None:
    print_table(comparison_rows(results), COLUMNS, heading)
