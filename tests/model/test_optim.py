"""optim.py: parameter groups (weight decay, layer-wise lr decay), fused AdamW, the configured optimizer and schedule,
and the check of their configs; through GenreClassifier.configure_optimizers, which hands its parameters to it."""

import math
import re

import pytest
import torch
from omegaconf import OmegaConf

from genre_lab.config_dir import config_dir
from genre_lab.errors import GenreLabError
from genre_lab.model.module import GenreClassifier
from genre_lab.model.optim import (
    EMBEDDINGS,
    SUPPLIED,
    build_optimizers,
    check_recipe,
    encoder_position,
    fused_ok,
    parameter_groups,
)

STEPS = type("T", (), {"estimated_stepping_batches": 10})()  # what configure_optimizers reads


def test_no_weight_decay_on_biases_and_norms():
    module = GenreClassifier("tiny", ["a", "b", "c"], weight_decay=0.05)
    module.trainer = STEPS
    groups = module.configure_optimizers()["optimizer"].param_groups
    decayed, plain = groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    names = {id(p): n for n, p in module.named_parameters()}
    assert any("LayerNorm" in names[id(p)] or "layer_norm" in names[id(p)] for p in plain["params"])


def test_adamw_is_fused_unless_turned_off():
    module = GenreClassifier("tiny", ["a", "b"])
    module.trainer = STEPS
    assert module.configure_optimizers()["optimizer"].defaults["fused"] is True
    plain = GenreClassifier("tiny", ["a", "b"], fused_adamw=False)
    plain.trainer = module.trainer
    assert not plain.configure_optimizers()["optimizer"].defaults["fused"]


def group_lrs(module: GenreClassifier) -> dict[str, float]:
    """Each parameter's name -> the lr of the optimizer group holding it (before the schedule's factor)."""
    module.trainer = STEPS
    names = {id(p): n for n, p in module.named_parameters()}
    groups = module.configure_optimizers()["optimizer"].param_groups
    lrs = {names[id(p)]: g["initial_lr"] for g in groups for p in g["params"]}
    assert len(lrs) == len(names) == sum(len(g["params"]) for g in groups)  # every parameter exactly once
    return lrs


def expected_lr(name: str, lr: float, decay: float, layers: int) -> float:
    match = re.search(r"\.layers?\.(\d+)\.", name)
    if match:
        return lr * decay ** (layers - int(match.group(1)))
    return lr * decay ** (layers + 1) if ".embeddings." in name else lr


def test_layer_lr_decay_gives_the_head_lr_and_each_lower_layer_a_decayed_share():
    module = GenreClassifier("tiny", ["a", "b", "c"], lr=1e-3, weight_decay=0.05, layer_lr_decay=0.5)
    lrs = group_lrs(module)
    assert lrs["model.classifier.weight"] == lrs["model.pre_classifier.bias"] == 1e-3
    assert lrs["model.distilbert.transformer.layer.1.ffn.lin1.weight"] == 5e-4  # the top of 2 layers
    assert lrs["model.distilbert.transformer.layer.0.attention.q_lin.bias"] == 2.5e-4
    assert lrs["model.distilbert.embeddings.word_embeddings.weight"] == 1.25e-4
    assert lrs["model.distilbert.embeddings.LayerNorm.weight"] == 1.25e-4
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert all((g["weight_decay"] == 0.0) == all(p.ndim < 2 for p in g["params"]) for g in groups)
    assert [g["name"] for g in groups][:3] == ["head", "head/no_decay", "layer.1"]


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_layer_lr_decay_finds_the_layers_of_bert_and_roberta(model_type):
    size = dict(hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32, vocab_size=60)
    module = GenreClassifier("unused", ["a", "b"], lr=1e-3, layer_lr_decay=0.8,
                             backbone_config={"model_type": model_type, **size})
    lrs = group_lrs(module)
    assert {n: lr for n, lr in lrs.items()} == pytest.approx({n: expected_lr(n, 1e-3, 0.8, 3) for n in lrs})
    assert lrs[f"model.{model_type}.encoder.layer.2.output.dense.weight"] == pytest.approx(8e-4)
    assert lrs[f"model.{model_type}.embeddings.word_embeddings.weight"] == pytest.approx(1e-3 * 0.8**4)
    assert len(set(lrs.values())) == 5  # head, 3 layers, embeddings


