"""The user error type and the plain checks of a setting's value: no Hydra, no torch, so the ONNX runtime
(genre_lab/serving) raises the same error as the commands. genre_lab/errors.py re-exports all of it, next to the
CLI's rendering of these errors."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any


class GenreLabError(Exception):
    """A user-fixable problem: the message says what is wrong, where, and how to fix it."""

    exit_code = 2


def is_number(value: Any) -> bool:
    """A real number from the config (not a bool, not a string such as ``abc``, not NaN)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not math.isnan(value)


def require_int(value: Any, key: str, minimum: int, example: Any, maximum: int | None = None) -> int:
    """``value`` as a whole number in [minimum, maximum], or a GenreLabError naming ``key`` and an example."""
    whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not whole or value < minimum or (maximum is not None and value > maximum):
        bounds = f"≥ {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise GenreLabError(f"{key}={value!r} must be a whole number {bounds}, e.g. {key}={example}")
    return int(value)


def require_positive(value: Any, key: str) -> int:
    """``value`` as a whole number ≥ 1 (batch sizes, counts), or a GenreLabError naming ``key``."""
    return require_int(value, key, 1, 32)


def require_number(value: Any, key: str, ok: Callable[[float], bool], rule: str, example: str) -> float:
    """``value`` as a finite number for which ``ok`` holds (``rule`` says which, e.g. "in (0, 1)")."""
    if not is_number(value) or math.isinf(value) or not ok(float(value)):
        raise GenreLabError(f"{key}={value!r} must be a number {rule}, e.g. {key}={example}")
    return float(value)


def require_choice(value: Any, key: str, choices: Sequence[str]) -> Any:
    """``value`` when it is one of ``choices``, or a GenreLabError naming ``key``, the choices and an example."""
    if value not in choices:
        raise GenreLabError(f"{key}={value!r} must be one of {', '.join(choices)}, e.g. {key}={choices[0]}")
    return value
