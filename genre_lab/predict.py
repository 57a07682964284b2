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
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from genre_lab.config_dir import config_dir, config_keys
from genre_lab.data.chunks import FrameWriter, count_lines, csv_record_starts, iter_frames
from genre_lab.data.files import RECORD_LINES, RECORD_UNIT, delimiter_hint, shorten
from genre_lab.data.formats import SEPARATORS, detect_format, output_format
from genre_lab.data.labels import missing_mask
from genre_lab.data.table import TableSpec, require_columns, with_policies
from genre_lab.data.text_template import build_texts
from genre_lab.errors import GenreLabError, require_choice, require_positive, run_app, user_errors
from genre_lab.framework.progress import RowProgress
from genre_lab.io import OutputTaken, same_file, sigterm_raises
from genre_lab.runs.finished import FinishedRun, locate
from genre_lab.runs.layout import RunLayout
from genre_lab.scoring.decoding import rule_for_run
from genre_lab.scoring.report import print_table

log = logging.getLogger(__name__)
COMMAND_LINE = ("text", "command line")  # sources without a file, hence without line numbers
TEXT = "__text__"  # a raw text= input's column: the model text as given, no template


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


def input_frames(cfg: DictConfig, spec: TableSpec) -> tuple[Iterator[pd.DataFrame], int, Notes]:
    """The rows to predict in frames of at most ``chunk_rows`` (a file of any length in bounded memory), about how
    many rows there are (for the ETA) and the notes on them (``spec``: the run's, with predict's policies)."""
    fields = command_line_fields(cfg, spec)
    if cfg.get("text"):
        return iter([pd.DataFrame({"id": ["text"], TEXT: [str(cfg.text)]})]), 1, Notes("text")
    if fields:
        return iter([pd.DataFrame({"id": ["input"], **{k: [v] for k, v in fields.items()}})]), 1, \
            Notes("command line")
    if not cfg.get("input_csv"):
        raise GenreLabError("nothing to predict: give input_csv=<file.csv>, text=\"…\" or "
                            f"{'=… '.join(spec.text_columns)}=…")
    path = Path(cfg.input_csv)
    frames = iter_frames(path, spec.encoding_errors, spec.policy_key("encoding_errors"), spec.format,
                         spec.format_key, cfg.chunk_rows)
    notes = Notes(str(path), detect_format(path, spec.format, spec.format_key) if path.exists() else None)
    return frames, notes.estimated_rows(), notes


def checked_texts(frame: pd.DataFrame, spec: TableSpec, source: str) -> list[str]:
    """The model texts of a frame's rows (a raw ``text=`` as it is)."""
    if TEXT in frame.columns:
        return frame[TEXT].tolist()
    missing = [c for c in spec.text_columns if c not in frame.columns]
    if missing:
        raise GenreLabError(f"{source}: missing text column(s) {missing} that the model was trained on "
                            f"(template {spec.text_template!r}); found {list(frame.columns)}.{delimiter_hint(frame)}")
    require_columns(frame, spec.text_columns, source, "")
    return build_texts({c: frame[c].tolist() for c in spec.text_columns}, spec.text_template)


@dataclass
class Notes:
    """What predict tells about its input once it has read it all: rows without text, texts cut at max_length,
    repeated ids; rows by their place in the file (files.RECORD_LINES numbers)."""

    source: str
    format: str | None = None  # the input file's (formats.py), None on the command line
    lines: int | None = None  # a text file's physical lines, counted once (the ETA, then the exact line numbers)
    unit: str = "line(s)"
    rows: int = 0
    ids: list[Any] = field(default_factory=list)
    numbers: list[np.ndarray] = field(default_factory=list)  # each frame's row numbers, for repeated ids
    empty: list[int] = field(default_factory=list)
    cut: list[int] = field(default_factory=list)

    def add(self, frame: pd.DataFrame, ids: np.ndarray, empty: np.ndarray, cut_rows: np.ndarray) -> None:
        numbers = frame.attrs.get(RECORD_LINES)
        numbers = np.arange(self.rows, self.rows + len(frame)) + 2 if numbers is None else np.asarray(numbers)
        self.unit = frame.attrs.get(RECORD_UNIT, self.unit)
        self.ids.extend(ids)
        self.numbers.append(numbers)
        self.empty.extend(numbers[empty].tolist())
        self.cut.extend(numbers[cut_rows].tolist())
        self.rows += len(frame)

    def estimated_rows(self) -> int:
        """Rows of the input, for the progress bar's ETA: a text file's lines (one too many per multi-line record);
        0 (no ETA) when unknown. An unreadable file is the reader's to report, with its fix."""
        path = Path(self.source)
        try:
            if self.format == "parquet" and path.is_file():
                import pyarrow.parquet as pq
                return pq.ParquetFile(path).metadata.num_rows
            if not path.is_file():
                return 0
            self.lines = count_lines(path)
            return max(self.lines - (self.format != "jsonl"), 0)
        except Exception:  # noqa: BLE001 (a broken file fails in the reader, which names the fix)
            return 0

    @cached_property
    def record_starts(self) -> np.ndarray | None:
        """Each record's first physical line, scanned once, only when a CSV's records do not each take one line."""
        if self.lines == self.rows + 1:
            return np.arange(2, self.rows + 2)
        return csv_record_starts(Path(self.source), SEPARATORS[self.format])

    def where(self, numbers: list[int]) -> str:
        """``: line(s) …`` of the given rows; nothing for a command-line input (one row, no file)."""
        return "" if self.source in COMMAND_LINE else f": {self.unit} {shorten(self.exact(numbers))}"

    def exact(self, numbers: list[int]) -> list[int]:
        """A CSV read in pieces numbers its rows row + 2: right unless a record spans lines, else scanned."""
        starts = self.record_starts if numbers and self.format in SEPARATORS else None
        positions = np.asarray(numbers) - 2
        return starts[positions].tolist() if starts is not None and len(starts) > positions.max() else numbers


