import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from genre_lab.errors import GenreLabError
from genre_lab.evaluate import evaluate
from genre_lab.model.module import GenreClassifier
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.scoring.figure_names import HEADLINE
from tests.conftest import compose_cfg, genre_lab_here

PNG = b"\x89PNG\r\n\x1a\n"


def eval_cfg(run, out, *overrides):
    return compose_cfg("eval", [f"run_dir={run}", *overrides], out)


def count_forward(monkeypatch) -> list[int]:
    calls = [0]
    original = GenreClassifier.forward

    def counted(self, *args, **kwargs):
        calls[0] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(GenreClassifier, "forward", counted)
    return calls


def test_eval_reproduces_the_training_validation_metrics(trained_run, tmp_path):
    trained = json.loads((trained_run / "metrics.json").read_text())
    metrics = evaluate(eval_cfg(trained_run, tmp_path / "e", "cache=false"))
    assert metrics["probabilities"] == "computed" and metrics["rows"] == 32
    for name in ("f1_micro", "f1_macro", "auroc_micro", "auroc_macro", "exact_match", "top1_accuracy"):
        assert metrics[f"eval/{name}"] == pytest.approx(trained[f"val/{name}"], abs=1e-4), name
    assert metrics["decoder"] == trained["decoder"]  # the tuned rule stored in the checkpoint


def test_tuned_thresholds_are_not_worse_than_fixed_in_training(trained_run):
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert trained["val/f1_micro"] >= trained["val_fixed/f1_micro"]
    assert trained["thresholds"]["chosen"] in ("fixed", "global", "per_class")


def test_threshold_sweep_runs_the_network_once(trained_run, tmp_path, monkeypatch):
    shutil.rmtree(trained_run / "eval_cache", ignore_errors=True)  # other tests share the run and fill its cache
    calls = count_forward(monkeypatch)
    scores = []
    for i, threshold in enumerate([0.1, 0.2, 0.3, 0.4, 0.5]):
        metrics = evaluate(eval_cfg(trained_run, tmp_path / str(i), f"decode.threshold={threshold}", "plots=false"))
        assert metrics["decoder"]["threshold"] == threshold
        scores.append(metrics["eval/f1_micro"])
        if i == 0:
            first = calls[0]
    assert first >= 1 and calls[0] == first  # only the first evaluation ran the model
    assert len(set(scores)) > 1


