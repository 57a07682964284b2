"""The ONNX runtime: an exported folder (``genre-lab export format=onnx``) to genres and probabilities, with
onnxruntime, tokenizers and NumPy only — no torch, Lightning, transformers, Hydra or pandas.

Everything between a movie and its genres is genre_lab's own code, shared with training, eval and predict: the text
template (data/text_template.py), the cutting and padding (data/token_rows.py) and the decision rule
(scoring/rule.py). The folder's manifest (manifest.py) says which settings the run used.

    model = OnnxGenreModel("exported/")
    result = model.predict([{"synopsis": "A detective and a ghost.", "movie_name": "Night Shift"}])
    result.genres[0], result.probabilities[0], result.cut[0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from genre_lab.checks import GenreLabError
from genre_lab.data.text_template import build_text, template_fields
from genre_lab.data.token_rows import cutting_tokenizer, encode_cut, length_sorted_batches, pad_rows
from genre_lab.io import file_digest
from genre_lab.scoring.calibration_entry import temperatures
from genre_lab.scoring.rule import DecisionRule
from genre_lab.serving.manifest import MANIFEST, Manifest

INPUTS = ("input_ids", "attention_mask")  # the graph's inputs, int64 [batch, sequence]; its output: logits


@dataclass(frozen=True)
class Predictions:
    """Per row, in input order: the decided genres, the probabilities ``[N, genres]`` (float32, the manifest's
    genre order), the 0/1 decisions behind the genres, and whether the text was longer than max_length and cut."""

    genres: list[list[str]]
    probabilities: np.ndarray
    decisions: np.ndarray
    cut: np.ndarray


def squash(logits: np.ndarray, objective: str) -> np.ndarray:
    """Logits to probabilities as training defines them (model/module.probabilities): softmax over the genres
    for ce, a sigmoid per genre for bce; in float64, returned as float32."""
    x = np.asarray(logits, dtype=np.float64)
    if objective == "ce":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    with np.errstate(over="ignore"):  # exp(-x) of a very negative logit is inf: its probability is exactly 0
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def open_session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session on ``path`` (``threads`` None: onnxruntime's default, one per core)."""
    try:
        import onnxruntime  # deferred: an optional extra (genre_lab[onnx]), not needed by the rest of genre_lab
    except ImportError:
        raise GenreLabError(f"{path}: running an exported ONNX model needs onnxruntime: pip install "
                            "'genre_lab[onnx]' (or onnxruntime alone, with tokenizers and numpy)") from None
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def checked_digest(folder: Path, manifest: Manifest) -> str:
    """The graph's sha256, refused when it is not the one the manifest recorded at export (a replaced or damaged
    file would otherwise give other genres under the same identity)."""
    path = folder / manifest.onnx_file
    if not path.is_file():
        raise GenreLabError(f"{path}: no such ONNX file, which {folder / MANIFEST} names; re-export the run")
    digest = file_digest(path)
    recorded = manifest.model.get("sha256")
    if recorded and recorded != digest:
        raise GenreLabError(f"{path}: sha256 {digest[:12]}…, but {folder / MANIFEST} records {str(recorded)[:12]}… "
                            "(the file was changed or damaged after export); export the run again")
    return digest


class OnnxGenreModel:
    """An exported folder, loaded: ``predict`` (movies or raw texts -> ``Predictions``) and the steps under it."""

    def __init__(self, folder: str | Path, threads: int | None = None) -> None:
        self.folder = Path(folder)
        if not (self.folder / MANIFEST).is_file():
            raise GenreLabError(f"{self.folder}: no {MANIFEST}, so not a genre_lab ONNX export; write one with "
                                "genre-lab export run_dir=… out=… format=onnx")
        self.manifest = Manifest.read(self.folder)
        where = str(self.folder / MANIFEST)
        self.rule = DecisionRule(**self.manifest.decision_rule).for_genres(len(self.genres), where)
        found = temperatures(self.manifest.calibration, len(self.genres), where)
        self.temperature = None if found is None else np.asarray(found, dtype=np.float64)
        self.text_columns = template_fields(self.manifest.text_template)
        backend = Tokenizer.from_file(str(self.folder / self.manifest.tokenizer_file))
        self.tokenizer = cutting_tokenizer(backend, self.manifest.max_length, self.manifest.truncation)
        self.sha256 = checked_digest(self.folder, self.manifest)
        self.session = open_session(self.folder / self.manifest.onnx_file, threads)

    @property
    def genres(self) -> list[str]:
        return list(self.manifest.genres)

    def texts_of(self, movies: Sequence[Mapping[str, Any]]) -> list[str]:
        """Each movie's model text from the run's template; every template column must be given (None or an
        empty string for none), as predict requires every template column of a CSV."""
        texts = []
        for i, movie in enumerate(movies):
            if not isinstance(movie, Mapping):
                raise GenreLabError(f"movie {i}: {type(movie).__name__}, not a mapping of the template columns "
                                    f"{self.text_columns}; give raw model inputs as texts=")
            missing = [c for c in self.text_columns if c not in movie]
            if missing:
                raise GenreLabError(f"movie {i}: missing {missing}; the model's template "
                                    f"{self.manifest.text_template!r} uses {self.text_columns}")
            texts.append(build_text(movie, self.manifest.text_template))
        return texts

    def logits_and_cuts(self, texts: Sequence[str], batch_size: int = 64,
                        on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits ``[N, genres]`` of ``texts`` (cut as the run was trained), and which texts were cut. Rows run
        longest first in batches of ``batch_size``, each padded to its own longest row; ``on_batch(rows)`` after
        each batch (a progress bar)."""
        rows, cut = encode_cut(self.tokenizer, texts, self.manifest.max_length, self.manifest.truncation)
        logits = np.empty((len(rows), len(self.genres)), dtype=np.float32)
        for idx in length_sorted_batches([len(r) for r in rows], max(int(batch_size), 1)):
            input_ids, mask = pad_rows([rows[i] for i in idx], self.manifest.pad_token_id)
            logits[idx] = self.session.run(None, dict(zip(INPUTS, (input_ids, mask), strict=True)))[0]
            if on_batch is not None:
                on_batch(len(idx))
        return logits, cut

    def probabilities_and_cuts(self, texts: Sequence[str], batch_size: int = 64,
                               on_batch: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (logits / temperature, then sigmoid or softmax) and the cut flags."""
        logits, cut = self.logits_and_cuts(texts, batch_size, on_batch)
        if self.temperature is not None:
            logits = logits / self.temperature
        return squash(logits, self.manifest.objective), cut

    def predict(self, movies: Sequence[Mapping[str, Any]] | None = None, *, texts: Sequence[str] | None = None,
                batch_size: int = 64) -> Predictions:
        """Genres of ``movies`` (mappings with the template columns) or of raw model inputs ``texts``."""
        if (movies is None) == (texts is None):
            raise GenreLabError("give either movies (mappings with the template columns) or texts (raw model "
                                "inputs), not both or neither")
        inputs = self.texts_of(movies) if movies is not None else [str(t) for t in texts or []]
        probs, cut = self.probabilities_and_cuts(inputs, batch_size)
        decisions = self.rule.decide(probs)
        genres = [[g for g, chosen in zip(self.genres, row, strict=True) if chosen] for row in decisions]
        return Predictions(genres, probs, decisions, cut)
