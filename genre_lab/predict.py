"""`genre-lab predict run_dir=… input_csv=…` (or ``text="…"`` / ``synopsis=… movie_name=…``).

Writes a CSV with the input id, the predicted genres (``|``-joined), one probability column per genre
and a status. Rows whose first text column (the synopsis) is empty are not guessed at: they keep their
place with status ``empty synopsis`` and are listed by line number.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from genre_lab.config_dir import config_dir
from genre_lab.data.labels import is_missing
from genre_lab.data.table import build_text, delimiter_hint, line_numbers, read_csv
from genre_lab.data.tokens import make_collator, tokenize
from genre_lab.errors import GenreLabError, require_positive, run_app, user_errors
from genre_lab.inference import predict_probs
from genre_lab.io import atomic_write_text
from genre_lab.run import Run

log = logging.getLogger(__name__)
EMPTY = "empty synopsis"


def input_frame(cfg: DictConfig, run: Run) -> tuple[pd.DataFrame, list[str], str]:
    """Rows to predict, their model texts, and a name for messages."""
    spec = run.spec
    if cfg.get("text"):
        return pd.DataFrame({"id": ["text"]}), [str(cfg.text)], "text"
    fields = {c: cfg.get(c) for c in spec.text_columns if cfg.get(c) is not None}
    if fields:
        return pd.DataFrame({"id": ["input"], **{k: [v] for k, v in fields.items()}}), \
            [build_text(fields, spec.text_template)], "command line"
    if not cfg.get("input_csv"):
        raise GenreLabError("nothing to predict: give input_csv=<file.csv>, text=\"…\" or "
                            f"{'=… '.join(spec.text_columns)}=…")
    frame = read_csv(cfg.input_csv, spec.encoding_errors)
    missing = [c for c in spec.text_columns if c not in frame.columns]
    if missing:
        raise GenreLabError(f"{cfg.input_csv}: missing text column(s) {missing} that the model was trained on "
                            f"(template {spec.text_template!r}); found {list(frame.columns)}.{delimiter_hint(frame)}")
    texts = [build_text(row, spec.text_template) for row in frame[spec.text_columns].to_dict("records")]
    return frame, texts, str(cfg.input_csv)


def output_path(cfg: DictConfig) -> Path:
    """``out=`` (a file to write), else ``<output dir>/predictions.csv``."""
    if not cfg.get("out"):
        return Path(cfg.paths.output_dir) / "predictions.csv"
    out = Path(cfg.out)
    if out.is_dir():
        raise GenreLabError(f"out={out} is a directory; give a file name, e.g. out={out / 'predictions.csv'}")
    return out


def predict(cfg: DictConfig) -> pd.DataFrame:
    require_positive(cfg.batch_size, "batch_size")
    run = Run.locate(cfg.get("run_dir"), cfg.get("ckpt_path"))
    decoder = run.model.decoder.with_overrides(**OmegaConf.to_container(cfg.decode))  # bad values fail first
    decoder.for_genres(len(run.model.label_space))
    out = output_path(cfg)
    frame, texts, source = input_frame(cfg, run)
    first = run.spec.text_columns[0]
    empty = frame[first].map(is_missing) if first in frame.columns else \
        pd.Series([not t.strip() for t in texts], index=frame.index)
    if empty.any():
        log.warning("%s: %d row(s) with an empty %s, not predicted (status '%s'): line(s) %s",
                    source, int(empty.sum()), first, EMPTY, line_numbers(empty))
    keep = np.flatnonzero(~empty.to_numpy())
    names = list(run.model.label_space.names)
    probs = np.full((len(frame), len(names)), np.nan, dtype=np.float32)
    if len(keep):
        ids = tokenize(run.tokenizer, [texts[i] for i in keep], run.max_length)
        probs[keep] = predict_probs(run.model, ids, make_collator(run.tokenizer), cfg.batch_size,
                                    precision=run.precision(cfg.precision), progress=True)
    decisions = np.zeros_like(probs, dtype=np.int64)
    if len(keep):
        decisions[keep] = decoder.decide(probs[keep])
    id_col = run.spec.id_column if run.spec.id_column in frame.columns else None
    result = pd.DataFrame({
        "id": frame[id_col].to_numpy() if id_col else frame.index.to_numpy(),
        "genres": ["|".join(g) for g in run.model.label_space.decode(decisions)],
        **{f"prob_{n}": probs[:, i] for i, n in enumerate(names)},
        "status": np.where(empty.to_numpy(), EMPTY, "ok"),
    })
    atomic_write_text(out, result.to_csv(index=False))
    show(result, names)
    log.info("%d predictions written to %s (decision rule %s)", len(result), out, decoder.to_dict())
    return result


def show(result: pd.DataFrame, names: list[str], limit: int = 20) -> None:
    table = Table(title=f"predictions (first {min(limit, len(result))} of {len(result)})", title_justify="left")
    for column in ("id", "genres", "top probabilities", "status"):
        table.add_column(column)
    for _, row in result.head(limit).iterrows():
        probs = sorted(((row[f"prob_{n}"], n) for n in names), reverse=True)[:3]
        top = ", ".join(f"{n} {p:.2f}" for p, n in probs if p == p)
        table.add_row(str(row["id"]), row["genres"], top, row["status"])
    Console(width=120).print(table)


@hydra.main(config_path=str(config_dir()), config_name="predict", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> Any:
    predict(cfg)


if __name__ == "__main__":
    run_app(main)
