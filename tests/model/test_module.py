import math
import re

import pytest
import torch
from omegaconf import OmegaConf
from torch.nn import functional as F

from genre_lab.config_dir import config_dir
from genre_lab.errors import GenreLabError
from genre_lab.model.module import EMBEDDINGS, GenreClassifier, encoder_position, parameter_groups
from genre_lab.model.pooling import masked_mean
from genre_lab.scoring.decoding import Decoder
from tests.conftest import QUIET, genre_lab_here


def test_no_weight_decay_on_biases_and_norms():
    module = GenreClassifier("tiny", ["a", "b", "c"], weight_decay=0.05)
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    groups = module.configure_optimizers()["optimizer"].param_groups
    decayed, plain = groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim == 1 for p in plain["params"])
    names = {id(p): n for n, p in module.named_parameters()}
    assert any("LayerNorm" in names[id(p)] or "layer_norm" in names[id(p)] for p in plain["params"])


def test_adamw_is_fused_unless_turned_off():
    module = GenreClassifier("tiny", ["a", "b"])
    module.trainer = type("T", (), {"estimated_stepping_batches": 10})()
    assert module.configure_optimizers()["optimizer"].defaults["fused"] is True
    plain = GenreClassifier("tiny", ["a", "b"], fused_adamw=False)
    plain.trainer = module.trainer
    assert not plain.configure_optimizers()["optimizer"].defaults["fused"]


def test_backbone_is_in_train_mode_so_dropout_is_active():
    module = GenreClassifier("tiny", ["a", "b"])
    assert all(m.training for m in module.model.modules())


def test_checkpoint_alone_rebuilds_model_label_space_and_decoder(tmp_path):
    import pytorch_lightning as pl

    module = GenreClassifier("tiny", ["drama", "horror", "scifi"], multi_label=True,
                             decoder=Decoder(threshold=[0.3, 0.4, 0.6]))
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.strategy.connect(module)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)

    restored = GenreClassifier.load_from_checkpoint(path, weights_only=True)
    assert restored.label_space == module.label_space
    assert restored.decoder.threshold == [0.3, 0.4, 0.6]
    ids = torch.randint(5, 100, (2, 12))
    mask = torch.ones_like(ids)
    module.eval()
    restored.eval()
    torch.testing.assert_close(restored(ids, mask), module(ids, mask))
    assert restored.hparams.backbone_config["model_type"] == "distilbert"


# -- the recipe: layer-wise lr decay, objectives, label smoothing, optimizer/scheduler configs ------------------
STEPS = type("T", (), {"estimated_stepping_batches": 10})()


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


def test_ce_probabilities_are_a_softmax_and_its_loss_is_cross_entropy():
    ce = GenreClassifier("tiny", ["a", "b", "c"], objective="ce")
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    probs = ce.probabilities(logits)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    torch.testing.assert_close(probs, torch.softmax(logits, -1))
    torch.testing.assert_close(ce.loss(logits, targets), F.cross_entropy(logits, torch.tensor([0, 2])))
    bce = GenreClassifier("tiny", ["a", "b", "c"])
    torch.testing.assert_close(bce.probabilities(logits), torch.sigmoid(logits))
    assert ce.model.config.problem_type == "single_label_classification"
    assert bce.model.config.problem_type == "multi_label_classification"


def test_label_smoothing_smooths_each_objectives_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    bce = GenreClassifier("tiny", ["a", "b", "c"], label_smoothing=0.2)
    smoothed = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.1, 0.9]])
    p = torch.sigmoid(logits)
    by_hand = -(smoothed * p.log() + (1 - smoothed) * (1 - p).log()).mean()
    torch.testing.assert_close(bce.loss(logits, targets), by_hand)
    ce = GenreClassifier("tiny", ["a", "b", "c"], objective="ce", label_smoothing=0.2)
    expected = F.cross_entropy(logits, torch.tensor([0, 2]), label_smoothing=0.2)
    torch.testing.assert_close(ce.loss(logits, targets), expected)
    assert not torch.isclose(expected, F.cross_entropy(logits, torch.tensor([0, 2])))


@pytest.mark.parametrize("pooling", ["head", "mean"])
def test_prior_bias_is_log_odds_for_bce_and_log_priors_for_ce(pooling):
    prior = torch.tensor([0.5, 0.3, 0.2])
    for objective, expected in (("bce", torch.log(prior / (1 - prior))), ("ce", torch.log(prior))):
        module = GenreClassifier("tiny", ["a", "b", "c"], objective=objective, pooling=pooling,
                                 label_prior=prior.tolist())
        torch.testing.assert_close(module.model.classifier.bias.detach(), expected)


