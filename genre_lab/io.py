"""Files written atomically: a reader (or a crash) never sees half a file, and the old one stays valid."""

from __future__ import annotations

import csv
import glob
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class OutputTaken(FileExistsError):
    """The output name was taken by another process after the caller checked it; what is there is kept. Its own
    class, so commands report this race and not any FileExistsError raised while they worked."""


@contextmanager
def atomic_target(path: str | Path, replace: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path``; once the block has written it, fsync and rename over ``path``.
    ``replace=False``: raise OutputTaken, keeping the file there, if ``path`` exists by then (another process
    may have written it since the caller checked)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(path, lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)), ".tmp")
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _publish_new(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _publish_new(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` only if no file has it: a hard link is created atomically or not at all."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputTaken(path) from None
    except OSError:  # a file system without hard links: check, then rename (a small window remains)
        if path.exists():
            raise OutputTaken(path) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def publish_folder(tmp: Path, out: Path, replace: bool) -> None:
    """Rename the finished folder ``tmp`` to ``out``. Without ``replace`` only an absent or empty ``out`` is taken
    (rename does that atomically); one that another process filled meanwhile raises OutputTaken and is kept."""
    if replace and out.is_dir() and any(out.iterdir()):
        shutil.rmtree(out)
    try:
        os.rename(tmp, out)
    except OSError as err:  # ENOTEMPTY / EEXIST: a non-empty folder; ENOTDIR: a file took the name
        if out.exists():
            raise OutputTaken(out) from err
        raise


def temp_dir_beside(path: str | Path) -> Path:
    """A new empty directory next to ``path`` (same file system, so it can be renamed onto ``path``)."""
    return _create_beside(Path(path), lambda p: os.mkdir(p, 0o777), "")


def remove_stale_temps(path: str | Path, older_than_s: float) -> None:
    """Remove the temp siblings of ``path`` (temp_dir_beside's names) not touched for ``older_than_s`` seconds:
    what builds killed before their rename (SIGKILL, OOM, preemption) left behind. Only for outputs whose builds
    take far less than that, so a live build is never removed."""
    path = Path(path)
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*"):
        try:
            stale = time.time() - temp.stat().st_mtime > older_than_s
        except FileNotFoundError:  # removed meanwhile by its build or another cleaner
            continue
        if stale and temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        elif stale:
            temp.unlink(missing_ok=True)


def _create_beside(path: Path, create: Any, suffix: str) -> Path:
    """Create a uniquely named sibling of ``path`` with ``create``. Unlike mkstemp/mkdtemp (0600/0700), the
    modes passed here go through the umask, so colleagues and serving containers can read what we write."""
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{secrets.token_hex(4)}{suffix}"
        try:
            create(candidate)
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a temporary file beside {path}")


def current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def honour_umask(folder: str | Path) -> None:
    """Give everything under ``folder`` the modes a plain file or directory gets under the umask: some writers
    (transformers' safetensors save) create files 0600, unreadable by colleagues or a serving container."""
    mask = current_umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_target(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_csv(path: str | Path, rows: Sequence[dict[str, Any]]) -> Path:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def same_file(a: str | Path, b: str | Path) -> bool:
    """The same file or folder, also through symlinks, relative paths or hard links (either may not exist yet)."""
    a, b = Path(a), Path(b)
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, read in blocks; of a folder (a saved dataset), of its files' names and bytes."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        digest.update(str(file.relative_to(path)).encode() if file != path else b"")
        with open(file, "rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def exit_code_of(signum: int) -> BaseException:
    return SystemExit(128 + signum)


@contextmanager
def sigterm_raises(error: Callable[[int], BaseException] = exit_code_of) -> Iterator[None]:
    """Inside the block SIGTERM raises ``error(signum)`` in the main thread (by default SystemExit(143)), so
    ``finally`` blocks and atomic writes clean up (a killed predict leaves neither its output nor a temporary file);
    the old handler is put back. Elsewhere than the main thread signals stay as they are."""
    def stop(signum: int, _: Any) -> None:
        raise error(signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a test, an embedding app)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
