"""MovieData: a run's data without Lightning — rows, targets and label statistics before any tokenizing."""

import subprocess
import sys

import pytest

from genre_lab.data.movie_data import MovieData
from genre_lab.errors import GenreLabError
from tests.conftest import SAMPLE_CSV
from tests.data.test_datamodule import make_dm


def test_label_stats_need_no_tokenizer():
    """The model's label statistics come from the split rows, before (and without) tokenizing."""
    data = make_dm(tokenizer="/nonexistent/tokenizer").data
    stats = data.label_stats()
    assert not data.splits  # nothing tokenized, and the tokenizer was never loaded
    table, rows = data.stage_rows["train"]
    expected = data.label_space.encode([table.labels[i] for i in rows]).mean(axis=0)
    assert stats.prior == pytest.approx(expected.tolist()) and sum(stats.prior) == pytest.approx(1.0)
    assert stats.rows == len(table) and stats.rows_with_several_genres == 0 and stats.space == data.label_space
    assert stats.pos_weight() == pytest.approx(((1 - expected) / expected).tolist())


def test_built_from_settings_alone_as_eval_rebuilds_a_runs_validation_rows(monkeypatch):
    """The datamodule's settings (as a checkpoint stores them) give the same rows without any Lightning object;
    a relative path is stored absolute (eval may run from another directory)."""
    dm = make_dm()
    monkeypatch.chdir(SAMPLE_CSV.parent)
    data = MovieData({**dict(dm.hparams), "train_csv": SAMPLE_CSV.name})
    assert data.settings["train_csv"] == dm.hparams.train_csv == str(SAMPLE_CSV.resolve())
    assert data.texts_and_targets("val")[2] == dm.data.texts_and_targets("val")[2]


def test_the_data_imports_no_lightning():
    code = "import sys, genre_lab.data.movie_data; assert 'pytorch_lightning' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_settings_are_checked_where_the_data_is_built():
    settings = dict(make_dm().hparams)
    with pytest.raises(GenreLabError, match=r"data.max_length=4 is too short"):
        MovieData({**settings, "max_length": 4})
    with pytest.raises(GenreLabError, match=r"data.val_size=1.5 must be"):
        MovieData({**settings, "val_size": 1.5})
