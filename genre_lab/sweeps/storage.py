"""Study storage from one URL, the same in the sweeper and in its jobs (which may run on other nodes).

- ``null``: in memory; only jobs in the sweeper's own process (the basic launcher) can reach the study;
- ``journal:///abs/path/study.log`` (or ``journal://relative.log``): Optuna's journal file, for NFS clusters;
- ``sqlite:///study.db``, ``postgresql://…``, ``mysql://…``: passed to Optuna's RDB storage (SQLAlchemy 2).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

JOURNAL = "journal://"
# sqlite waits this long for another process's write lock instead of failing with "database is locked"
SQLITE_TIMEOUT_S = 120


def journal_path(url: str) -> Path:
    return Path(url[len(JOURNAL):]).expanduser()


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory sqlite)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path).expanduser() if path and path != ":memory:" else None


def absolute_url(url: str | None) -> str | None:
    """File paths made absolute: a job may run in another working directory (submitit, SLURM)."""
    if url is None:
        return None
    url = str(url)
    if url.startswith(JOURNAL):
        return JOURNAL + str(journal_path(url).resolve())
    path = sqlite_path(url)
    if path is None:
        return url
    query = url.split("?", 1)[1] if "?" in url else ""
    return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def storage_lock(url: str | None) -> Iterator[None]:
    """Serialise creating the schema and the study in one sqlite file: two sweeps started at once on a fresh
    file would both create the tables, and one would fail. Other backends handle this themselves."""
    path = sqlite_path(url) if url else None
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=SQLITE_TIMEOUT_S):
        yield


def open_storage(url: str | None, heartbeat: tuple[int, int] | None = None, on_stale: Any = None) -> Any:
    """An Optuna storage object for ``url`` (see the module docstring); an RDB one keeps trial heartbeats with
    ``heartbeat`` = (interval, grace period) and calls ``on_stale(study, trial)`` for each trial it finds stale."""
    import optuna  # deferred: train reaches this module (trial_link), and optuna is an optional extra

    if url is None:
        return optuna.storages.InMemoryStorage()
    url = str(url)
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend  # deferred: as optuna above

        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite_path(url) else None
    with storage_lock(url):
        beats = {} if heartbeat is None else {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1],
                                              "heartbeat_stale_trial_callback": on_stale}
        with warnings.catch_warnings():  # heartbeat_interval: experimental since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beats)
