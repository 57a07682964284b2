"""The one error type for problems the user can fix (bad input, bad config, missing files), and its one path to the
user (defined, with the plain value checks, in the Hydra-free leaf genre_lab/checks.py).

The CLI prints these as a short message and exits with code 2; everything else is a bug and keeps
its traceback. Inside a multirun, a failing job is recorded (``failed.json`` in its directory) and
returns None instead of raising: Hydra's basic sweeper would abort the sweep on a raised error, and our
Optuna sweeper marks a trial whose value is not a number as failed and goes on. A pruned Optuna trial raises
``optuna.TrialPruned`` after writing its results; that passes through.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.errors import (
    ConfigCompositionException,
    InstantiationException,
    OverrideParseException,
    SearchPathException,
)
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

# the error type and value checks live in a leaf without Hydra (the ONNX runtime raises them too)
from genre_lab.checks import GenreLabError as GenreLabError
from genre_lab.checks import is_number as is_number
from genre_lab.checks import require_choice as require_choice
from genre_lab.checks import require_int as require_int
from genre_lab.checks import require_number as require_number
from genre_lab.checks import require_positive as require_positive
from genre_lab.io import atomic_write_text, write_json
from genre_lab.runs.layout import RunLayout

log = logging.getLogger(__name__)


def exit_with(err: GenreLabError) -> NoReturn:
    """The CLI's rendering of a user error: one line on stderr, exit code 2."""
    print(f"genre-lab: error: {err}", file=sys.stderr)
    raise SystemExit(err.exit_code) from None


def run_app(app: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` app so that a config that does not compose (unknown group option, misspelt
    key, unparsable override) exits with code 2 like every other user error, after Hydra's own message.

    Hydra prints such an error and calls ``sys.exit(1)`` inside its ``except`` block, so the SystemExit's
    ``__context__`` is the error it reported; any other failure keeps Hydra's exit code and traceback.
    """
    try:
        app()
    except SystemExit as done:
        reported = done.__context__
        if done.code == 1 and isinstance(reported, InstantiationException) and isinstance(reported.__cause__,
                                                                                         GenreLabError):
            exit_with(reported.__cause__)  # a bad setting of our sweeper or launcher, refused when Hydra builds it
        if done.code == 1 and isinstance(reported, (ConfigCompositionException, OverrideParseException,
                                                    SearchPathException)):
            first = (str(reported).strip().splitlines() or [type(reported).__name__])[0].rstrip(".")
            key = re.match(r"Could not override '([^']+)'", first)
            if key and replaced(key[1]):
                exit_with(GenreLabError(f"{key[1]} is no longer a setting: {replaced(key[1])}"))
            searched = re.search(r"'hydra\.sweeper\.params\.([^=']+)=([^']*)'", first)
            if searched:  # the sweeper's params are a config file's; on the command line a sweep is the key itself
                exit_with(GenreLabError(f"hydra.sweeper.params.{searched[1]}=… cannot be set on the command line; "
                                        f"search a key by giving it as a sweep: '{searched[1]}={searched[2]}' "
                                        "(with hparams_search=optuna or hydra/sweeper=genre_lab_optuna)"))
            exit_with(GenreLabError(f"{first} (Hydra's message above). Fix that override; add `--cfg job` to "
                                    "print the keys, `--help` to list the config groups and their options"))
        raise


# Settings earlier versions had, and what replaced them: typed today, they get this instead of "Could not override".
LAYOUT_FIXED = ("checkpoint and log folders and file names are fixed by genre_lab/runs/layout.py, where resume, "
                "eval, predict, export and compare look for them; move a whole run with hydra.run.dir=…")
REPLACED = {
    "data_csv": "eval reads input_csv=<a labelled CSV> (the one name for the CSV to read, as in predict)",
    **{f"callbacks.model_checkpoint.{k}": LAYOUT_FIXED + " (callbacks.model_checkpoint takes monitor and mode)"
       for k in ("dirpath", "filename", "save_top_k", "save_last", "save_weights_only", "auto_insert_metric_name")},
    **{f"callbacks.last_checkpoint.{k}": LAYOUT_FIXED
       for k in ("dirpath", "filename", "monitor", "save_top_k", "enable_version_counter")},
    "callbacks.save_on_interrupt.dirpath": LAYOUT_FIXED,
    **{f"logger.csv.{k}": LAYOUT_FIXED for k in ("save_dir", "name", "version")},
}


def replaced(key: str) -> str | None:
    """What replaced the earlier setting ``key``, if it was one."""
    return REPLACED.get(key.lstrip("+~"))


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def record_failure(output_dir: str | Path, err: BaseException) -> None:
    write_json(failure_file(RunLayout(output_dir)), {
        "status": "failed", "error": f"{type(err).__name__}: {err}",
        "traceback": "".join(traceback.format_exception(err)),
    })


def record_refused_job(config: DictConfig, overrides: Sequence[str], err: BaseException) -> None:
    """A sweep job its sweeper refused before launch leaves the record a failed job does (its config, overrides and
    failed.json), so the sweep summary and compare list it with the others."""
    job_dir = Path(str(config.hydra.sweep.dir)) / str(config.hydra.sweep.subdir)
    hydra_dir = RunLayout(job_dir).hydra
    hydra_dir.mkdir(parents=True, exist_ok=True)
    task = OmegaConf.masked_copy(config, [k for k in config if k != "hydra"])
    atomic_write_text(hydra_dir / "config.yaml", OmegaConf.to_yaml(task))
    atomic_write_text(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
    record_failure(job_dir, err)


def failure_file(layout: RunLayout) -> Path:
    """Where a failed job's ``failed.json`` goes: its directory, unless that holds a finished run's results and the
    job was a resume of it (a refused or crashed resume): then the resume's own ``.hydra/resumes/<n>/``, so the
    run still reads as the run it was and its history says what the resume met."""
    resumes = layout.resume_dirs()
    return resumes[-1] / layout.failed.name if resumes and layout.record() else layout.failed


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
