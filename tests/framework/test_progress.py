"""Long work reports its progress: a bar on a terminal, log lines with rows/s and ETA in a log file."""

import io
import itertools
import logging

from genre_lab.framework.progress import RowProgress, duration


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(stream, interval, caplog, total=5000, batch=500, seconds_per_batch=5.0):
    clock = itertools.count(0.0, seconds_per_batch)
    bar = RowProgress(total, "predicting", interval=interval, stream=stream, clock=lambda: next(clock))
    with caplog.at_level(logging.INFO, logger="genre_lab.framework.progress"), bar:
        for _ in range(total // batch):
            bar.advance(batch)
    return [r.getMessage() for r in caplog.records if r.name == "genre_lab.framework.progress"]


def test_off_a_terminal_it_logs_rows_rate_and_eta_every_interval(caplog):
    lines = run(io.StringIO(), interval=10.0, caplog=caplog)
    # 100 rows/s (500 rows per 5 s): a line every 10 s of the clock, then one for the end
    assert lines[0] == "predicting: 1,000/5,000 rows (20%), 100.0 rows/s, ETA 40 s"
    assert lines[1] == "predicting: 2,000/5,000 rows (40%), 100.0 rows/s, ETA 30 s"
    assert len(lines) == 5 and lines[-1] == "predicting: 5,000 rows in 55 s"


def test_short_work_and_a_terminal_log_nothing(caplog):
    assert run(io.StringIO(), interval=3600.0, caplog=caplog) == []  # shorter than the interval: silent
    assert run(Terminal(), interval=0.0, caplog=caplog) == []  # rich's bar shows it there


def test_duration_reads_like_the_readme():
    assert [duration(s) for s in (7.4, 83, 3725)] == ["7 s", "1 m 23 s", "1 h 02 m"]
