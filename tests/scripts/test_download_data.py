import importlib.util
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "download_data.py"
spec = importlib.util.spec_from_file_location("download_data", SCRIPT)
download_data = importlib.util.module_from_spec(spec)
spec.loader.exec_module(download_data)


def test_convert_writes_the_expected_columns(tmp_path, sample_frame):
    snapshot = tmp_path / "snap" / "data"
    snapshot.mkdir(parents=True)
    sample_frame.assign(extra=1).to_csv(snapshot / "train-00000.csv", index=False)
    sample_frame.drop(columns="genre").head(5).to_csv(snapshot / "test-00000.csv", index=False)
    written = download_data.convert(tmp_path / "snap", tmp_path / "out")
    assert [p.name for p in written] == ["train.csv", "test.csv"]
    train = pd.read_csv(tmp_path / "out" / "train.csv")
    assert list(train.columns) == ["id", "movie_name", "synopsis", "genre"] and len(train) == 400
    assert list(pd.read_csv(tmp_path / "out" / "test.csv").columns) == ["id", "movie_name", "synopsis"]


def test_convert_rejects_a_snapshot_without_the_columns(tmp_path):
    (tmp_path / "snap").mkdir()
    pd.DataFrame({"text": ["x"], "label": [1]}).to_csv(tmp_path / "snap" / "train.csv", index=False)
    with pytest.raises(SystemExit, match=r"lack columns \['id', 'movie_name', 'synopsis', 'genre'\]"):
        download_data.convert(tmp_path / "snap", tmp_path / "out")


def test_offline_download_fails_with_a_clear_message(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "This needs internet" in result.stderr and "experiment=quickstart" in result.stderr
    assert not (tmp_path / "out").exists()
