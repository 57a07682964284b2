"""Token ids cached on disk, keyed by what decides them: the texts (file content through the table spec and
row policies), the tokenizer, max_length and the truncation (which tokens of a long text are kept).

Every job of a sweep and every DDP rank reading the same CSV with the same tokenizer shares one entry:
the first process to get the lock tokenizes and writes (atomically), the others wait and load it. An entry is two
.npy files, the ids (memory-mapped when loaded: the ranks of a node and the jobs of a sweep read one copy from the
page cache instead of each holding its own) and the row offsets (written last: an entry without them is incomplete).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from genre_lab.data.token_rows import kept_tokens
from genre_lab.data.tokens import TokenIds, tokenize, tokenizer_fingerprint
from genre_lab.io import atomic_target

log = logging.getLogger(__name__)
FORMAT = 2  # bump when the cached layout or the tokenize() semantics change (2: .npy pair, memory-mapped)


def texts_digest(texts: Sequence[str]) -> str:
    """Digest of the exact texts to tokenize: covers the file, the template and any rows a policy dropped."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


def cache_key(texts: Sequence[str], tokenizer: Any, max_length: int, truncation: str = "head") -> str:
    parts = {"format": FORMAT, "texts": texts_digest(texts), "tokenizer": tokenizer_fingerprint(tokenizer),
             "max_length": max_length, "truncation": truncation}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]


def cached_tokenize(texts: Sequence[str], name: str, tokenizer: Any, max_length: int,
                    cache_dir: str | Path | None, truncation: str = "head") -> TokenIds:
    """Token ids of every text; from ``cache_dir`` when present there (None: no cache).

    ``name`` says where the texts come from in messages (e.g. ``train.csv``); its stem starts the cache file's
    name, so the entries of one file are easy to find (the key, not the name, decides which entry is used).
    """
    if cache_dir is None:
        return _tokenize_logged(texts, name, tokenizer, max_length, truncation)
    cache_dir = Path(cache_dir).expanduser()
    path = cache_dir / f"{Path(name).stem}-{cache_key(texts, tokenizer, max_length, truncation)}"
    lock = FileLock(str(path) + ".lock")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except OSError as err:  # e.g. a read-only home on a cluster node: slower, not fatal
        log.warning("token cache %s unusable (%s); tokenizing without it", cache_dir, err)
        return _tokenize_logged(texts, name, tokenizer, max_length, truncation)
    try:
        ids = _load_entry(path, len(texts), name) if entry_files(path)[1].is_file() else None
        if ids is not None:
            log.info("%s: token ids of %d rows loaded from cache %s", name, len(ids), path)
            return ids
        ids = _tokenize_logged(texts, name, tokenizer, max_length, truncation)
        _save_entry(path, ids, name)
        return ids
    finally:
        lock.release()


def entry_files(prefix: Path) -> tuple[Path, Path]:
    """The entry's ids and offsets files."""
    return prefix.with_name(prefix.name + ".ids.npy"), prefix.with_name(prefix.name + ".offsets.npy")


def _save_entry(path: Path, ids: TokenIds, name: str) -> None:
    try:
        for target, array in zip(entry_files(path), (ids.flat, ids.offsets), strict=True):  # offsets last
            with atomic_target(target) as tmp, open(tmp, "wb") as handle:
                np.save(handle, array)
        log.info("%s: token ids cached at %s", name, entry_files(path)[0])
    except OSError as err:  # a full disk or a read-only cache: slower next time, not fatal
        log.warning("%s: token ids not cached at %s (%s)", name, path, err)


def _load_entry(path: Path, rows: int, name: str) -> TokenIds | None:
    """The entry's ids, or None when it is truncated, corrupt or not of ``rows`` rows: it is then rebuilt and
    replaced, so one bad file (a killed writer on a filesystem without atomic rename, a disk error) never
    fails every later run."""
    ids_file, offsets_file = entry_files(path)
    try:
        ids = TokenIds(np.load(ids_file, mmap_mode="r"), np.load(offsets_file))
        ids.check()
    except (OSError, EOFError, ValueError) as err:
        log.warning("%s: cache entry %s is unreadable (%s: %s); re-tokenizing and replacing it",
                    name, path, type(err).__name__, err)
        return None
    if len(ids) != rows:
        log.warning("%s: cache entry %s has %d rows, the texts %d; re-tokenizing", name, path, len(ids), rows)
        return None
    return ids


def _tokenize_logged(texts: Sequence[str], name: str, tokenizer: Any, max_length: int, truncation: str) -> TokenIds:
    start = time.perf_counter()
    ids = tokenize(tokenizer, texts, max_length, truncation, progress=True)
    truncated = int((ids.lengths >= max_length).sum())
    log.info("%s: %d rows tokenized in %.2f s (mean %.1f tokens, %d truncated at max_length=%d, keeping %s)",
             name, len(ids), time.perf_counter() - start, ids.lengths.mean() if len(ids) else 0,
             truncated, max_length, kept_tokens(truncation, max_length))
    return ids
