import pytest
import torch
from torch.nn import functional as F

from genre_lab.errors import GenreLabError
from genre_lab.model.module import GenreClassifier, fold_calibration
from genre_lab.model.pooling import masked_mean
from genre_lab.scoring.decoding import Decoder
from tests.conftest import QUIET, genre_lab_here
from tests.model.test_optim import STEPS, scheduler_config


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


# -- the recipe: objectives, label smoothing, pooling, distillation, the settings' check ------------------------------


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


@pytest.mark.parametrize("pooling", ["head", "mean"])
def test_folding_the_calibration_into_the_output_layer_gives_the_calibrated_logits(pooling):
    module = GenreClassifier("tiny", ["a", "b", "c"], pooling=pooling).eval()
    ids, mask = torch.tensor([[5, 9, 17, 3], [8, 2, 0, 0]]), torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    before = module(ids, mask)
    calibration = {"method": "temperature", "temperature": [2.0, 0.5, 4.0]}
    module.calibration = calibration
    calibrated = module.probabilities(before)
    fold_calibration(module.model, calibration, 3)
    module.calibration = None
    torch.testing.assert_close(module(ids, mask), before / torch.tensor([2.0, 0.5, 4.0]))
    torch.testing.assert_close(module.probabilities(module(ids, mask)), calibrated)
    fold_calibration(module.model, None, 3)  # uncalibrated: nothing to fold
    torch.testing.assert_close(module(ids, mask), before / torch.tensor([2.0, 0.5, 4.0]))


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
