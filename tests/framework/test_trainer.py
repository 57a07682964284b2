"""The one Trainer builder: the configured trainer, its callbacks, and Lightning's refusals as user errors."""

import pytest
from pytorch_lightning.callbacks import EarlyStopping

from genre_lab.errors import GenreLabError
from genre_lab.framework.trainer import build_trainer
from tests.conftest import compose_train


def test_configured_callbacks_extras_and_overrides(tmp_path):
    cfg = compose_train(["model=tiny", "data=sample", "trainer.max_epochs=2"], tmp_path)
    extra = EarlyStopping(monitor="val/loss")
    trainer = build_trainer(cfg, False, [extra], log_every_n_steps=3)
    assert extra in trainer.callbacks and trainer.max_epochs == 2 and trainer.logger is None
    assert trainer.checkpoint_callback is not None  # the configured checkpoint callbacks are there
    assert trainer.log_every_n_steps == 3


def test_a_setting_lightning_rejects_is_one_user_error(tmp_path):
    cfg = compose_train(["model=tiny", "data=sample", "trainer.precision=17-bogus"], tmp_path)
    with pytest.raises(GenreLabError, match=r"trainer settings rejected by Lightning: .*17-bogus.*trainer\.\*"):
        build_trainer(cfg, False)
