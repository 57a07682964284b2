import json

from genre_lab.runs.layout import RunLayout


def test_read_metrics_is_empty_until_the_run_writes_its_figures(tmp_path):
    layout = RunLayout(tmp_path / "run")
    assert layout.read_metrics() == {}  # not started: no directory at all
    layout.root.mkdir()
    assert layout.read_metrics() == {}  # running or failed: no metrics.json yet
    layout.metrics.write_text(json.dumps({"val/f1_micro": 0.5, "decoder": {"kind": "top_k", "k": 1}}))
    assert layout.read_metrics() == {"val/f1_micro": 0.5, "decoder": {"kind": "top_k", "k": 1}}
    assert layout.metrics == tmp_path / "run" / "metrics.json"
