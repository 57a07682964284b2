import torch

from genre_lab.decoding import Decoder
from genre_lab.model.module import GenreClassifier


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