def report(notes: Notes, what: str, policy: str, run: FinishedRun, id_col: str | None) -> None:
    """Inputs that still get a predictions file, but not the one the user probably expects."""
    if not notes.rows:
        log.warning("%s: no data rows (header only); the predictions file holds the header only", notes.source)
    if notes.empty:
        if policy == "keep":
            log.warning("%s: %d row(s) with an empty %s, not predicted (status 'empty %s'; empty_text=drop leaves "
                        "them out)%s", notes.source, len(notes.empty), what, what, notes.where(notes.empty))
        else:
            log.warning("%s: %d row(s) with an empty %s left out of the predictions (empty_text=drop)%s",
                        notes.source, len(notes.empty), what, notes.where(notes.empty))
    if notes.cut:
        log.warning("%s: %d text(s) %s%s", notes.source, len(notes.cut), run.cut_note, notes.where(notes.cut))
    ids = pd.Series(notes.ids, dtype=object)
    repeated = ids.duplicated(keep=False).to_numpy() if id_col else np.zeros(len(ids), dtype=bool)
    if repeated.any():
        numbers = np.concatenate(notes.numbers)[repeated].tolist()
        log.warning("%s: %d row(s) share their %r with another row (e.g. %s), each predicted on its own row%s",
                    notes.source, int(repeated.sum()), id_col, list(dict.fromkeys(ids[repeated]))[:5],
                    notes.where(numbers))


def predict(cfg: DictConfig) -> pd.DataFrame:
    """Predict every row, frame by frame, into ``out``; returns the predictions (what was written)."""
    require_positive(cfg.batch_size, "batch_size")
    require_positive(cfg.chunk_rows, "chunk_rows")
    require_choice(cfg.empty_text, "empty_text", ("keep", "drop"))
    out = output_path(cfg)  # before any work: a refused output must not cost a model load
    run = locate(cfg.get("run_dir"), cfg.get("ckpt_path"))
    decoder = rule_for_run(run.decoder, cfg.decode)  # bad values fail first
    decoder.for_genres(len(run.label_space))
    spec = with_policies(run.spec, {"encoding_errors": cfg.get("encoding_errors"), "format": cfg.get("input_format")})
    frames, total, notes = input_frames(cfg, spec)
    source, results, what, id_col = notes.source, [], "text", None
    try:
        with sigterm_raises(), FrameWriter(out, output_format(out), replace=bool(cfg.get("overwrite"))) as writer, \
                RowProgress(total, "predicting", enabled=total > cfg.chunk_rows) as bar:
            for frame in frames:
                id_col = spec.id_column if spec.id_column in frame.columns else None
                what = spec.text_columns[0] if spec.text_columns[0] in frame.columns else "text"
                results.append(predict_frame(frame, checked_texts(frame, spec, source), run, decoder, cfg, notes,
                                             id_col, what))
                writer.write(results[-1])
                bar.advance(len(frame))
            if not writer.frames:  # an input without rows: a file of the header only
                writer.write(empty_result(list(run.label_space.names)))
    except OutputTaken:  # written by another command since output_path checked: keep that file
        raise GenreLabError(f"out={out} was written by another command while this one ran; that file is kept and "
                            "these predictions are discarded. Choose another out= (or overwrite=true) and run "
                            "again") from None
    report(notes, what, cfg.empty_text, run, id_col)
    result = pd.concat(results, ignore_index=True) if results else empty_result(list(run.label_space.names))
    show(result, list(run.label_space.names))
    log.info("%d predictions written to %s (decision rule %s)", len(result), out, decoder.to_dict())
    return result


def predict_frame(frame: pd.DataFrame, texts: list[str], run: FinishedRun, decoder: Any, cfg: DictConfig,
                  notes: Notes, id_col: str | None, what: str) -> pd.DataFrame:
    """One frame's predictions; its empty rows get a status (or are dropped), its notes go to ``notes``."""
    names = list(run.label_space.names)
    empty = (missing_mask(frame[what]) if what in frame.columns else
             pd.Series([not t.strip() for t in texts])).to_numpy(dtype=bool)
    keep = np.flatnonzero(~empty)
    probs = np.full((len(frame), len(names)), np.nan, dtype=np.float32)
    decisions = np.zeros_like(probs, dtype=np.int64)
    cut_rows = np.zeros(len(frame), dtype=bool)
    if len(keep):
        probs[keep], cut = run.probabilities_and_cuts([texts[i] for i in keep], cfg.batch_size, cfg.precision)
        decisions[keep] = decoder.decide(probs[keep])
        cut_rows[keep[cut]] = True
    ids = frame[id_col].to_numpy() if id_col else np.arange(notes.rows, notes.rows + len(frame))
    notes.add(frame, ids, empty, cut_rows)
    result = pd.DataFrame({
        "id": ids,
        "genres": ["|".join(g) for g in run.label_space.decode(decisions)],
        **{f"prob_{n}": probs[:, i] for i, n in enumerate(names)},
        "status": np.where(empty, f"empty {what}", "ok"),
    })
    return result[~empty].reset_index(drop=True) if cfg.empty_text == "drop" else result


def empty_result(names: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": [], "genres": [], **{f"prob_{n}": np.zeros(0, np.float32) for n in names},
                         "status": []})


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
