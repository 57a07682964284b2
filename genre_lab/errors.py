"""The one error type for problems the user can fix (bad input, bad config, missing files).

The CLI prints these as a short message and exits with code 2; everything else is a bug and keeps
its traceback. Inside a multirun, a failing job is recorded (``failed.json`` in its directory) and
returns None instead of raising: Hydra's basic sweeper would abort the sweep on a raised error, and our
Optuna sweeper marks a trial whose value is not a number as failed and goes on. A pruned Optuna trial raises
``optuna.TrialPruned`` after writing its results; that passes through.
"""

from __future__ import annotations

import functools
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from omegaconf import DictConfig

log = logging.getLogger(__name__)


class GenreLabError(Exception):
    """A user-fixable problem: the message says what is wrong, where, and how to fix it."""

    exit_code = 2


def require_positive(value: Any, key: str) -> int:
    """``value`` as a whole number ≥ 1 (batch sizes, counts), or a GenreLabError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GenreLabError(f"{key}={value} must be a whole number ≥ 1, e.g. {key}=32")
    return value


def exit_with(err: GenreLabError) -> NoReturn:
    """The CLI's rendering of a user error: one line on stderr, exit code 2."""
    print(f"genre-lab: error: {err}", file=sys.stderr)
    raise SystemExit(err.exit_code) from None


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_failure(output_dir: str | Path, err: BaseException) -> None:
    from genre_lab.io import write_json

    write_json(Path(output_dir) / "failed.json", {
        "status": "failed", "error": f"{type(err).__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
    })


def find_user_error(err: BaseException | None) -> GenreLabError | None:
    """``err`` itself, or the GenreLabError that Hydra's ``instantiate`` wrapped (it re-raises from it)."""
    while err is not None:
        if isinstance(err, GenreLabError):
            return err
        err = err.__cause__
    return None


def user_errors(task: Callable[[DictConfig], Any]) -> Callable[[DictConfig], Any]:
    """Wrap a Hydra task: a GenreLabError becomes one line on stderr and exit code 2;
    in a multirun any failure is recorded and the job returns None. ``show_traceback=true`` re-raises.
    """

    @functools.wraps(task)
    def wrapper(cfg: DictConfig) -> Any:
        try:
            return task(cfg)
        except Exception as err:
            optuna = sys.modules.get("optuna")
            if optuna is not None and isinstance(err, optuna.TrialPruned):
                raise  # not a failure: the job finished its results, the sweeper tells the study PRUNED
            if cfg.get("show_traceback"):
                raise
            if in_multirun():
                log.error("job failed, the sweep goes on: %s: %s", type(err).__name__, err)
                record_failure(cfg.paths.output_dir, err)
                return None
            user_error = find_user_error(err)
            if user_error is not None:
                exit_with(user_error)
            raise

    return wrapper
