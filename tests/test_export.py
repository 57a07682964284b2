import json
import shutil

import numpy as np
import pytest

from genre_lab.data.table import build_text
from genre_lab.errors import GenreLabError
from genre_lab.export import export
from genre_lab.predict import predict
from tests.conftest import RUN_GENRES, compose_cfg, genre_lab_here


def test_export_loads_in_transformers_with_the_same_probabilities(trained_run, tmp_path, run_frame):
    from transformers import AutoModelForSequenceClassification, pipeline

    out = tmp_path / "hf"
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}"], tmp_path / "x"))
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.problem_type == "multi_label_classification"
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    assert names == RUN_GENRES
    assert model.config.label2id["horror"] == names.index("horror")
    saved = json.loads((out / "thresholds.json").read_text())
    assert saved["labels"] == names and "threshold" in saved["decoder"]

    rows = run_frame.sample(12, random_state=1)
    rows.to_csv(tmp_path / "in.csv", index=False)
    ours = predict(compose_cfg("predict", [f"run_dir={trained_run}", f"input_csv={tmp_path / 'in.csv'}",
                                           "precision=32-true"], tmp_path / "p"))
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    classifier = pipeline("text-classification", model=str(out), top_k=None, device="cpu")
    theirs = [{s["label"]: s["score"] for s in scores} for scores in classifier(texts, truncation=True)]
    for i, scores in enumerate(theirs):
        np.testing.assert_allclose([scores[n] for n in names], [ours.loc[i, f"prob_{n}"] for n in names],
                                   atol=1e-5)
    # The README's caveat: predict in bf16-mixed (a bf16 run's default) differs from the fp32 model by up to ~1e-2.
    bf16 = predict(compose_cfg("predict", [f"run_dir={trained_run}", f"input_csv={tmp_path / 'in.csv'}",
                                           "precision=bf16-mixed"], tmp_path / "p16"))
    gap = max(abs(scores[n] - bf16.loc[i, f"prob_{n}"]) for i, scores in enumerate(theirs) for n in names)
    assert gap < 2e-2


