"""Atomic writes: a save that dies after writing its temp file, or mid-write (disk full), leaves the previous
checkpoint / result file intact and loadable, and leaves no temp file behind."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch

import genre_lab.runs.checkpoint
from genre_lab.io import OutputTaken, atomic_target, publish_folder, remove_stale_temps, sigterm_raises, write_json
from genre_lab.runs.checkpoint import AtomicCheckpointIO, store_in_checkpoint
from genre_lab.runs.finished import Run


@pytest.fixture
def ckpt(trained_run, tmp_path) -> Path:
    path = tmp_path / "checkpoints" / "best.ckpt"
    path.parent.mkdir()
    shutil.copy(trained_run / "checkpoints" / "best.ckpt", path)
    return path


def fail_rename(monkeypatch) -> list[int]:
    """os.replace raises ENOSPC; returns the sizes of the temp files it was handed (all fully written)."""
    sizes: list[int] = []

    def rename(src, dst):
        sizes.append(Path(src).stat().st_size)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", rename)
    return sizes


def logits(path: Path) -> torch.Tensor:
    model = Run(path, None).model
    with torch.no_grad():
        return model(torch.tensor([[2, 50, 60, 70, 3]]), torch.ones(1, 5, dtype=torch.long))


def test_checkpoint_save_dying_before_the_rename_keeps_the_old_checkpoint(ckpt, monkeypatch):
    before, old_logits = ckpt.read_bytes(), logits(ckpt)
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["state_dict"] = {k: torch.zeros_like(v) for k, v in checkpoint["state_dict"].items()}
    sizes = fail_rename(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        AtomicCheckpointIO().save_checkpoint(checkpoint, ckpt)
    monkeypatch.undo()
    assert sizes and sizes[0] > len(before) // 2  # the new checkpoint was completely written to its temp file
    assert ckpt.read_bytes() == before and list(ckpt.parent.iterdir()) == [ckpt]
    assert torch.equal(logits(ckpt), old_logits)  # the old checkpoint still loads and predicts as before


def test_checkpoint_save_dying_mid_write_keeps_the_old_checkpoint(ckpt, monkeypatch):
    before = ckpt.read_bytes()

    def disk_full(obj, target):
        Path(target).write_bytes(before[:1000])  # half a file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(genre_lab.runs.checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {}}, ckpt)
    monkeypatch.undo()
    assert ckpt.read_bytes() == before and list(ckpt.parent.iterdir()) == [ckpt]
    assert Run(ckpt, None).model.label_space.names


def test_storing_tuned_thresholds_atomically(ckpt, monkeypatch):
    old = Run(ckpt, None).checkpoint["decoder"]
    fail_rename(monkeypatch)
    with pytest.raises(OSError):
        store_in_checkpoint(ckpt, decoder={"threshold": 0.3, "top_k": None, "at_least_one": False})
    monkeypatch.undo()
    assert Run(ckpt, None).checkpoint["decoder"] == old and list(ckpt.parent.iterdir()) == [ckpt]
    store_in_checkpoint(ckpt, decoder={"threshold": 0.3, "top_k": None, "at_least_one": False})
    assert Run(ckpt, None).model.decoder.threshold == 0.3


def test_result_file_write_dying_keeps_the_old_file(tmp_path, monkeypatch):
    path = write_json(tmp_path / "metrics.json", {"val/f1_micro": 0.5})
    fail_rename(monkeypatch)
    with pytest.raises(OSError):
        write_json(path, {"val/f1_micro": 0.9})
    monkeypatch.undo()
    assert path.read_text() == '{\n  "val/f1_micro": 0.5\n}\n' and list(tmp_path.iterdir()) == [path]


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_writes_honour_the_umask(tmp_path, umask_022, trained_run):
    from genre_lab.export import export
    from genre_lab.io import temp_dir_beside
    from tests.conftest import compose_cfg

    assert (write_json(tmp_path / "metrics.json", {}).stat().st_mode & 0o777) == 0o644
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", weights_only=True)
    AtomicCheckpointIO().save_checkpoint(checkpoint, tmp_path / "best.ckpt")
    assert ((tmp_path / "best.ckpt").stat().st_mode & 0o777) == 0o644
    assert (temp_dir_beside(tmp_path / "folder").stat().st_mode & 0o777) == 0o755
    out = export(compose_cfg("export", [f"run_dir={trained_run}", f"out={tmp_path / 'exported'}"], tmp_path / "e"))
    assert (out.stat().st_mode & 0o777) == 0o755
    assert {p.stat().st_mode & 0o777 for p in out.iterdir()} == {0o644}
    os.umask(0o077)  # a private umask is honoured as well
    assert (write_json(tmp_path / "private.json", {}).stat().st_mode & 0o777) == 0o600


def test_sigterm_inside_sigterm_raises_unwinds_and_an_atomic_target_leaves_nothing(tmp_path):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, sigterm_raises(), atomic_target(tmp_path / "out.csv") as tmp:
        tmp.write_text("half a file")
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises at the next bytecode
    assert stopped.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_target_that_must_not_replace_keeps_a_file_that_appeared_meanwhile(tmp_path):
    path = tmp_path / "out.csv"
    with pytest.raises(OutputTaken), atomic_target(path, replace=False) as tmp:
        tmp.write_text("ours")
        path.write_text("theirs")
    assert path.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    path.unlink()
    with atomic_target(path, replace=False) as tmp:
        tmp.write_text("ours")
    assert path.read_text() == "ours" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def _finished_folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / f".tmp_{text}"
    folder.mkdir()
    (folder / "model.txt").write_text(text)
    return folder


@pytest.mark.parametrize("before", ["absent", "empty"])
def test_a_published_folder_takes_an_absent_or_empty_name(tmp_path, before):
    out = tmp_path / "out"
    if before == "empty":
        out.mkdir()
    publish_folder(_finished_folder(tmp_path, "ours"), out, replace=False)
    assert (out / "model.txt").read_text() == "ours" and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_published_folder_keeps_one_filled_meanwhile_unless_told_to_replace(tmp_path):
    out = tmp_path / "out"
    publish_folder(_finished_folder(tmp_path, "theirs"), out, replace=False)
    ours = _finished_folder(tmp_path, "ours")
    with pytest.raises(OutputTaken):
        publish_folder(ours, out, replace=False)
    assert (out / "model.txt").read_text() == "theirs" and (ours / "model.txt").exists()
    publish_folder(ours, out, replace=True)
    assert (out / "model.txt").read_text() == "ours" and not ours.exists()


def test_stale_temp_siblings_are_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "backbone"
    stale_dir, stale_file = tmp_path / ".backbone.0a0a0a0a", tmp_path / ".backbone.1b1b1b1b.tmp"
    live, other = tmp_path / ".backbone.2c2c2c2c", tmp_path / ".backbones.3d3d3d3d"
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "weights.bin").write_bytes(b"x" * 100)
    for path in (stale_file, other):
        path.write_text("x")
    live.mkdir()
    hour_ago = time.time() - 3700
    for path in (stale_dir, stale_file, other):
        os.utime(path, (hour_ago, hour_ago))
    remove_stale_temps(out, older_than_s=3600)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".backbone.2c2c2c2c", ".backbones.3d3d3d3d"]
