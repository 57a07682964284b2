"""Runs written by genre_lab at f925feb (the main before issue 24 moved the modules) still load and work today.

tests/fixtures/legacy_f925feb holds what that commit's own CLI wrote (its README says how): a tiny transformer
run, a TF-IDF baseline run and their ensemble, trained on the fixture's movies.csv. Their checkpoints and configs
name f925feb's module paths (``genre_lab.baseline.TfidfLogReg``, ``genre_lab.decoding.Decoder``, …) and absolute
paths of the folder they were written in (/tmp/legacy_f925feb: the training CSV, the backbone, the members), none
of which exists here: eval scores an explicit ``input_csv=``, the runs' validation rows, so every figure and
probability the old runs stored must come back.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genre_lab.data.table import build_text
from genre_lab.evaluate import evaluate
from genre_lab.export import export
from genre_lab.predict import predict
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.figure_names import HEADLINE
from tests.conftest import REPO, compose_cfg, genre_lab_here

FIXTURE = REPO / "tests" / "fixtures" / "legacy_f925feb"
WRITTEN_IN = "/tmp/legacy_f925feb"  # where make_fixture.sh wrote the runs: the paths stored inside name it
RUNS = ("tiny", "tfidf", "ensemble")
MODEL_FILES = {"tiny": "checkpoints/best.ckpt", "tfidf": "checkpoints/model.skops", "ensemble": "ensemble.json"}
GENRES = ["family", "horror", "romance", "scifi"]


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> Path:
    """A copy of the fixture (eval and the ensemble write caches into run directories; the checkout stays clean).
    An ensemble stores its members' absolute paths (genre-lab ensemble resolves runs=[…] when it writes
    ensemble.json, and eval/predict pass each to ``locate`` as it is, so a relative one would be read against the
    working directory): they are pointed at the copy, as a user who moves the three runs has to."""
    root = tmp_path_factory.mktemp("legacy") / "legacy_f925feb"
    shutil.copytree(FIXTURE, root)
    definition = root / "runs" / "ensemble" / "ensemble.json"
    saved = json.loads(definition.read_text())
    assert saved["members"] == [f"{WRITTEN_IN}/runs/tiny", f"{WRITTEN_IN}/runs/tfidf"]
    saved["members"] = [str(root / "runs" / "tiny"), str(root / "runs" / "tfidf")]
    definition.write_text(json.dumps(saved, indent=2))
    return root


@pytest.fixture(scope="module")
def val_csv(legacy) -> Path:
    """The old runs' 8 validation rows (val_probs.npz order; all three share them), as a labelled CSV."""
    ids = [str(i) for i in StoredProbs.load(legacy / "runs" / "tiny" / "val_probs.npz").movie_ids]
    frame = pd.read_csv(legacy / "movies.csv", dtype=str, keep_default_na=False).set_index("id")
    path = legacy / "val_rows.csv"
    frame.loc[ids].reset_index().to_csv(path, index=False)
    return path


def old_metrics(legacy: Path, run: str) -> dict:
    return json.loads((legacy / "runs" / run / "metrics.json").read_text())


def test_the_fixture_was_written_by_f925feb_and_names_its_module_paths():
    """What makes the fixture a test of old runs: the module paths issue 24 moved are inside it."""
    old_targets = {"tiny": "genre_lab.run_layout.best_checkpoint", "tfidf": "genre_lab.baseline.TfidfLogReg",
                   "ensemble": "genre_lab.decoding.Decoder"}
    for run, target in old_targets.items():
        assert f"_target_: {target}" in (FIXTURE / "runs" / run / ".hydra" / "config.yaml").read_text(), run
    assert not Path(WRITTEN_IN).exists(), f"{WRITTEN_IN} exists: the test would not show that the runs stand alone"


@pytest.mark.parametrize("run", RUNS)
def test_eval_and_predict_give_the_old_runs_figures_and_probabilities(legacy, val_csv, tmp_path, run):
    """eval (run_dir=) reproduces the validation figures and decision rule the old run stored; predict (ckpt_path=,
    the model file) gives, row for row, the probabilities in its val_probs.npz and eval's decisions."""
    trained, stored = old_metrics(legacy, run), StoredProbs.load(legacy / "runs" / run / "val_probs.npz")
    assert list(stored.labels) == GENRES
    metrics = evaluate(compose_cfg("eval", [f"run_dir={legacy / 'runs' / run}", f"input_csv={val_csv}",
                                            "cache=false", "plots=false"], tmp_path / "e"))
    assert metrics["rows"] == 8 and metrics["probabilities"] == "computed"
    for name in HEADLINE:
        assert math.isfinite(metrics[f"eval/{name}"]), name
        assert metrics[f"eval/{name}"] == pytest.approx(trained[f"val/{name}"], abs=1e-6), name
    assert metrics["decoder"] == trained["decoder"]
    per_class = pd.read_csv(tmp_path / "e" / "per_class.csv")
    assert per_class.genre.tolist() == GENRES and per_class.support.tolist() == [2, 2, 2, 2]
    old_per_class = pd.read_csv(legacy / "runs" / run / "per_class.csv")
    np.testing.assert_allclose(per_class[["precision", "recall", "f1"]], old_per_class[["precision", "recall", "f1"]],
                               atol=1e-6)

    result = predict(compose_cfg("predict", [f"ckpt_path={legacy / 'runs' / run / MODEL_FILES[run]}",
                                             f"input_csv={val_csv}"], tmp_path / "p"))
    assert result.id.astype(str).tolist() == [str(i) for i in stored.movie_ids] and (result.status == "ok").all()
    np.testing.assert_allclose(result[[f"prob_{n}" for n in GENRES]].to_numpy(), stored.probs, atol=1e-6)
    decisions = pd.read_csv(tmp_path / "e" / "decisions.csv", dtype=str, keep_default_na=False)
    assert decisions.id.tolist() == result.id.astype(str).tolist()
    assert result.genres.fillna("").tolist() == decisions.predicted.tolist()


