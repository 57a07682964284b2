"""`genre-lab predict run_dir=… input_csv=…` (or ``text="…"`` / ``synopsis=… movie_name=…``).

Reads any input format of data/formats.py. Writes (CSV, TSV, JSONL or Parquet, by the extension of ``out=``) the
input id, the predicted genres (``|``-joined), one probability column per genre and a status, from any finished
run (transformer, TF-IDF baseline, ensemble). A transformer's texts are cut as the run was trained (its
``max_length`` and ``data.truncation``). Rows whose first template column (the synopsis by default) is empty are
not guessed at: they keep their place with status ``empty <column>`` (``empty_text=keep``) or are left out
(``empty_text=drop``), and are listed by line number. Duplicate ids, texts cut at ``max_length`` and an input
without rows are warned about; the output never replaces the input or, unless ``overwrite=true``, an existing file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from genre_lab.config_dir import config_dir, config_keys
from genre_lab.data.files import delimiter_hint, places
from genre_lab.data.formats import output_format, read_frame, write_frame
from genre_lab.data.labels import is_missing
from genre_lab.data.table import TableSpec, build_text, require_columns, with_policies
from genre_lab.errors import GenreLabError, require_choice, require_positive, run_app, user_errors
from genre_lab.io import same_file
from genre_lab.runs.finished import FinishedRun, locate
from genre_lab.runs.layout import RunLayout
from genre_lab.scoring.decoding import rule_for_run
from genre_lab.scoring.report import print_table

log = logging.getLogger(__name__)
COMMAND_LINE = ("text", "command line")  # sources without a file, hence without line numbers


def output_path(cfg: DictConfig) -> Path:
    """Where the predictions go (CSV, TSV, JSONL or Parquet by the extension): never over the input, never over an
    existing file unless overwrite=true."""
    out = Path(cfg.out) if cfg.get("out") else RunLayout(cfg.paths.output_dir).predictions
    source = cfg.get("input_csv")
    if source and same_file(out, Path(source)):
        raise GenreLabError(f"out={out} is the input file input_csv={source}: the predictions would replace it. "
                            "Choose another out=")
    if out.is_dir():
        raise GenreLabError(f"out={out} is a directory; give a file name, e.g. out={out / 'predictions.csv'}")
    output_format(out)
    if out.exists() and not cfg.get("overwrite"):
        raise GenreLabError(f"out={out} already exists; choose another file or pass overwrite=true to replace it")
    return out


def command_line_fields(cfg: DictConfig, spec: TableSpec) -> dict[str, Any]:
    """The template columns given as keys (``synopsis=…``, ``+plot=…``); any other unknown key is an error."""
    fields = {k: cfg[k] for k in cfg if k not in config_keys("predict")}
    unknown = [k for k in fields if k not in spec.text_columns]
    if unknown:
        raise GenreLabError(f"{unknown}: neither a predict setting nor a text column of this run, whose template "
                            f"{spec.text_template!r} uses {spec.text_columns}")
    return {k: v for k, v in fields.items() if v is not None}


def input_frame(cfg: DictConfig, spec: TableSpec) -> tuple[pd.DataFrame, list[str], str]:
    """Rows to predict, their model texts, and a name for messages (``spec``: the run's, with predict's
    encoding_errors)."""
    fields = command_line_fields(cfg, spec)
    if cfg.get("text"):
        return pd.DataFrame({"id": ["text"]}), [str(cfg.text)], "text"
    if fields:
        return pd.DataFrame({"id": ["input"], **{k: [v] for k, v in fields.items()}}), \
            [build_text(fields, spec.text_template)], "command line"
    if not cfg.get("input_csv"):
        raise GenreLabError("nothing to predict: give input_csv=<file.csv>, text=\"…\" or "
                            f"{'=… '.join(spec.text_columns)}=…")
    frame = read_frame(cfg.input_csv, spec.encoding_errors, spec.policy_key("encoding_errors"), spec.format,
                       spec.format_key)
    missing = [c for c in spec.text_columns if c not in frame.columns]
    if missing:
        raise GenreLabError(f"{cfg.input_csv}: missing text column(s) {missing} that the model was trained on "
                            f"(template {spec.text_template!r}); found {list(frame.columns)}.{delimiter_hint(frame)}")
    require_columns(frame, spec.text_columns, cfg.input_csv, "")
    texts = [build_text(row, spec.text_template) for row in frame[spec.text_columns].to_dict("records")]
    return frame, texts, str(cfg.input_csv)


def where(mask: pd.Series, frame: pd.DataFrame, source: str) -> str:
    """``: line(s) …`` of a file's rows (``row index …`` in Parquet); nothing for a command-line input."""
    return "" if source in COMMAND_LINE else f": {places(mask, frame)}"


