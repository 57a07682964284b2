"""genre-lab ensemble: a weighted average of finished runs, written as a run; eval and predict run its members."""

import hashlib
import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest

from genre_lab.ensemble import coordinate_search, ensemble, simplex_grid, weight_score
from genre_lab.errors import GenreLabError
from genre_lab.evaluate import evaluate
from genre_lab.predict import predict
from genre_lab.runs.finished import average
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.figure_names import HEADLINE
from genre_lab.scoring.thresholds import ThresholdTuner
from genre_lab.train import train
from tests.conftest import compose_cfg, compose_train, genre_lab_here


def ensemble_cfg(runs, out, *overrides):
    return compose_cfg("ensemble", [f"runs=[{','.join(map(str, runs))}]", *overrides], out)


def figures(metrics):
    return {k: v for k, v in metrics.items() if k.startswith(("val/", "val_fixed/"))}


def refused(result, *fragments):
    """Exit code 2 and one `genre-lab: error:` line holding every fragment."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def mixed_ensemble(mixed_sweep, tmp_path_factory):
    """The baseline and the tiny transformer, equal weights, through the command line (so with .hydra/); the runs
    relative to the sweep (see test_compare_shows_an_ensemble_of_absolute_paths)."""
    root = tmp_path_factory.mktemp("ensemble")
    result = genre_lab_here("ensemble", "runs=[0,1]", f"hydra.run.dir={root / 'ens'}", cwd=mixed_sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "ens"


@pytest.mark.parametrize("job", ["0", "1"])
def test_an_ensemble_of_a_run_with_itself_has_the_runs_figures(mixed_sweep, tmp_path, job):
    run = mixed_sweep / job
    twin = shutil.copytree(run, tmp_path / "twin", ignore=shutil.ignore_patterns("eval_cache"))  # a run listed
    trained = json.loads((run / "metrics.json").read_text())  # twice is refused (test_a_run_listed_twice…)
    metrics = ensemble(ensemble_cfg([run, twin], tmp_path / "e", "plots=false"))
    assert figures(metrics) == figures(trained) and figures(metrics)
    assert metrics["decoder"] == trained["decoder"] and metrics["thresholds"] == trained["thresholds"]
    assert metrics["weights"] == [0.5, 0.5] and metrics["weights_source"] == "equal"
    np.testing.assert_array_equal(StoredProbs.load(tmp_path / "e" / "val_probs.npz").probs,
                                  StoredProbs.load(run / "val_probs.npz").probs)
    tuned = ensemble(ensemble_cfg([run, twin], tmp_path / "t", "weights=tune", "plots=false"))
    assert tuned["weights"] == [0.5, 0.5]  # every weight gives the same average: ties go to the even weights


def test_a_run_listed_twice_is_refused_also_when_spelt_otherwise(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    with pytest.raises(GenreLabError, match=r"runs lists .*/a \(2 times\): a repeated run only multiplies its weight; "
                                            r"an ensemble needs two or more different runs"):
        ensemble(ensemble_cfg(["a", "./a/"], tmp_path / "e"))
    with pytest.raises(GenreLabError, match=r"list each run once, with weights=\[2,1\] for this average"):
        ensemble(ensemble_cfg(["a", "b", str(tmp_path / "a")], tmp_path / "e"))
    assert not (tmp_path / "e").exists()


def test_the_ensemble_run_directory(mixed_ensemble, mixed_sweep):
    metrics = json.loads((mixed_ensemble / "metrics.json").read_text())
    members = [str(mixed_sweep / "0"), str(mixed_sweep / "1")]
    assert metrics["members"] == members and metrics["weights"] == [0.5, 0.5]
    assert metrics["config_id"] and metrics["best_checkpoint"] == str(mixed_ensemble / "ensemble.json")
    definition = json.loads((mixed_ensemble / "ensemble.json").read_text())
    assert definition["members"] == members and definition["decoder"] == metrics["decoder"]
    assert definition["text_template"] == "{synopsis} {movie_name}"
    assert definition["label_space"] == {"names": ["family", "horror", "romance", "scifi"], "multi_label": False}
    stored = [StoredProbs.load(mixed_sweep / job / "val_probs.npz") for job in ("0", "1")]
    ours = StoredProbs.load(mixed_ensemble / "val_probs.npz")
    np.testing.assert_allclose(ours.probs, (stored[0].probs + stored[1].aligned_to(stored[0], ("1", "0")).probs) / 2,
                               atol=1e-6)
    for name in ("per_class.csv", "pr_curves.png", "f1_vs_threshold.png", ".hydra/config.yaml"):
        assert (mixed_ensemble / name).is_file(), name


def test_weights_not_summing_to_one_are_normalised_and_said_so(mixed_sweep, tmp_path, caplog):
    runs = [mixed_sweep / "0", mixed_sweep / "1"]
    with caplog.at_level(logging.WARNING):
        metrics = ensemble(ensemble_cfg(runs, tmp_path / "a", "weights=[3,1]", "plots=false"))
    assert "weights=[3, 1] sum to 4, not 1: normalised to [0.75, 0.25]" in caplog.text
    assert metrics["weights"] == [0.75, 0.25] and metrics["weights_given"] == [3, 1] and metrics["weights_normalised"]
    same = ensemble(ensemble_cfg(runs, tmp_path / "b", "weights=[0.75,0.25]", "plots=false"))
    assert figures(same) == figures(metrics) and "weights_normalised" not in same


@pytest.mark.parametrize(("weights", "fragment"), [("[-1,2]", "≥ 0"), ("[0,0]", "not all of them 0"),
                                                   ("[1]", "one weight per run (2)"), ("abc", "one weight per run")])
def test_bad_weights_are_refused_and_nothing_is_written(mixed_sweep, tmp_path, weights, fragment):
    result = genre_lab_here("ensemble", f"runs=[{mixed_sweep / '0'},{mixed_sweep / '1'}]", f"weights={weights}",
                            f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    refused(result, f"weights={weights.replace(',', ', ')}" if weights != "abc" else "weights='abc'", fragment)
    assert not (tmp_path / "e" / "metrics.json").exists() and not (tmp_path / "e" / "ensemble.json").exists()


def test_tuned_weights_are_chosen_on_the_validation_rows_with_the_caveat(mixed_sweep, tmp_path, caplog):
    runs = [mixed_sweep / "0", mixed_sweep / "1"]
    equal = ensemble(ensemble_cfg(runs, tmp_path / "eq", "plots=false"))
    with caplog.at_level(logging.WARNING):
        tuned = ensemble(ensemble_cfg(runs, tmp_path / "t", "weights=tune", "plots=false"))
    assert tuned["weights_source"] == "tuned" and sum(tuned["weights"]) == pytest.approx(1)
    assert all(round(w / 0.05, 6).is_integer() for w in tuned["weights"])
    report = tuned["weights_tuning"]
    assert report["method"] == "grid" and report["candidates"] == 21 and "best global threshold" in report["objective"]
    assert "optimistic" in caplog.text and "chosen on the validation rows" in caplog.text
    stored = [StoredProbs.load(run / "val_probs.npz") for run in runs]
    stored[1] = stored[1].aligned_to(stored[0], ("1", "0"))
    tuner = ThresholdTuner()
    at_equal = weight_score(average([s.probs for s in stored], [0.5, 0.5]), stored[0].targets, Decoder(), tuner)
    assert report["score"] >= at_equal  # equal weights are on the grid
    assert equal["weights"] == [0.5, 0.5]


def test_the_weight_search():
    grid = simplex_grid(3, 20)
    assert len(grid) == 231 and np.allclose(grid.sum(axis=1), 1) and (grid >= 0).all()
    assert np.allclose(np.sort(grid[0]), [0.3, 0.35, 0.35])  # the most even weights first
    weights, tried = coordinate_search(lambda w: w[2], 4, 10)  # more than 3 members
    np.testing.assert_allclose(weights, [0, 0, 1, 0], atol=1e-9)
    assert tried > 4 * 11 and np.isclose(weights.sum(), 1)


@pytest.fixture(scope="module")
def odd_runs(tmp_path_factory, run_frame):
    """Baselines that cannot join job 0 of the mixed sweep: three genres; another split; another template."""
    root = tmp_path_factory.mktemp("odd")
    run_frame.to_csv(root / "four.csv", index=False)
    run_frame[run_frame.genre != "scifi"].to_csv(root / "three.csv", index=False)
    settings = {"genres": [f"data.train_csv={root / 'three.csv'}"],
                "rows": [f"data.train_csv={root / 'four.csv'}", "data.seed=7"],
                "template": [f"data.train_csv={root / 'four.csv'}", "data.text_template='{synopsis}'"]}
    for name, overrides in settings.items():
        train(compose_train(["model=tfidf_lr", *overrides], root / name))
    return root


@pytest.mark.parametrize(("odd", "fragments"), [
    ("genres", ["their genres differ", "['family', 'horror', 'romance']"]),
    ("rows", ["different validation rows"]),
    ("template", ["text template", "'{synopsis}'"]),
])
def test_members_that_differ_are_refused(mixed_sweep, odd_runs, tmp_path, odd, fragments):
    result = genre_lab_here("ensemble", f"runs=[{mixed_sweep / '0'},{odd_runs / odd}]",
                            f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    refused(result, str(mixed_sweep / "0"), str(odd_runs / odd), *fragments)
    assert not (tmp_path / "e" / "metrics.json").exists()
    with pytest.raises(GenreLabError, match=fragments[0]):
        ensemble(ensemble_cfg([mixed_sweep / "0", odd_runs / odd], tmp_path / "f"))


def test_an_ensemble_never_writes_into_a_runs_directory(mixed_ensemble, mixed_sweep, tmp_path):
    for target in (mixed_ensemble, mixed_sweep / "0"):
        before = digest(target)  # .hydra/ and the job log included
        result = genre_lab_here("ensemble", f"runs=[{mixed_sweep / '0'},{mixed_sweep / '1'}]",
                                f"hydra.run.dir={target}", cwd=tmp_path)
        refused(result, f"{target} already holds an earlier run's results", "hydra.run.dir")
        assert digest(target) == before
    too_few = genre_lab_here("ensemble", f"runs=[{mixed_sweep / '0'}]", f"hydra.run.dir={tmp_path / 'e'}",
                             cwd=tmp_path)
    refused(too_few, "two or more finished run directories")


def test_eval_and_predict_of_an_ensemble_run_its_members_and_average(mixed_ensemble, tmp_path, val_rows_csv):
    stored = StoredProbs.load(mixed_ensemble / "val_probs.npz")
    trained = json.loads((mixed_ensemble / "metrics.json").read_text())
    shutil.rmtree(mixed_ensemble / "eval_cache", ignore_errors=True)
    metrics = evaluate(compose_cfg("eval", [f"run_dir={mixed_ensemble}", "plots=false"], tmp_path / "e"))
    for name in HEADLINE:
        assert metrics[f"eval/{name}"] == pytest.approx(trained[f"val/{name}"], abs=1e-6), name
    assert metrics["decoder"] == trained["decoder"] and metrics["probabilities"] == "computed"
    ids = pd.read_csv(tmp_path / "e" / "decisions.csv", dtype=str, keep_default_na=False).id.tolist()
    assert ids == [str(i) for i in stored.movie_ids]
    (cached,) = (mixed_ensemble / "eval_cache").glob("probs-*.npy")
    np.testing.assert_allclose(np.load(cached), stored.probs, atol=1e-6)
    again = evaluate(compose_cfg("eval", [f"ckpt_path={mixed_ensemble / 'ensemble.json'}", "plots=false"],
                                 tmp_path / "f"))
    assert again["probabilities"] == "cache" and again["eval/f1_micro"] == metrics["eval/f1_micro"]

    csv, ids = val_rows_csv(mixed_ensemble)
    result = predict(compose_cfg("predict", [f"run_dir={mixed_ensemble}", f"input_csv={csv}"], tmp_path / "p"))
    assert result.id.astype(str).tolist() == ids and (result.status == "ok").all()
    np.testing.assert_allclose(result[[f"prob_{n}" for n in stored.labels]].to_numpy(), stored.probs, atol=1e-6)
    decisions = pd.read_csv(tmp_path / "e" / "decisions.csv", dtype=str, keep_default_na=False)
    assert result.genres.fillna("").tolist() == decisions.predicted.tolist()
    one = genre_lab_here("predict", f"run_dir={mixed_ensemble}", "synopsis=A ghost, a lighthouse.",
                         "movie_name=Night", f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    assert pd.read_csv(tmp_path / "one" / "predictions.csv").status.tolist() == ["ok"]


def test_an_ensemble_is_listed_like_any_run_by_compare_and_a_sweep(mixed_ensemble, mixed_sweep, tmp_path):
    ranked = genre_lab_here("compare", str(mixed_sweep), str(mixed_ensemble), "--out", str(tmp_path / "cmp"),
                            cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv").set_index("run")
    assert len(table) == 3 and table.loc[str(mixed_ensemble), "checkpoint"].endswith("ensemble.json")
    paired = genre_lab_here("compare", str(mixed_sweep / "0"), str(mixed_ensemble), "--paired", cwd=tmp_path)
    assert paired.returncode == 0, paired.stderr[-3000:]
    sweep = tmp_path / "sweep"
    result = genre_lab_here("ensemble", "-m", "runs=[0,1]", "weights=[1,1],[3,1]", "plots=false",
                            f"hydra.sweep.dir={sweep}", cwd=mixed_sweep)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = pd.read_csv(sweep / "sweep_summary.csv")
    assert len(summary) == 2 and (summary.status == "ok").all()
    assert sorted(summary.overrides) == ["weights=[1,1]", "weights=[3,1]"]


def test_compare_shows_an_ensemble_of_absolute_paths(mixed_sweep, tmp_path):
    made = genre_lab_here("ensemble", f"runs=[{mixed_sweep / '0'},{mixed_sweep / '1'}]", "plots=false",
                          f"hydra.run.dir={tmp_path / 'ens'}", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    ranked = genre_lab_here("compare", str(tmp_path / "ens"), cwd=tmp_path)
    assert ranked.returncode == 0, ranked.stderr[-3000:]


def test_an_exported_folder_as_a_member_is_refused_naming_the_run_to_give(trained_run, onnx_folder, tmp_path):
    result = genre_lab_here("ensemble", f"runs=[{trained_run},{onnx_folder}]", f"hydra.run.dir={tmp_path / 'e'}",
                            cwd=tmp_path)
    refused(result, f"runs: {onnx_folder} is an exported ONNX folder", str(trained_run / "checkpoints" / "best.ckpt"))
    assert not (tmp_path / "e" / "ensemble.json").exists()