def test_predict_one_movie_of_each_old_run_through_the_cli(legacy, tmp_path):
    for run in RUNS:
        one = genre_lab_here("predict", f"run_dir={legacy / 'runs' / run}", "synopsis=A ghost haunts a lighthouse.",
                             "movie_name=Night Watch", f"hydra.run.dir={tmp_path / run}", cwd=tmp_path)
        assert one.returncode == 0, one.stderr[-3000:]
        written = pd.read_csv(tmp_path / run / "predictions.csv", keep_default_na=False)
        assert written.status.tolist() == ["ok"]
        probs = written[[f"prob_{n}" for n in GENRES]].to_numpy()
        assert np.isfinite(probs).all() and ((probs > 0) & (probs < 1)).all(), run


def test_compare_lists_the_old_runs_with_their_figures_and_pairs_them(legacy, tmp_path):
    ranked = genre_lab_here("compare", str(legacy / "runs"), "--out", str(tmp_path / "cmp"), cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    assert sorted(table.index) == sorted(str(legacy / "runs" / run) for run in RUNS)
    assert (table.status == "ok").all() and (table.val_rows == 8).all()
    assert table.val_set.nunique() == 1  # one set of validation rows: the three compare row by row
    for run in RUNS:
        for name in HEADLINE:
            assert table.loc[str(legacy / "runs" / run), f"val/{name}"] == pytest.approx(
                old_metrics(legacy, run)[f"val/{name}"], abs=1e-6), (run, name)
    assert table.loc[str(legacy / "runs" / "ensemble"), "checkpoint"].endswith("ensemble.json")

    paired = genre_lab_here("compare", str(legacy / "runs" / "tiny"), str(legacy / "runs" / "ensemble"), "--paired",
                            "--out", str(tmp_path / "paired"), cwd=tmp_path)
    assert paired.returncode == 0, paired.stderr[-3000:]
    figures = pd.read_csv(tmp_path / "paired" / "paired.csv").set_index("figure")
    for name in ("f1_micro", "top1_accuracy"):
        assert figures.loc[name, "A"] == pytest.approx(old_metrics(legacy, "tiny")[f"val/{name}"], abs=1e-6)
        assert figures.loc[name, "B"] == pytest.approx(old_metrics(legacy, "ensemble")[f"val/{name}"], abs=1e-6)


def test_export_of_the_old_transformer_run_gives_its_probabilities_in_transformers(legacy, val_csv, tmp_path):
    from transformers import AutoModelForSequenceClassification, pipeline

    out = tmp_path / "hf"
    export(compose_cfg("export", [f"run_dir={legacy / 'runs' / 'tiny'}", f"out={out}"], tmp_path / "x"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert names == GENRES and model.config.problem_type == "multi_label_classification"
    saved = json.loads((out / "thresholds.json").read_text())
    assert saved["labels"] == GENRES and saved["decoder"] == old_metrics(legacy, "tiny")["decoder"]
    rows = pd.read_csv(val_csv, dtype=str, keep_default_na=False)
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    classifier = pipeline("text-classification", model=str(out), top_k=None, device="cpu")
    # these texts are longer than the run's max_length (64): the exported tokenizer cuts them as the run did
    theirs = [{s["label"]: s["score"] for s in scores} for scores in classifier(texts, truncation=True)]
    stored = StoredProbs.load(legacy / "runs" / "tiny" / "val_probs.npz")
    np.testing.assert_allclose([[scores[n] for n in GENRES] for scores in theirs], stored.probs, atol=1e-5)


@pytest.mark.parametrize(("run", "fragments"), [
    ("tfidf", ["Hugging Face model folders of transformer runs", "model.skops", "skops.io.load"]),
    ("ensemble", ["Hugging Face model folders of transformer runs", "ensemble of runs: export its members"]),
])
def test_export_of_the_old_baseline_and_ensemble_is_refused_as_documented(legacy, tmp_path, run, fragments):
    result = genre_lab_here("export", f"run_dir={legacy / 'runs' / run}", f"out={tmp_path / 'hf'}",
                            f"hydra.run.dir={tmp_path / 'x'}", cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], fragment
    assert not (tmp_path / "hf").exists()
