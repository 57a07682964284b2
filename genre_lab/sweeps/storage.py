"""Study storage from one URL, the same in the sweeper and in its jobs (which may run on other nodes).

- ``null``: in memory; only jobs in the sweeper's own process (the basic launcher) can reach the study;
- ``journal:///abs/path/study.log`` (or ``journal://relative.log``): Optuna's journal file, for NFS clusters
  (with a heartbeat of our own: Optuna keeps one for RDB storages only, see ``BeatingJournal``);
- ``sqlite:///study.db``, ``postgresql://…``, ``mysql://…``: passed to Optuna's RDB storage (SQLAlchemy 2).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock

JOURNAL = "journal://"
# sqlite waits this long for another process's write lock instead of failing with "database is locked"
SQLITE_TIMEOUT_S = 120
BEAT = "genre_lab:heartbeat"  # a journal trial's system attr: the time.time() of its last beat


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


def beating_journal(backend: Any, interval: int, grace: int, on_stale: Any) -> Any:
    """A journal storage that keeps trial heartbeats as RDBStorage does, so that ``optuna.storages.
    fail_stale_trials`` works on it too. A beat is a trial system attr holding the beating host's clock: hosts
    that share a journal (NFS) need clocks that agree to well within ``grace`` seconds (NTP does)."""
    import optuna
    from optuna.storages._heartbeat import BaseHeartbeat  # the extension point Optuna's docstring names

    class BeatingJournal(optuna.storages.JournalStorage, BaseHeartbeat):
        def record_heartbeat(self, trial_id: int) -> None:
            with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):  # it ended since it was listed
                self.set_trial_system_attr(trial_id, BEAT, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()  # a trial with no beat yet is never stale (as in RDBStorage)
            return [t._trial_id for t in self.get_all_trials(study_id, deepcopy=False,
                                                             states=(optuna.trial.TrialState.RUNNING,))
                    if now - t.system_attrs.get(BEAT, now) > grace]

        def get_heartbeat_interval(self) -> int:
            return interval

        def get_heartbeat_stale_trial_callback(self) -> Any:
            return on_stale

        get_failed_trial_callback = get_heartbeat_stale_trial_callback  # its older name, which Optuna before 4.9 calls

    return BeatingJournal(backend)


def open_storage(url: str | None, heartbeat: tuple[int, int] | None = None, on_stale: Any = None) -> Any:
    """An Optuna storage object for ``url`` (see the module docstring); with ``heartbeat`` = (interval, grace
    period) it keeps trial heartbeats and calls ``on_stale(study, trial)`` for each trial it finds stale."""
    import optuna  # deferred: train reaches this module (trial_link), and optuna is an optional extra

    if url is None:
        return optuna.storages.InMemoryStorage()
    url = str(url)
    if url.startswith(JOURNAL):
        from optuna.storages.journal import JournalFileBackend  # deferred: as optuna above

        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(str(path))
        if heartbeat is None:
            return optuna.storages.JournalStorage(backend)
        return beating_journal(backend, *heartbeat, on_stale)
    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}} if sqlite_path(url) else None
    with storage_lock(url):
        beats = {} if heartbeat is None else {"heartbeat_interval": heartbeat[0], "grace_period": heartbeat[1],
                                              "heartbeat_stale_trial_callback": on_stale}
        with warnings.catch_warnings():  # heartbeat_interval: experimental since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beats)