def test_eval_writes_tables_and_valid_pngs(trained_run, tmp_path):
    out = tmp_path / "e"
    evaluate(eval_cfg(trained_run, out))
    for name in ("pr_curves.png", "f1_vs_threshold.png", "confusion_matrix.png"):
        data = (out / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 5000, name
    import matplotlib.image

    assert matplotlib.image.imread(out / "confusion_matrix.png").ndim == 3
    per_class = pd.read_csv(out / "per_class.csv")
    assert list(per_class.columns) == ["genre", "precision", "recall", "f1", "support"]
    assert per_class.support.sum() == 32
    decisions = pd.read_csv(out / "decisions.csv", keep_default_na=False)
    assert len(decisions) == 32 and set(decisions.columns) == {"id", "true", "predicted"}


def test_eval_on_a_labelled_csv_and_eval_time_tuning(trained_run, tmp_path, run_frame):
    csv = tmp_path / "some.csv"
    run_frame.sample(60, random_state=0).to_csv(csv, index=False)
    metrics = evaluate(eval_cfg(trained_run, tmp_path / "e", f"input_csv={csv}", "tune=true"))
    assert metrics["rows"] == 60 and metrics["data"] == str(csv)
    assert metrics["eval/f1_micro"] >= metrics["thresholds"]["scores"]["fixed"] - 1e-9


def test_eval_rejects_genres_the_model_does_not_know(trained_run, tmp_path, sample_frame):
    csv = tmp_path / "odd.csv"
    sample_frame.head(5).assign(genre="western").to_csv(csv, index=False)
    with pytest.raises(GenreLabError, match=r"\['western'\] are not among the model's genres"):
        evaluate(eval_cfg(trained_run, tmp_path / "e", f"input_csv={csv}"))


def test_run_dir_without_checkpoints(tmp_path):
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(GenreLabError, match="holds no checkpoints") as err:
        evaluate(eval_cfg(tmp_path / "empty_run", tmp_path / "e"))
    assert "fast_dev_run saves none" in str(err.value)
    assert "interrupted.ckpt" in str(err.value)


def test_macro_metrics_cover_the_genres_present_and_say_so(trained_run, tmp_path, run_frame, capsys):
    csv = tmp_path / "three.csv"
    run_frame[run_frame.genre != "romance"].sample(45, random_state=0).to_csv(csv, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torchmetrics warning reaches the console
        metrics = evaluate(eval_cfg(trained_run, tmp_path / "e", f"input_csv={csv}"))
    per_class = pd.read_csv(tmp_path / "e" / "per_class.csv")
    present = per_class[per_class.support > 0]
    assert metrics["eval/genres_present"] == 3 and len(present) == 3
    assert metrics["eval/f1_macro"] == pytest.approx(present.f1.mean(), abs=1e-6)
    assert "macro averages over 3 of 4 genres present" in capsys.readouterr().out


def test_eval_tokenizes_into_the_current_cache_dir_not_the_trained_one(trained_run, tmp_path):
    cache = tmp_path / "cache_here"
    evaluate(eval_cfg(trained_run, tmp_path / "e", f"paths.cache_dir={cache}", "cache=false", "plots=false"))
    assert any((cache / "tokens").iterdir())


def test_multirun_threshold_sweep_through_the_cli(trained_run, tmp_path):
    sweep = tmp_path / "sweep"
    result = genre_lab_here("eval", "-m", f"run_dir={trained_run}", "plots=false",
                            "decode.threshold=0.1,0.2,0.3,0.4,0.5", f"hydra.sweep.dir={sweep}", "cache=true",
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [json.loads((sweep / str(i) / "metrics.json").read_text()) for i in range(5)]
    assert [j["decoder"]["threshold"] for j in jobs] == [0.1, 0.2, 0.3, 0.4, 0.5]
    sources = [j["probabilities"] for j in jobs]
    assert sources.count("computed") <= 1 and sources.count("cache") >= 4
    assert np.unique([j["eval/f1_micro"] for j in jobs]).size > 1


def test_decode_is_a_config_group_for_eval_too(trained_run, tmp_path):
    result = genre_lab_here("eval", f"run_dir={trained_run}", "decode=top_k", "decode.top_k=2", "plots=false",
                            f"hydra.run.dir={tmp_path / 'e'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    decoder = json.loads((tmp_path / "e" / "metrics.json").read_text())["decoder"]
    assert decoder["top_k"] == 2 and decoder["threshold"] == 0.5 and not decoder["at_least_one"]


def stored_probs_of(run, ids):
    """``run``'s stored validation probabilities, in the order of ``ids``."""
    stored = StoredProbs.load(run / "val_probs.npz")
    position = {str(movie): i for i, movie in enumerate(stored.movie_ids)}
    return stored.probs[[position[movie] for movie in ids]]


def test_eval_on_a_baseline_run_reproduces_its_validation_probabilities_and_figures(mixed_sweep, tmp_path,
                                                                                    val_rows_csv):
    run = mixed_sweep / "0"  # the TF-IDF baseline
    shutil.rmtree(run / "eval_cache", ignore_errors=True)
    trained = json.loads((run / "metrics.json").read_text())
    metrics = evaluate(eval_cfg(run, tmp_path / "e"))
    assert metrics["probabilities"] == "computed" and metrics["checkpoint"] == str(run / "checkpoints/model.skops")
    for name in HEADLINE:
        assert metrics[f"eval/{name}"] == pytest.approx(trained[f"val/{name}"], abs=1e-6), name
    assert metrics["decoder"] == trained["decoder"]
    ids = pd.read_csv(tmp_path / "e" / "decisions.csv", dtype=str, keep_default_na=False).id.tolist()
    (cached,) = (run / "eval_cache").glob("probs-*.npy")  # what eval scored
    np.testing.assert_allclose(np.load(cached), stored_probs_of(run, ids), atol=1e-6)
    for name in ("per_class.csv", "decisions.csv", "pr_curves.png", "confusion_matrix.png"):
        assert (tmp_path / "e" / name).is_file(), name

    by_file = compose_cfg("eval", [f"ckpt_path={run / 'checkpoints' / 'model.skops'}", "tune=true", "plots=false"],
                          tmp_path / "t")
    tuned = evaluate(by_file)
    assert tuned["probabilities"] == "cache" and tuned["eval/f1_micro"] >= tuned["thresholds"]["scores"]["fixed"]
    top = evaluate(eval_cfg(run, tmp_path / "k", "decode=top_k", "decode.top_k=1", "plots=false"))
    assert top["decoder"]["top_k"] == 1 and top["eval/f1_micro"] == pytest.approx(top["eval/top1_accuracy"])
    csv, _ = val_rows_csv(run)
    on_csv = evaluate(eval_cfg(run, tmp_path / "c", f"input_csv={csv}", "plots=false"))
    assert on_csv["rows"] == metrics["rows"] and on_csv["eval/f1_micro"] == pytest.approx(metrics["eval/f1_micro"])


def with_empty_synopses(frame, path):
    """``frame`` (60 rows) with the synopses of its rows on file lines 3 and 6 emptied, written to ``path``."""
    frame = frame.sample(60, random_state=0).reset_index(drop=True)
    frame.loc[[1, 4], "synopsis"] = ""
    frame.to_csv(path, index=False)
    return path


def test_the_empty_synopsis_hint_names_evals_own_key_and_that_key_works(trained_run, tmp_path, run_frame):
    csv = with_empty_synopses(run_frame, tmp_path / "holes.csv")
    refused = genre_lab_here("eval", f"run_dir={trained_run}", f"input_csv={csv}", "plots=false",
                             f"hydra.run.dir={tmp_path / 'e1'}", cwd=tmp_path)
    line = refused.stderr.strip().splitlines()[-1]
    assert refused.returncode == 2 and "line(s) 3, 6" in line
    assert "or set empty_text=drop to skip them" in line and "data.empty_text" not in line
    done = genre_lab_here("eval", f"run_dir={trained_run}", f"input_csv={csv}", "plots=false", "empty_text=drop",
                          f"hydra.run.dir={tmp_path / 'e2'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "e2" / "metrics.json").read_text())["rows"] == 58


def test_eval_refuses_a_data_key_instead_of_ignoring_it(trained_run, tmp_path):
    with pytest.raises(GenreLabError, match=r"\['data'\]: not eval settings.*empty_text=…, encoding_errors=…"):
        evaluate(eval_cfg(trained_run, tmp_path / "e", "+data.empty_text=drop"))


def test_eval_reads_non_utf8_bytes_under_its_own_encoding_errors_key(trained_run, tmp_path, run_frame):
    csv = tmp_path / "latin1.csv"
    frame = run_frame.head(40).copy()
    frame.loc[2, "synopsis"] = "Un café noir, une nuit blanche."
    csv.write_bytes(frame.to_csv(index=False).encode("latin-1", errors="replace"))
    with pytest.raises(GenreLabError, match=r"UTF-8 byte .* on line\(s\) 4, .*or set encoding_errors=replace\.$"):
        evaluate(eval_cfg(trained_run, tmp_path / "e", f"input_csv={csv}", "plots=false"))
    metrics = evaluate(eval_cfg(trained_run, tmp_path / "r", f"input_csv={csv}", "plots=false",
                                "encoding_errors=replace"))
    assert metrics["rows"] == 40
