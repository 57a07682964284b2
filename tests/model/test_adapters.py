"""peft=lora: adapters train, checkpoints keep only them and the head, export merges them into a plain model."""

import json

import numpy as np
import pytest
import torch

from genre_lab.data.text_template import build_text
from genre_lab.errors import GenreLabError
from genre_lab.export import export
from genre_lab.predict import predict
from genre_lab.runs.finished import Run
from genre_lab.runs.layout import RunLayout
from tests.conftest import QUIET, RUN_GENRES, compose_cfg, compose_train, genre_lab_here
from tests.test_ensemble import refused

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, run_frame):
    from genre_lab.train import train

    root = tmp_path_factory.mktemp("lora")
    run_frame.to_csv(root / "four.csv", index=False)
    train(compose_train(["model=tiny", "model.pooling=head", "peft=lora", "peft.r=4",
                         f"data.train_csv={root / 'four.csv'}", "trainer.max_epochs=3", "model.lr=5e-3",
                         "data.batch_size=16", "trainer.precision=32-true", *QUIET], root / "run"))
    return root / "run"


def test_only_the_adapters_and_the_head_train_and_are_kept(lora_run):
    layout = RunLayout(lora_run)
    timing = json.loads(layout.timing.read_text())
    assert 0 < timing["trainable_parameters"] < 0.1 * timing["parameters"] and timing["peak_rss_mb"] > 0
    kept = torch.load(layout.best, map_location="cpu", weights_only=True)["state_dict"]
    assert any("lora_A" in k for k in kept) and any("modules_to_save" in k and "classifier" in k for k in kept)
    model = Run(layout.best, lora_run).model
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {k for k in kept if k in dict(model.named_parameters())} == trained  # no frozen weight stored
    # the frozen weights are the pretrained backbone's: the adapters moved, so the merged model differs from it
    assert any(float(p.detach().abs().max()) > 0 for n, p in model.named_parameters() if "lora_B" in n)


def test_lora_export_gives_predicts_probabilities(lora_run, tmp_path, run_frame):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rows = run_frame.sample(24, random_state=4)
    rows.to_csv(tmp_path / "in.csv", index=False)
    ours = predict(compose_cfg("predict", [f"run_dir={lora_run}", f"input_csv={tmp_path / 'in.csv'}"], tmp_path / "p"))
    export(compose_cfg("export", [f"run_dir={lora_run}", f"out={tmp_path / 'hf'}"], tmp_path / "x"))
    assert not (tmp_path / "hf" / "adapter_config.json").exists()  # merged: a plain transformers model
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    texts = [build_text(r, "{synopsis} {movie_name}") for r in rows.to_dict("records")]
    with torch.no_grad():
        probs = torch.sigmoid(model(**tokenizer(texts, truncation=True, padding=True, return_tensors="pt")).logits)
    np.testing.assert_allclose(probs.numpy(), ours[[f"prob_{g}" for g in RUN_GENRES]].to_numpy(), atol=1e-5)


def test_lora_onnx_export_gives_predicts_probabilities(lora_run, tmp_path, run_frame):
    pytest.importorskip("onnxruntime")
    from genre_lab.serving.onnx_runtime import OnnxGenreModel

    rows = run_frame.sample(24, random_state=6)
    rows.to_csv(tmp_path / "in.csv", index=False)
    ours = predict(compose_cfg("predict", [f"run_dir={lora_run}", f"input_csv={tmp_path / 'in.csv'}"], tmp_path / "p"))
    export(compose_cfg("export", [f"run_dir={lora_run}", f"out={tmp_path / 'onnx'}", "format=onnx"], tmp_path / "x"))
    result = OnnxGenreModel(tmp_path / "onnx").predict(rows.to_dict("records"))
    np.testing.assert_allclose(result.probabilities, ours[[f"prob_{g}" for g in RUN_GENRES]].to_numpy(), atol=1e-5)


def test_another_backbone_under_the_adapters_is_refused(lora_run, tmp_path):
    checkpoint = torch.load(RunLayout(lora_run).best, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["peft_base"] = [1.0, 2.0]  # as if trained on other pretrained weights
    torch.save(checkpoint, tmp_path / "other.ckpt")
    with pytest.raises(GenreLabError, match="not the one this run's LoRA adapters were trained on"):
        _ = Run(tmp_path / "other.ckpt", lora_run).model


@pytest.mark.parametrize(("setting", "fragment"), [("peft.r=0", "peft.r=0"), ("peft.lora_alpha=-1", "peft.lora_alpha"),
                                                   ("peft.target_modules=q_lin", "peft.target_modules"),
                                                   ("+peft.rank=4", "rank")])
def test_bad_lora_settings_are_refused_before_anything_is_written(tmp_path, setting, fragment):
    result = genre_lab_here("train", "model=tiny", "peft=lora", setting, f"hydra.run.dir={tmp_path / 'run'}",
                            cwd=tmp_path)
    refused(result, fragment)
    assert RunLayout(tmp_path / "run").record() == []


def test_a_soup_of_lora_runs_is_refused(lora_run, tmp_path):
    result = genre_lab_here("soup", f"runs=[{lora_run},{lora_run}]", f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path)
    refused(result, "LoRA adapters (peft=lora)", "genre-lab ensemble")
    assert RunLayout(tmp_path / "s").record() == []