@pytest.mark.parametrize("decode", [[], ["decode.top_k=2"], ["decode=threshold", "decode.threshold=0.3"]])
def test_thresholds_json_on_the_exported_models_probabilities_gives_predicts_genres(trained_run, tmp_path, run_frame,
                                                                                   decode):
    """What the README promises a user of the folder alone: AutoModelForSequenceClassification's logits, squashed and
    decided as thresholds.json says, are genre_lab's probabilities and genres."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "hf"
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}", *decode], tmp_path / "x"))
    rows = run_frame.sample(24, random_state=3)
    rows.to_csv(tmp_path / "in.csv", index=False)
    ours = predict(compose_cfg("predict", [f"run_dir={trained_run}", f"input_csv={tmp_path / 'in.csv'}",
                                           "precision=32-true", *decode], tmp_path / "p"))

    rule = json.loads((out / "thresholds.json").read_text())
    assert "sigmoid" in rule["note"]
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    with torch.no_grad():
        logits = model(**tokenizer(texts, truncation=True, padding=True, return_tensors="pt")).logits
    probs = torch.sigmoid(logits).numpy()
    names = rule["labels"]
    np.testing.assert_allclose(probs, ours[[f"prob_{n}" for n in names]].to_numpy(), atol=1e-5)
    decoder = rule["decoder"]
    if decoder.get("top_k"):
        chosen = np.argsort(-probs, axis=1)[:, : decoder["top_k"]]
        picked = np.zeros_like(probs, dtype=bool)
        np.put_along_axis(picked, chosen, True, axis=1)
    else:
        picked = probs > np.asarray(decoder["threshold"], dtype=np.float32)
        if decoder.get("at_least_one"):
            picked[np.arange(len(probs)), probs.argmax(axis=1)] |= ~picked.any(axis=1)
    genres = ["|".join(n for n, p in zip(names, row, strict=True) if p) for row in picked]
    assert genres == ours.genres.fillna("").tolist()


def test_predict_defaults_to_the_runs_training_precision(trained_run, tmp_path, run_frame):
    """The README's caveat on the export match: predict's default is the precision the run was trained in, so only a
    run trained in fp32 matches the (fp32) export without precision=32-true."""
    import torch

    bf16_run = tmp_path / "bf16_run"  # the same weights, as a run trained in bf16-mixed saves them
    (bf16_run / "checkpoints").mkdir(parents=True)
    shutil.copytree(trained_run / "tokenizer", bf16_run / "tokenizer")
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["precision"] == "32-true"
    checkpoint["precision"] = "bf16-mixed"
    torch.save(checkpoint, bf16_run / "checkpoints" / "best.ckpt")
    run_frame.sample(12, random_state=4).to_csv(tmp_path / "in.csv", index=False)

    def probs(run, name, *overrides):
        result = predict(compose_cfg("predict", [f"run_dir={run}", f"input_csv={tmp_path / 'in.csv'}", *overrides],
                                     tmp_path / name))
        return result[[c for c in result.columns if c.startswith("prob_")]].to_numpy()

    fp32 = probs(trained_run, "a", "precision=32-true")
    np.testing.assert_array_equal(probs(trained_run, "b"), fp32)
    bf16 = probs(bf16_run, "c")
    np.testing.assert_array_equal(bf16, probs(trained_run, "d", "precision=bf16-mixed"))
    np.testing.assert_array_equal(probs(bf16_run, "e", "precision=32-true"), fp32)
    assert 0 < np.abs(bf16 - fp32).max() < 2e-2


def test_export_never_overwrites_without_asking(trained_run, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(GenreLabError, match="not empty"):
        export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}"], tmp_path / "x"))
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["run", "checkpoints", "inside", "parent", "symlink"])
def test_export_never_writes_over_or_into_the_run_it_exports(trained_run, tmp_path, where):
    run = tmp_path / "runs" / "run"  # a copy: on the old code, out=<run dir> overwrite=true deleted it
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("eval_*"))
    (tmp_path / "link").symlink_to(run)
    out = {"run": run, "checkpoints": run / "checkpoints", "inside": run / "hf", "parent": run.parent,
           "symlink": tmp_path / "link"}[where]
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    with pytest.raises(GenreLabError, match="holds the checkpoint being exported"):
        export(compose_cfg("export", [f"run_dir={run}", f"out={out}", "overwrite=true"], tmp_path / "x"))
    with pytest.raises(GenreLabError, match="holds the checkpoint being exported"):
        export(compose_cfg("export", [f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}", f"out={out}",
                                      "overwrite=true"], tmp_path / "x"))
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_export_writes_the_rule_decode_names(trained_run, tmp_path):
    saved_rule = json.loads((trained_run / "metrics.json").read_text())["decoder"]
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={tmp_path / 'same'}"], tmp_path / "a"))
    assert json.loads((tmp_path / "same" / "thresholds.json").read_text())["decoder"] == saved_rule
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={tmp_path / 'k2'}", "decode.top_k=2"],
                       tmp_path / "b"))
    assert json.loads((tmp_path / "k2" / "thresholds.json").read_text())["decoder"] == {**saved_rule, "top_k": 2}
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={tmp_path / 't'}", "decode=threshold",
                                  "decode.threshold=0.3"], tmp_path / "c"))
    assert json.loads((tmp_path / "t" / "thresholds.json").read_text())["decoder"]["threshold"] == 0.3


@pytest.fixture(scope="module", params=["head", "mean"])
def ce_run(request, tmp_path_factory, four_csv):
    """A short single-label (ce) run that keeps the tail of texts cut at 16 tokens, with each pooling."""
    from genre_lab.train import train
    from tests.conftest import QUIET, compose_train

    root = tmp_path_factory.mktemp(f"ce_{request.param}")
    train(compose_train([
        "model=tiny", f"data.train_csv={four_csv}", "trainer.max_epochs=2", "model.lr=2e-3", "data.batch_size=16",
        "trainer.precision=32-true", "model.objective=ce", f"model.pooling={request.param}", "data.max_length=16",
        "data.truncation=tail", "model.label_smoothing=0.1", *QUIET], root / "run"))
    return root / "run", request.param


def test_export_of_a_ce_run_gives_the_same_softmax_probabilities(ce_run, tmp_path, run_frame):
    from transformers import AutoModelForSequenceClassification, pipeline

    run, pooling = ce_run
    custom = pooling == "mean"  # no standard HF class: its code travels in the folder
    out = tmp_path / "hf"
    export(compose_cfg("export", [f"run_dir={run}", f"out={out}"], tmp_path / "x"))
    model = AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=custom)
    assert model.config.problem_type == "single_label_classification"
    assert (out / "pooling.py").is_file() == custom
    if custom:
        with pytest.raises(ValueError, match="trust_remote_code"):  # never a standard head with random weights
            AutoModelForSequenceClassification.from_pretrained(out, trust_remote_code=False)
    saved = json.loads((out / "thresholds.json").read_text())
    assert (saved["objective"], saved["truncation"]) == ("ce", "tail") and "softmax" in saved["note"]
    assert json.loads((out / "tokenizer_config.json").read_text())["truncation_side"] == "left"

    rows = run_frame.sample(12, random_state=2)
    rows.to_csv(tmp_path / "in.csv", index=False)
    ours = predict(compose_cfg("predict", [f"run_dir={run}", f"input_csv={tmp_path / 'in.csv'}",
                                           "precision=32-true"], tmp_path / "p"))
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    probs = ours[[f"prob_{n}" for n in names]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    classifier = pipeline("text-classification", model=str(out), top_k=None, device="cpu", trust_remote_code=custom)
    # the exported tokenizer keeps the tail of these (longer than 16 token) texts, as the run did
    theirs = [{s["label"]: s["score"] for s in scores} for scores in classifier(texts, truncation=True)]
    np.testing.assert_allclose([[scores[n] for n in names] for scores in theirs], probs, atol=1e-5)



def test_export_of_a_baseline_run_is_refused_with_where_its_model_is(mixed_sweep, tmp_path):
    run = mixed_sweep / "0"  # the TF-IDF baseline
    for model in (f"run_dir={run}", f"ckpt_path={run / 'checkpoints' / 'model.skops'}"):
        result = genre_lab_here("export", model, f"out={tmp_path / 'hf'}", f"hydra.run.dir={tmp_path / 'x'}",
                                cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
        for fragment in ("Hugging Face model folders of transformer runs", "model.skops", "skops.io.load"):
            assert fragment in errors[0], fragment
        assert not (tmp_path / "hf").exists()