def warn_about_input(frame: pd.DataFrame, source: str, id_col: str | None) -> None:
    """Inputs that still get a predictions file, but not the one the user probably expects."""
    if frame.empty:
        log.warning("%s: no data rows (header only); the predictions file holds the header only", source)
    if id_col is not None:
        repeated = frame[id_col].duplicated(keep=False)
        if repeated.any():
            values = list(dict.fromkeys(frame.loc[repeated, id_col]))[:5]
            log.warning("%s: %d row(s) share their %r with another row (e.g. %s), each predicted on its own row%s",
                        source, int(repeated.sum()), id_col, values, where(repeated, frame, source))


def without_empty(frame: pd.DataFrame, texts: list[str], empty: pd.Series, what: str, policy: str,
                  source: str) -> tuple[pd.DataFrame, list[str], pd.Series]:
    """Rows with nothing to predict from, listed by line: kept to get a status (``empty_text=keep``) or left out
    of the predictions (``drop``); never given genres."""
    if not empty.any():
        return frame, texts, empty
    if policy == "keep":
        log.warning("%s: %d row(s) with an empty %s, not predicted (status 'empty %s'; empty_text=drop leaves them "
                    "out)%s", source, int(empty.sum()), what, what, where(empty, frame, source))
        return frame, texts, empty
    log.warning("%s: %d row(s) with an empty %s left out of the predictions (empty_text=drop)%s",
                source, int(empty.sum()), what, where(empty, frame, source))
    kept = ~empty.to_numpy()
    return frame[kept], [t for t, k in zip(texts, kept, strict=True) if k], empty[kept]


def predict(cfg: DictConfig) -> pd.DataFrame:
    require_positive(cfg.batch_size, "batch_size")
    require_choice(cfg.empty_text, "empty_text", ("keep", "drop"))
    out = output_path(cfg)  # before any work: a refused output must not cost a model load
    run = locate(cfg.get("run_dir"), cfg.get("ckpt_path"))
    space = run.label_space
    decoder = rule_for_run(run.decoder, cfg.decode)  # bad values fail first
    decoder.for_genres(len(space))
    spec = with_policies(run.spec, {"encoding_errors": cfg.get("encoding_errors"), "format": cfg.get("input_format")})
    frame, texts, source = input_frame(cfg, spec)
    id_col = spec.id_column if spec.id_column in frame.columns else None
    warn_about_input(frame, source, id_col)
    first = spec.text_columns[0]
    by_column = first in frame.columns  # else a raw text= input
    empty = (frame[first].map(is_missing) if by_column else
             pd.Series([not t.strip() for t in texts], index=frame.index)).astype(bool)
    what = first if by_column else "text"
    frame, texts, empty = without_empty(frame, texts, empty, what, cfg.empty_text, source)
    keep = np.flatnonzero(~empty.to_numpy())
    names = list(space.names)
    probs = np.full((len(frame), len(names)), np.nan, dtype=np.float32)
    if len(keep):
        kept = [texts[i] for i in keep]
        probs[keep], cut = run.probabilities_and_cuts(kept, cfg.batch_size, cfg.precision, progress=True)
        warn_truncated(frame, keep, cut, run, source)
    decisions = np.zeros_like(probs, dtype=np.int64)
    if len(keep):
        decisions[keep] = decoder.decide(probs[keep])
    result = pd.DataFrame({
        "id": frame[id_col].to_numpy() if id_col else frame.index.to_numpy(),
        "genres": ["|".join(g) for g in space.decode(decisions)],
        **{f"prob_{n}": probs[:, i] for i, n in enumerate(names)},
        "status": np.where(empty.to_numpy(), f"empty {what}", "ok"),
    })
    write_frame(result, out)
    show(result, names)
    log.info("%d predictions written to %s (decision rule %s)", len(result), out, decoder.to_dict())
    return result


def warn_truncated(frame: pd.DataFrame, keep: np.ndarray, cut: np.ndarray, run: FinishedRun, source: str) -> None:
    """Texts longer than the run's ``max_length``: the model saw only part of them (``data.truncation``)."""
    if not cut.any():
        return
    mask = pd.Series(False, index=frame.index)
    mask.iloc[keep[cut]] = True
    log.warning("%s: %d text(s) %s%s", source, int(cut.sum()), run.cut_note, where(mask, frame, source))


def show(result: pd.DataFrame, names: list[str], limit: int = 20) -> None:
    rows = []
    for _, row in result.head(limit).iterrows():
        probs = sorted(((row[f"prob_{n}"], n) for n in names), reverse=True)[:3]
        rows.append({"id": row["id"], "genres": row["genres"], "status": row["status"],
                     "top probabilities": ", ".join(f"{n} {p:.2f}" for p, n in probs if p == p)})
    print_table(rows, ["id", "genres", "top probabilities", "status"],
                f"predictions (first {min(limit, len(result))} of {len(result)})")


@hydra.main(config_path=str(config_dir()), config_name="predict", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> Any:
    predict(cfg)


if __name__ == "__main__":
    run_app(main)
