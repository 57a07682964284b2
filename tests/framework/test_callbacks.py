"""Our Lightning callbacks' own logic (their effect on training runs is tested through train and the sweeps)."""

import os
import subprocess
import sys
import time

from genre_lab.framework.callbacks import StopWithSweeper, alive


def test_alive_tells_a_running_process_from_an_ended_or_zombie_one():
    assert alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while alive(child.pid) and time.monotonic() < deadline:  # ended but not reaped: a zombie
        time.sleep(0.05)
    assert not alive(child.pid)
    child.wait()
    assert not alive(child.pid)  # reaped: no such process


def test_a_sweep_job_watches_its_sweeper_only_when_started_by_one(monkeypatch):
    monkeypatch.delenv("GENRE_LAB_SWEEPER_PID", raising=False)
    assert StopWithSweeper.from_environment() is None
    monkeypatch.setenv("GENRE_LAB_SWEEPER_PID", "1234")
    assert StopWithSweeper.from_environment().pid == 1234
