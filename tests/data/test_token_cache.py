import logging

import numpy as np
import pandas as pd
import pytest

from genre_lab.backbones import load_tokenizer
from genre_lab.data.table import TableSpec, read_table
from genre_lab.data.token_cache import cache_key, cached_tokenize
from genre_lab.data.tokens import tokenize


def test_second_call_loads_from_cache_and_gives_the_same_ids(tmp_path, small_csv, caplog):
    spec, tokenizer = TableSpec(), load_tokenizer("tiny")
    table = read_table(small_csv, spec)
    with caplog.at_level(logging.INFO, logger="genre_lab.data.token_cache"):
        first = cached_tokenize(table.texts, table.path.name, tokenizer, 64, tmp_path / "cache")
        assert "tokenized" in caplog.text and "loaded from cache" not in caplog.text
        caplog.clear()
        second = cached_tokenize(table.texts, table.path.name, tokenizer, 64, tmp_path / "cache")
    assert "loaded from cache" in caplog.text
    assert (first.flat == second.flat).all() and (first.offsets == second.offsets).all()
    assert isinstance(second.flat, np.memmap)  # read from the page cache, one copy for every process
    assert len(list((tmp_path / "cache").glob("*.offsets.npy"))) == 1


def test_texts_need_no_table_and_the_name_gives_the_file_stem_and_the_messages(tmp_path, small_csv, caplog):
    """Any texts (a predict input, eval's rows) are cached as a table's are; the name only labels the entry."""
    tokenizer = load_tokenizer("tiny")
    texts = ("A haunted lighthouse.", "Two rival chefs fall in love.", "A heist on the moon.")
    with caplog.at_level(logging.INFO, logger="genre_lab.data.token_cache"):
        ids = cached_tokenize(texts, "new_rows.csv", tokenizer, 64, tmp_path / "cache")
    assert "new_rows.csv: 3 rows tokenized" in caplog.text
    (entry,) = (tmp_path / "cache").glob("*.offsets.npy")
    assert entry.name == f"new_rows-{cache_key(texts, tokenizer, 64)}.offsets.npy"
    expected = tokenize(tokenizer, list(texts), 64)
    assert (ids.flat == expected.flat).all() and (ids.offsets == expected.offsets).all()
    table = read_table(small_csv, TableSpec())  # a table's entry is named <file stem>-<key>.{ids,offsets}.npy
    cached_tokenize(table.texts, table.path.name, tokenizer, 64, tmp_path / "cache")
    assert (tmp_path / "cache" / f"{small_csv.stem}-{cache_key(table.texts, tokenizer, 64)}.ids.npy").is_file()
    assert len(cached_tokenize([], "none", tokenizer, 64, None)) == 0


def test_key_follows_texts_tokenizer_and_length(tmp_path, small_csv):
    tokenizer = load_tokenizer("tiny")
    table = read_table(small_csv, TableSpec())
    base = cache_key(table.texts, tokenizer, 64)
    assert cache_key(read_table(small_csv, TableSpec()).texts, tokenizer, 64) == base
    assert cache_key(table.texts, tokenizer, 32) != base
    assert cache_key(read_table(small_csv, TableSpec(text_template="{movie_name}")).texts, tokenizer, 64) != base
    edited = tmp_path / "edited.csv"
    frame = pd.read_csv(small_csv, dtype=str, keep_default_na=False)
    frame.loc[0, "synopsis"] = "A different story altogether."
    frame.to_csv(edited, index=False)
    assert cache_key(read_table(edited, TableSpec()).texts, tokenizer, 64) != base
    fewer = read_table(small_csv, TableSpec())
    fewer.texts.pop()  # rows a policy dropped (e.g. unseen_labels=ignore): another entry
    assert cache_key(fewer.texts, tokenizer, 64) != base
    other = load_tokenizer("tiny")
    other.backend_tokenizer.normalizer = None  # lowercasing off: other ids, other key
    assert cache_key(table.texts, other, 64) != base


def test_key_and_entry_follow_the_truncation(tmp_path, small_csv):
    tokenizer = load_tokenizer("tiny")
    table = read_table(small_csv, TableSpec())
    keys = {t: cache_key(table.texts, tokenizer, 16, t) for t in ("head", "tail", "head+tail")}
    assert len(set(keys.values())) == 3 and cache_key(table.texts, tokenizer, 16) == keys["head"]
    head = cached_tokenize(table.texts, table.path.name, tokenizer, 16, tmp_path / "cache")
    tail = cached_tokenize(table.texts, table.path.name, tokenizer, 16, tmp_path / "cache", "tail")
    assert len(list((tmp_path / "cache").glob("*.offsets.npy"))) == 2
    assert list(tail[0]) == list(tokenize(tokenizer, table.texts[:1], 16, "tail")[0]) != list(head[0])


