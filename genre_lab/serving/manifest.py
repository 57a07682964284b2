"""``genre_lab.json``: the one file that says how an exported ONNX folder turns movies into genres.

``genre-lab export format=onnx`` writes it; the ONNX runtime (onnx_runtime.py), ``genre-lab eval`` / ``predict`` on
the folder and the HTTP app read it. It holds what the graph alone does not: the genres, the text template, how
texts are cut (max_length, head / tail / head+tail), the calibration temperatures, how logits become probabilities
(objective: bce -> sigmoid, ce -> softmax), the decision rule, and the model's identity (sha256 of the ONNX file,
its source checkpoint, the genre_lab version), and the run's final figures. Plain JSON and the standard library:
readable with no genre_lab.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from genre_lab.checks import GenreLabError
from genre_lab.io import write_json

MANIFEST = "genre_lab.json"
FORMAT = "genre_lab-onnx"
VERSION = 1  # raised when a reader of the previous version would misread the folder
SQUASH = {"bce": "sigmoid", "ce": "softmax"}


@dataclass(frozen=True)
class Manifest:
    genres: list[str]
    multi_label: bool
    objective: str  # bce: sigmoid per genre; ce: softmax over the genres
    text_template: str
    max_length: int
    truncation: str  # head | tail | head+tail, as genre_lab/data/token_rows.py cuts
    pad_token_id: int
    decision_rule: dict[str, Any]  # DecisionRule.to_dict(): threshold (one or per genre), top_k, at_least_one
    calibration: dict[str, Any] | None  # {"method": "temperature", "temperature": [..]}; logits / T before squashing
    onnx_file: str
    tokenizer_file: str
    model: dict[str, Any]  # identity: sha256 of onnx_file, source checkpoint, genre_lab version, backbone, pooling
    data: dict[str, Any] = field(default_factory=dict)  # the run's data settings: eval rebuilds its validation rows
    training: dict[str, float] = field(default_factory=dict)  # the run's final val/ and test/ figures (metrics.json)

    def __post_init__(self) -> None:
        if self.objective not in SQUASH:
            raise GenreLabError(f"{MANIFEST}: objective={self.objective!r} must be one of {', '.join(SQUASH)}")

    def to_dict(self) -> dict[str, Any]:
        squash = SQUASH[self.objective]
        return {"format": FORMAT, "format_version": VERSION, **asdict(self),
                "note": f"logits = {self.onnx_file}(input_ids, attention_mask); divide them by the calibration "
                        f"temperature when present, apply {squash}; decide with decision_rule (a genre is predicted "
                        "when its probability is strictly above its threshold, or is among the top_k)"}

    def write(self, folder: Path) -> Path:
        return write_json(folder / MANIFEST, self.to_dict())

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of ``folder``; a GenreLabError naming the file and what is wrong with it."""
        path = folder / MANIFEST
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise GenreLabError(f"{path}: not a readable genre_lab export manifest ({err}); re-export the run with "
                                "genre-lab export run_dir=… out=… format=onnx") from None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT:
            raise GenreLabError(f"{path}: not a genre_lab ONNX export (no \"format\": \"{FORMAT}\")")
        if saved.get("format_version") != VERSION:
            raise GenreLabError(f"{path}: format_version {saved.get('format_version')!r}, this genre_lab reads "
                                f"{VERSION}; export the run again with this genre_lab, or install the one that wrote "
                                f"it ({saved.get('model', {}).get('genre_lab_version', 'unknown')})")
        names = [f.name for f in fields(cls)]
        optional = ("data", "training")  # added after the first exports; a folder without them still reads
        missing = [name for name in names if name not in saved and name not in optional]
        if missing:
            raise GenreLabError(f"{path}: missing {missing}; re-export the run with genre-lab export format=onnx")
        return cls(**{name: saved[name] for name in names if name in saved})

    @property
    def squash(self) -> str:
        return SQUASH[self.objective]