def test_layer_lr_decay_needs_numbered_layers_and_is_off_at_one():
    params = [("head.weight", torch.nn.Parameter(torch.zeros(2, 2))), ("head.bias", torch.nn.Parameter(torch.zeros(2)))]
    with pytest.raises(GenreLabError, match=r"model.layer_lr_decay=0.8 needs numbered encoder layers"):
        parameter_groups(params, 1e-3, 0.0, 0.8)
    assert [g["lr"] for g in parameter_groups(params, 1e-3, 0.0, 1.0)] == [1e-3, 1e-3]


@pytest.mark.parametrize(("name", "position"), [
    ("model.bert.encoder.layer.11.attention.self.query.weight", 11),
    ("model.distilbert.transformer.layer.0.ffn.lin1.weight", 0),
    ("model.model.layers.3.attn.Wqkv.weight", 3),  # ModernBERT
    ("model.roberta.embeddings.word_embeddings.weight", EMBEDDINGS),
    ("model.encoder.embeddings.LayerNorm.bias", EMBEDDINGS),  # mean pooling
    ("model.bert.pooler.dense.weight", None),
    ("model.classifier.out_proj.weight", None),
])
def test_encoder_position_of_parameter_names(name, position):
    assert encoder_position(name) == position


def scheduler_config(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(config_dir() / "scheduler" / f"{name}.yaml"))


@pytest.mark.parametrize(("name", "at_step_4"), [
    ("linear", 0.75),  # (10 - 4) / (10 - 2)
    ("cosine", 0.5 * (1 + math.cos(math.pi * 2 / 8))),
    ("constant_with_warmup", 1.0),
])
def test_each_scheduler_config_gets_the_warmup_and_step_counts(name, at_step_4):
    module = GenreClassifier("tiny", ["a", "b"], lr=1e-3, warmup_ratio=0.2, scheduler=scheduler_config(name))
    module.trainer = STEPS
    configured = module.configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    factors = []
    for _ in range(4):
        factors.append(optimizer.param_groups[0]["lr"] / 1e-3)
        optimizer.step()
        scheduler.step()
    factors.append(optimizer.param_groups[0]["lr"] / 1e-3)
    assert factors[:3] == pytest.approx([0.0, 0.5, 1.0])  # 2 warmup steps
    assert factors[4] == pytest.approx(at_step_4)


def test_fused_only_when_wanted_and_every_parameter_is_a_float_on_a_fusable_device():
    floats = [torch.zeros(2, 2), torch.zeros(3)]
    assert fused_ok(floats) and fused_ok(floats, wanted=True)
    assert not fused_ok(floats, wanted=False)
    assert not fused_ok([*floats, torch.zeros(2, dtype=torch.long)])
    assert not fused_ok([*floats, torch.zeros(2, device="meta")])


def test_build_optimizers_calls_the_configured_partials_with_what_it_supplies():
    layer = torch.nn.Linear(3, 2)
    hparams = {"lr": 0.1, "weight_decay": 0.01, "warmup_ratio": 0.5,
               "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "momentum": 0.9}}
    built = build_optimizers(layer.named_parameters(), hparams, 4)
    optimizer, schedule = built["optimizer"], built["lr_scheduler"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    assert [(g["weight_decay"], len(g["params"])) for g in optimizer.param_groups] == [(0.01, 1), (0.0, 1)]
    assert schedule["interval"] == "step" and optimizer.param_groups[0]["lr"] == 0.0  # 2 warmup steps of 4
    optimizer.step()
    schedule["scheduler"].step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


@pytest.mark.parametrize(("group", "key", "owner"),
                         [(group, key, owner) for group, keys in SUPPLIED.items() for key, owner in keys.items()])
def test_every_supplied_argument_is_refused_in_its_config(group, key, owner):
    node = {"_target_": "x", "_partial_": True, key: 1}
    with pytest.raises(GenreLabError, match=rf"^{group}.{key} is supplied by the module \({owner}\); remove it"):
        check_recipe(**{"optimizer": None, "scheduler": None, group: node})
    check_recipe(None, None)
    with pytest.raises(GenreLabError, match=rf"{group} must be a config with a _target_ and _partial_: true"):
        check_recipe(**{"optimizer": None, "scheduler": None, group: {"_target_": "x"}})