def test_unusable_cache_dir_falls_back_to_tokenizing(tmp_path, small_csv, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    table = read_table(small_csv, TableSpec())
    ids = cached_tokenize(table.texts, table.path.name, load_tokenizer("tiny"), 64, blocker / "cache")
    assert len(ids) == len(table) and "unusable" in caplog.text


@pytest.mark.process  # subprocesses: the process suite
def test_concurrent_processes_tokenize_once_and_share_the_entry(tmp_path, small_csv):
    """What DDP ranks started together (torchrun) or parallel sweep jobs do: one tokenizes, the other loads."""
    import os
    import subprocess
    import sys

    code = (
        "import logging, sys\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout)\n"
        "from genre_lab.data.table import TableSpec, read_table\n"
        "from genre_lab.data.token_cache import cached_tokenize\n"
        "from genre_lab.backbones import load_tokenizer\n"
        f"table = read_table({str(small_csv)!r}, TableSpec())\n"
        "tokenizer = load_tokenizer('tiny')\n"
        f"print(len(cached_tokenize(table.texts, table.path.name, tokenizer, 64, {str(tmp_path / 'cache')!r})))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=dict(os.environ)) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    joined = "".join(outputs)
    assert joined.count("rows tokenized") == 1 and joined.count("loaded from cache") == 1, joined
    assert len(list((tmp_path / "cache").glob("*.offsets.npy"))) == 1


@pytest.mark.parametrize("damage", ["truncated", "garbage", "inconsistent"])
def test_a_corrupt_entry_is_rebuilt_with_a_warning_and_replaced(tmp_path, small_csv, caplog, damage):
    import numpy as np

    table, tokenizer = read_table(small_csv, TableSpec()), load_tokenizer("tiny")
    good = cached_tokenize(table.texts, table.path.name, tokenizer, 64, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.offsets.npy")
    ids_file = entry.with_name(entry.name.replace(".offsets.npy", ".ids.npy"))
    if damage == "truncated":  # a writer killed mid-file where rename is not atomic, a disk error
        ids_file.write_bytes(ids_file.read_bytes()[: ids_file.stat().st_size // 2])
    elif damage == "garbage":
        entry.write_bytes(b"not an npy file")
    else:
        np.save(entry, good.offsets + 1)
    with caplog.at_level(logging.INFO, logger="genre_lab.data.token_cache"):
        rebuilt = cached_tokenize(table.texts, table.path.name, tokenizer, 64, tmp_path / "cache")
        assert "re-tokenizing and replacing it" in caplog.text
        caplog.clear()
        # later runs: the entry works again
        again = cached_tokenize(table.texts, table.path.name, tokenizer, 64, tmp_path / "cache")
    assert "loaded from cache" in caplog.text
    for ids in (rebuilt, again):
        assert (ids.flat == good.flat).all() and (ids.offsets == good.offsets).all()


def test_an_entry_that_cannot_be_written_only_costs_the_cache(tmp_path, small_csv, caplog, monkeypatch):
    import errno

    from genre_lab.data import token_cache

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(token_cache, "atomic_target", full)
    table = read_table(small_csv, TableSpec())
    ids = cached_tokenize(table.texts, table.path.name, load_tokenizer("tiny"), 64, tmp_path / "cache")
    assert len(ids) == len(table) and "not cached" in caplog.text and "No space left" in caplog.text


def test_a_cache_dir_without_write_access_falls_back_to_tokenizing(tmp_path, small_csv, caplog, monkeypatch):
    import errno

    from genre_lab.data import token_cache

    def refused(self, *args, **kwargs):  # what filelock raises in a directory the user cannot write
        raise PermissionError(errno.EACCES, "Permission denied", self.lock_file)

    monkeypatch.setattr(token_cache.FileLock, "acquire", refused)
    table = read_table(small_csv, TableSpec())
    ids = cached_tokenize(table.texts, table.path.name, load_tokenizer("tiny"), 64, tmp_path / "cache")
    assert len(ids) == len(table) and "unusable" in caplog.text and "Permission denied" in caplog.text