@pytest.mark.parametrize(("settings", "message"), [
    ({"objective": "softmax"}, r"model.objective='softmax' must be one of bce, ce"),
    ({"label_smoothing": 1.0}, r"model.label_smoothing=1.0 must be a number in \[0, 1\)"),
    ({"layer_lr_decay": 0}, r"model.layer_lr_decay=0 must be a number in \(0, 1\] or null"),
    ({"pooling": "cls"}, r"model.pooling='cls' must be one of head, mean"),
    ({"objective": "ce", "pos_weight": [1.0, 2.0]}, r"with model.objective=ce set model.pos_weight=null"),
    ({"optimizer": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 0.1}},
     r"optimizer.lr is supplied by the module \(model.lr\); remove it and set model.lr"),
    ({"optimizer": {"_target_": "torch.optim.AdamW"}}, r"optimizer must be a config with a _target_ and _partial_"),
    ({"scheduler": {"_target_": "transformers.get_linear_schedule_with_warmup", "_partial_": True,
                    "num_warmup_steps": 3}}, r"scheduler.num_warmup_steps is supplied by the module"),
])
def test_bad_recipe_settings_name_the_key(settings, message):
    with pytest.raises(GenreLabError, match=message):
        GenreClassifier("tiny", ["a", "b"], **settings)


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


def test_a_mean_pooling_ce_checkpoint_with_its_recipe_loads_weights_only(tmp_path):
    import pytorch_lightning as pl

    from genre_lab.runs.finished import Run

    module = GenreClassifier("tiny", ["drama", "horror", "scifi"], objective="ce", pooling="mean",
                             layer_lr_decay=0.8, scheduler=scheduler_config("cosine"),
                             optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "betas": [0.9, 0.98]})
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.strategy.connect(module)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    ids = torch.randint(5, 100, (2, 12))
    mask = torch.ones_like(ids)
    module.eval()
    for restored in (GenreClassifier.load_from_checkpoint(path, weights_only=True), Run(path, None).model):
        restored.eval()
        assert restored.hparams.scheduler == scheduler_config("cosine") and restored.hparams.pooling == "mean"
        torch.testing.assert_close(restored.probabilities(restored(ids, mask)), module.probabilities(module(ids, mask)))
        restored.trainer = STEPS
        assert tuple(restored.configure_optimizers()["optimizer"].defaults["betas"]) == (0.9, 0.98)


def test_mean_pooling_ignores_padding():
    module = GenreClassifier("tiny", ["a", "b", "c"], pooling="mean").eval()
    ids = torch.randint(5, 100, (1, 7))
    padded = torch.cat([ids, torch.zeros(1, 5, dtype=torch.long)], dim=1)
    mask = torch.cat([torch.ones(1, 7), torch.zeros(1, 5)], dim=1).long()
    with torch.no_grad():
        torch.testing.assert_close(module(padded, mask), module(ids, torch.ones_like(ids)))
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, -100.0]]])
    torch.testing.assert_close(masked_mean(hidden, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))


def test_ce_is_refused_on_multi_label_training_data(multilabel_csv, tmp_path):
    result = genre_lab_here("train", "model=tiny", f"data.train_csv={multilabel_csv}", "data.label_column=genres",
                            "data.multi_label=true", "model.objective=ce", "trainer.max_epochs=1", *QUIET,
                            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("genre-lab: error: ")]
    assert len(errors) == 1 and "model.objective=ce" in errors[0] and "use model.objective=bce" in errors[0]
    assert "134 of 400 rows" in errors[0]


@pytest.mark.parametrize("objective", ["bce", "ce"])
def test_distillation_trains_on_the_mix_of_labels_and_teacher(objective):
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    teacher = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    model = GenreClassifier("tiny", ["a", "b", "c"], objective=objective, distill_weight=0.25)
    mixed = 0.75 * targets + 0.25 * teacher
    expected = F.cross_entropy(logits, mixed) if objective == "ce" else \
        F.binary_cross_entropy_with_logits(logits, mixed)
    torch.testing.assert_close(model.loss(logits, targets, teacher), expected)
    torch.testing.assert_close(model.loss(logits, targets), model.loss(logits, targets, None))  # validation
    assert not torch.isclose(model.loss(logits, targets, teacher), model.loss(logits, targets))
    plain = GenreClassifier("tiny", ["a", "b", "c"], objective=objective)  # weight 0: the teacher is ignored
    torch.testing.assert_close(plain.loss(logits, targets, teacher), plain.loss(logits, targets))
