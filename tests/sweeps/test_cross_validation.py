"""`genre-lab train … data.folds=k`: every fold as its own run, out-of-fold probabilities, thresholds tuned out of
fold, the held-out rows scored by the fold models' average; resumable fold by fold."""

import json
import shutil

import hydra
import numpy as np
import pytest
from omegaconf import OmegaConf

from genre_lab.data.table import TableSpec, read_table
from genre_lab.runs.finished import locate
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from tests.conftest import SAMPLE_CSV, genre_lab_cli, genre_lab_here

ARGS = ["train", "experiment=quickstart", "model=tiny", "trainer.max_epochs=1", "data.folds=2", "logger=csv"]


@pytest.fixture(scope="module")
def cross_validation(tmp_path_factory):
    work = tmp_path_factory.mktemp("cv")
    done = genre_lab_cli(*ARGS, f"hydra.run.dir={work / 'cv'}", cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "cv"


@pytest.mark.process
def test_out_of_fold_rows_are_every_training_row_once_each_from_the_model_that_never_trained_on_it(cross_validation):
    folds = [cross_validation / f"fold_{i}" for i in range(2)]
    oof = StoredProbs.load(RunLayout(cross_validation).oof_probs)
    parts = [StoredProbs.load(RunLayout(f).val_probs) for f in folds]
    assert len(oof.movie_ids) == 320 and len(set(oof.movie_ids)) == 320  # the 80 % of 400 rows the split trains on
    assert not set(parts[0].movie_ids) & set(parts[1].movie_ids)
    held = StoredProbs.load(RunLayout(cross_validation).val_probs)
    assert not set(held.movie_ids) & set(oof.movie_ids) and len(held.movie_ids) == 80
    table = read_table(SAMPLE_CSV, TableSpec())
    text_of = dict(zip(table.movie_ids, table.texts, strict=True))
    for folder, part in zip(folds, parts, strict=True):
        rows = np.isin(oof.movie_ids, part.movie_ids)
        again = locate(run_dir=folder).probabilities([text_of[m] for m in oof.movie_ids[rows]])
        np.testing.assert_allclose(oof.probs[rows], again, atol=1e-5)  # the fold model on its own held-out fold
    tests = [StoredProbs.load(RunLayout(f).test_probs).aligned_to(held, (str(f), "cv")) for f in folds]
    np.testing.assert_allclose(held.probs, (tests[0].probs + tests[1].probs) / 2, atol=1e-6)


@pytest.mark.process
def test_thresholds_are_tuned_on_the_out_of_fold_rows_only(cross_validation):
    metrics = RunLayout(cross_validation).read_metrics()
    cfg = OmegaConf.load(RunLayout(cross_validation).config)
    oof = StoredProbs.load(RunLayout(cross_validation).oof_probs)
    decoder = hydra.utils.instantiate(cfg.decode).for_genres(len(oof.labels), "x")
    rule = hydra.utils.instantiate(cfg.tuning).tune(oof.probs, oof.targets, decoder)
    assert metrics["decoder"] == rule.to_dict()  # from the out-of-fold rows, whatever the held-out rows hold
    assert json.loads(RunLayout(cross_validation).ensemble.read_text())["decoder"] == rule.to_dict()
    assert metrics["thresholds_tuned_on"] == "oof" and metrics["folds"] == 2
    for name in ("f1_micro", "f1_macro", "top1_accuracy"):
        assert {f"val/{name}", f"oof/{name}", f"val_tuned_on_val/{name}", f"cv/{name}", f"cv/{name} std"} <= set(
            metrics)


@pytest.mark.process
def test_eval_of_the_cross_validation_scores_the_held_out_rows_with_its_rule(cross_validation, tmp_path):
    done = genre_lab_here("eval", f"run_dir={cross_validation}", f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    scored = RunLayout(tmp_path / "e").read_metrics()
    figures = RunLayout(cross_validation).read_metrics()
    assert scored["eval/f1_micro"] == pytest.approx(figures["val/f1_micro"], abs=1e-6)


@pytest.mark.process
def test_running_it_again_keeps_finished_folds_and_trains_the_rest(cross_validation, tmp_path):
    again = tmp_path / "cv"
    shutil.copytree(cross_validation / "fold_0", again / "fold_0")
    before = (again / "fold_0" / "metrics.json").read_bytes()
    stopped = RunLayout(again / "fold_1").interrupted  # fold 1 stopped in its first epoch: nothing to resume
    stopped.parent.mkdir(parents=True)
    stopped.write_bytes(b"partial")
    done = genre_lab_cli(*ARGS, f"hydra.run.dir={again}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "fold_0 (1 of 2): finished already" in done.stdout + done.stderr
    [aside] = again.glob("fold_1.stopped-*")  # kept, not written over; the fold trained afresh
    assert RunLayout(aside).interrupted.read_bytes() == b"partial" and RunLayout(again / "fold_1").best.is_file()
    assert (again / "fold_0" / "metrics.json").read_bytes() == before
    ours, theirs = RunLayout(again).read_metrics(), RunLayout(cross_validation).read_metrics()
    assert ours["val/f1_micro"] == pytest.approx(theirs["val/f1_micro"], abs=1e-6)  # seeded: the same fold 1
    refused = genre_lab_cli(*ARGS, f"hydra.run.dir={again}", cwd=tmp_path)  # finished: never written over
    assert refused.returncode == 2 and "already holds a trained model ['ensemble.json']" in refused.stderr


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.folds=1"], "data.folds=1 must be a whole number in [2, 20]"),
    (["data.folds=50"], "data.folds=50 must be a whole number in [2, 20]"),
    (["data.folds=abc"], "data.folds='abc' must be a whole number in [2, 20]"),
    # 5 movies per genre, 4 of them left for training by the split: fewer than 5 folds
    (["data.folds=5", "data.sample.per_class=5"], "data.folds=5, but genre(s)"),
    (["data.folds=2", "resume=true"], "resume=true with data.folds=2: a cross-validation goes on when the same "
                                      "command runs again without resume=true"),
])
def test_bad_folds_fail_once_before_any_fold_trains(tmp_path, overrides, message):
    done = genre_lab_here(*ARGS[:-2], *overrides, f"hydra.run.dir={tmp_path / 'cv'}", cwd=tmp_path)
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert done.stderr.count("genre-lab: error:") == 1
    assert not list((tmp_path / "cv").glob("fold_*")) and not RunLayout(tmp_path / "cv").record()


@pytest.mark.process
@pytest.mark.parametrize("pruned", [True, False])
def test_a_search_scores_each_trial_by_the_mean_over_folds_and_may_prune_it_after_its_first(tmp_path, pruned):
    optuna = pytest.importorskip("optuna")
    db = f"sqlite:///{tmp_path / 'study.db'}"
    prune = ["hydra/sweeper/pruner=threshold", "hydra.sweeper.pruner.lower=1.01",
             "hydra.sweeper.pruner.n_warmup_steps=0"] if pruned else ["hydra/sweeper/pruner=none"]
    done = genre_lab_cli("train", "hparams_search=optuna", "experiment=quickstart", "model=tiny",
                         "trainer.max_epochs=1", "data.folds=2", "logger=csv", "hydra.sweeper.n_trials=1",
                         "hydra.sweeper.confirm.top_k=0", *prune, f"hydra.sweeper.storage={db}",
                         f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    trial = optuna.load_study(study_name="genre_lab", storage=db).trials[0]
    job = tmp_path / "sweep" / "0"
    if pruned:  # nothing reaches 1.01: pruned on its first report, after fold 0, before fold 1 starts
        assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [0]
        assert (job / "fold_0" / "metrics.json").is_file() and not (job / "fold_1").exists()
        return
    folds = [RunLayout(job / f"fold_{i}").read_metrics()["val/f1_micro"] for i in range(2)]
    assert trial.state.name == "COMPLETE" and trial.value == pytest.approx(np.mean(folds))  # never the held-out
    assert trial.intermediate_values == {0: pytest.approx(folds[0])}
    assert RunLayout(job).read_metrics()["cv/f1_micro"] == pytest.approx(trial.value)
    fold_config = OmegaConf.load(RunLayout(job / "fold_0").config)
    assert fold_config.trial is None and OmegaConf.load(RunLayout(job).config).trial.number == 0  # folds never report


@pytest.mark.process
def test_a_cross_validation_teaches_a_student_its_out_of_fold_probabilities_only(cross_validation):
    from genre_lab.data.movie_data import MovieData
    from genre_lab.errors import GenreLabError
    from genre_lab.runs.teacher import OutOfFoldTeacher

    settings = locate(run_dir=cross_validation).data_hparams  # the student: same file, split and sampling
    student = MovieData(settings, teacher=OutOfFoldTeacher(str(cross_validation)))
    train = student.tokenized()["train"]
    oof = StoredProbs.load(RunLayout(cross_validation).oof_probs)
    rows = {str(m): i for i, m in enumerate(oof.movie_ids)}
    expected = oof.probs[[rows[m] for m in train.movie_ids]]
    expected = expected / expected.sum(axis=1, keepdims=True)  # a single-label student's softmax targets
    np.testing.assert_allclose(train.dataset.teacher, expected, rtol=1e-6)
    assert student.stage_rows["val"][1].size and not set(student.splits["val"].movie_ids) & set(rows)

    with pytest.raises(GenreLabError, match=r"fold_0 has no oof_probs.npz: its probabilities for its own training "
                                            r"rows are in-sample"):
        OutOfFoldTeacher(str(cross_validation / "fold_0"))
    with pytest.raises(GenreLabError, match=r"of the 320 training rows have no out-of-fold probability there"):
        MovieData({**settings, "seed": 7}, teacher=OutOfFoldTeacher(str(cross_validation))).tokenized()
    with pytest.raises(GenreLabError, match=r"its data.text_template differs from the student's"):
        MovieData({**settings, "text_template": "{movie_name}: {synopsis}"},
                  teacher=OutOfFoldTeacher(str(cross_validation))).tokenized()
    with pytest.raises(GenreLabError, match=r"data/teacher=run needs the teacher: data.teacher.run_dir="):
        OutOfFoldTeacher(None)


@pytest.mark.process
def test_an_ensemble_of_cross_validations_averages_their_out_of_fold_rows_and_can_teach(cross_validation, tmp_path):
    from genre_lab.data.movie_data import MovieData
    from genre_lab.runs.teacher import OutOfFoldTeacher

    twin = tmp_path / "cv_twin"
    shutil.copytree(cross_validation, twin)  # a second cross-validation with the same rows (and figures)
    done = genre_lab_here("ensemble", f"runs=[{cross_validation},{twin}]", f"hydra.run.dir={tmp_path / 'ens'}",
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = StoredProbs.load(RunLayout(tmp_path / "ens").oof_probs)
    theirs = StoredProbs.load(RunLayout(cross_validation).oof_probs)
    assert list(ours.movie_ids) == list(theirs.movie_ids)
    np.testing.assert_allclose(ours.probs, theirs.probs, rtol=1e-6)  # the average of two equal members
    settings = locate(run_dir=cross_validation).data_hparams
    student = MovieData(settings, teacher=OutOfFoldTeacher(str(tmp_path / "ens")))
    assert student.tokenized()["train"].dataset.teacher.shape == (320, len(theirs.labels))
