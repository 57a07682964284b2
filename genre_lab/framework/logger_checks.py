"""Checks made before loggers start: a logger folder no run could write is a user error, and a remote logger's
server that does not answer is left out within seconds (once per sweep) instead of being retried for minutes."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from genre_lab.errors import GenreLabError, in_multirun

log = logging.getLogger(__name__)

# A remote logger's server is asked once, for this long, before the logger starts: MLflow's client otherwise
# retries an unreachable server for ~4 minutes, W&B's init for ~90 s.
PROBE_TIMEOUT_S = 3.0
# In a multirun, a server found unreachable is not probed again by the sweep's jobs for this long (a marker file
# in the sweep directory, seen by launchers that run jobs in other processes too); later it is: it may be back.
REMEMBER_S = 600.0
# Logger settings that name a local folder (or, for MLflow, a file: or sqlite: URI): checked before any starts.
PATH_KEYS = ("save_dir", "dir", "log_dir", "root_dir", "repo", "offline_directory", "tracking_uri",
             "artifact_location")


def check_logger_paths(group: DictConfig | None) -> None:
    """GenreLabError naming the setting, the path and why, for a logger folder that cannot be created or written
    (as for every unusable path): the loggers would fail later with a traceback, some after training."""
    for name, config in (group or {}).items():
        if config is None or "_target_" not in config:
            continue
        for key in PATH_KEYS:
            value = config.get(key)
            folder = local_folder(value)
            why = unusable_folder(folder) if folder is not None else None
            if why:
                raise GenreLabError(f"logger.{name}.{key}={value} cannot be used: {why}; give a folder that can be "
                                    "created and written")


def local_folder(value: Any) -> Path | None:
    """The local folder a path setting names: a plain path, a file: URI, or a sqlite: URI's database folder;
    None for anything else (http:, databricks, a service's URI, null)."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        return None
    text = str(value)
    scheme = urlsplit(text).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        return Path(urlsplit(text).path if scheme == "file" else text)
    if scheme.startswith("sqlite") and ":///" in text:  # sqlite:///<relative>, sqlite:////<absolute>
        database = text.split(":///", 1)[1].split("?", 1)[0]
        return Path(database).parent if database and database != ":memory:" else None
    return None


def unusable_folder(folder: Path) -> str | None:
    """Why ``folder`` cannot be created and written (None when it can): its nearest existing part must be a
    writable folder. Checked without creating anything."""
    for part in (folder, *folder.parents):
        if not part.exists():  # False also when a part above is a file (ENOTDIR)
            continue
        if not part.is_dir():
            return f"{part} is not a folder"
        if not os.access(part, os.W_OK | os.X_OK):
            return f"{part} is not writable"
        return None
    return None


def service_url(config: DictConfig) -> str | None:
    """The http(s) server a remote logger's config talks to, when it names one: MLflow's tracking URI, or W&B's
    WANDB_BASE_URL when W&B is online (its default server, and servers set in W&B's own settings files, are
    left to W&B)."""
    target = str(config._target_)
    if target.endswith("MLFlowLogger"):
        url = config.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    elif target.endswith("WandbLogger"):
        modes = {str(config.get("mode") or ""), os.environ.get("WANDB_MODE", "")}
        offline = config.get("offline") or modes & {"offline", "disabled", "dryrun"}
        url = None if offline else os.environ.get("WANDB_BASE_URL")
    else:
        return None
    return url if url and urlsplit(str(url)).scheme.lower() in ("http", "https") else None


def service_reachable(name: str, url: str) -> bool:
    """Whether ``url``'s server answers; when not, one warning, and in a multirun a marker, so that the sweep's
    next jobs skip the logger with a note instead of asking again."""
    server = urlsplit(url).netloc
    marker = _sweep_marker(server)
    if marker is not None and marker.is_file() and time.time() - marker.stat().st_mtime < REMEMBER_S:
        log.warning("logger %r is left out: %s did not answer an earlier job of this sweep (%s)", name, server,
                    marker.read_text().strip())
        return False
    why = probe(url)
    if why is None:
        return True
    log.warning("logger %r could not start and is left out; the run goes on without it (%s did not answer: %s)",
                name, url, why)
    if marker is not None:
        with contextlib.suppress(OSError):  # the note only saves later jobs a probe
            marker.write_text(why + "\n")
    return False


def without_credentials(url: str) -> str:
    """``url`` without a user:password@ part: neither sent with the probe nor written to the log."""
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def probe(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when ``url``'s server answers one HTTP request (any status) within ``timeout`` seconds, else why not.
    An HTTP answer, not just a TCP connect: some networks accept every connection and never answer. Through the
    proxy requests would use (urllib reads the same variables); in a daemon thread, since a name lookup has no
    timeout of its own."""
    outcome = [f"no answer within {timeout:g} s"]

    def ask() -> None:
        try:
            urllib.request.urlopen(url, timeout=timeout).close()
            outcome[0] = ""
        except urllib.error.HTTPError as err:  # an error status is an answer: the server is there
            err.close()
            outcome[0] = ""
        except urllib.error.URLError as err:  # a certificate MLflow may be told to accept is an answer too
            outcome[0] = "" if isinstance(err.reason, ssl.SSLError) else f"{type(err.reason).__name__}: {err.reason}"
        except Exception as err:  # a timeout, a reset, something that does not speak HTTP
            outcome[0] = f"{type(err).__name__}: {err}"

    thread = threading.Thread(target=ask, name="genre-lab-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] or None


def _sweep_marker(server: str) -> Path | None:
    """In a multirun, the sweep directory's note that ``server`` (host:port) did not answer."""
    if not in_multirun():
        return None
    safe_name = re.sub(r"[^\w.-]", "_", server)  # a port's or an IPv6 address's colons
    return Path(HydraConfig.get().sweep.dir) / f".unreachable-{safe_name}"
