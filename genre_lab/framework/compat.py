"""The one place genre_lab reaches into a framework's private API, checked when it is imported.

- Lightning relaunches extra DDP ranks by re-running the program; under Hydra it builds that command in the
  private ``pytorch_lightning.strategies.launchers.subprocess_script._hydra_subprocess_cmd``, which genre_lab
  replaces (genre_lab/framework/distributed.py says why). There is no public hook for it.
- hydra-ray-launcher starts Ray inside its first ``launch`` (``_launcher_util.start_ray``, not thread-safe); the
  sweeper's slot threads launch at once, so it is started once before them (``start_ray_of``).
- Hydra's ``JobReturn.return_value`` re-raises a failed job's exception after printing "Error executing job"
  to stderr; the sweeper reads the stored value (``_return_value``) instead, because a pruned trial is a
  failed job by Hydra's count but no error.

If a release renames or removes either, importing this module stops with one line naming the installed and
the tested versions, instead of DDP ranks silently starting the wrong command or trials all failing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import pytorch_lightning.strategies.launchers.subprocess_script as _subprocess_script
from hydra.core.utils import JobReturn, JobStatus

TESTED = {"pytorch-lightning": "2.6", "hydra-core": "1.3"}
RANK_COMMAND_HOOK = "_hydra_subprocess_cmd"
JOB_VALUE_FIELD = "_return_value"


def _missing(package: str, what: str, spec: str) -> ImportError:
    return ImportError(f"genre_lab needs {what}, which {package} {version(package)} does not have; genre_lab is "
                       f"tested with {package} {TESTED[package]}.x: pip install '{package}{spec}'")


if not callable(getattr(_subprocess_script, RANK_COMMAND_HOOK, None)):
    raise _missing("pytorch-lightning", f"pytorch_lightning.strategies.launchers.subprocess_script."
                   f"{RANK_COMMAND_HOOK} (Lightning's Hydra relaunch hook)", ">=2.3,<3")
if JOB_VALUE_FIELD not in {f.name for f in dataclasses.fields(JobReturn)}:
    raise _missing("hydra-core", f"hydra.core.utils.JobReturn.{JOB_VALUE_FIELD} (a job's stored result)",
                   ">=1.3.2,<1.4")


def job_value(ret: JobReturn) -> Any:
    """What a job returned, or the exception it raised (``optuna.TrialPruned`` for a pruned trial), without
    Hydra's "Error executing job" print."""
    return getattr(ret, JOB_VALUE_FIELD)


def set_rank_command(command: Callable[[int], tuple[Sequence[str], str]]) -> None:
    """Make Lightning's subprocess launcher start DDP rank ``local_rank`` with ``command(local_rank)``, which
    returns (argv, working directory)."""
    setattr(_subprocess_script, RANK_COMMAND_HOOK, command)


def start_ray_of(launcher: Any) -> None:
    """Start Ray, as hydra-ray-launcher's first ``launch`` would, before several threads call ``launch`` at once:
    two first launches both find Ray not yet started and the second ``ray.init`` fails ("called ray.init twice").
    Any other launcher: nothing to do."""
    if type(launcher).__name__ != "RayLauncher":
        return
    from hydra_plugins.hydra_ray_launcher._launcher_util import start_ray  # deferred: an optional plugin

    launcher.ray_cfg.init.setdefault("object_store_memory", 78643200)  # the plugin's default (its _core.launch)
    start_ray(launcher.ray_cfg.init)


class JobDied(RuntimeError):
    """A job whose process ended without a result (killed, out of memory, preempted)."""


def failed_job(overrides: Sequence[str], err: BaseException) -> JobReturn:
    """The JobReturn of a job that ended without one (a killed process), as Hydra's launchers build it."""
    died = JobDied(f"its process ended without a result ({type(err).__name__}; killed, out of memory or "
                   f"preempted); the end of its output: {str(err)[-400:]}")
    return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, **{JOB_VALUE_FIELD: died})
