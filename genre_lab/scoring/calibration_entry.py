"""A stored calibration entry (``checkpoint["calibration"]``, an ONNX folder's manifest) read into its temperatures,
with no torch behind it: training's calibration.py and the ONNX runtime (serving/) read entries with this one check."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from genre_lab.checks import GenreLabError

METHOD = "temperature"


def temperatures(calibration: Any, genres: int | None = None, where: str = "the checkpoint") -> list[float] | None:
    """The entry's temperatures, one or one per genre (``genres``, when known), each a finite number > 0; None when
    uncalibrated. Anything else: a GenreLabError naming ``where`` the entry came from."""
    if calibration is None:
        return None
    entry = calibration if isinstance(calibration, Mapping) else {}
    values = entry.get("temperature")
    values = values if isinstance(values, list) else [values]
    good = bool(values) and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                and v > 0 for v in values)
    counts = (1,) if genres is None else (1, genres)
    if entry.get("method") != METHOD or not good or (genres is not None and len(values) not in counts):
        per_genre = f", or {genres} (one per genre)" if genres is not None else ", or one per genre"
        raise GenreLabError(f"{where}: calibration {calibration!r} is not one this version applies: it must be "
                            f"{{'method': '{METHOD}', 'temperature': [T, …]}} with one T > 0{per_genre}; retrain "
                            "or re-export the run, or upgrade genre_lab")
    return [float(v) for v in values]
