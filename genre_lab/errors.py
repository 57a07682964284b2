"""The one error type for problems the user can fix (bad input, bad config, missing files).

The CLI prints these as a short message and exits with code 2; everything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TypeVar

from omegaconf import DictConfig

T = TypeVar("T")


class GenreLabError(Exception):
    """A user-fixable problem: the message says what is wrong, where, and how to fix it."""

    exit_code = 2


def user_errors(task: Callable[[DictConfig], T]) -> Callable[[DictConfig], T]:
    """Wrap a Hydra task: a GenreLabError becomes one line on stderr and exit code 2.

    ``show_traceback=true`` re-raises instead, for debugging.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> T:
        try:
            return task(cfg)
        except GenreLabError as err:
            if cfg.get("show_traceback"):
                raise
            print(f"genre-lab: error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None

    return wrapper
