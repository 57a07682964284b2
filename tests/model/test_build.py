"""The classifier from the config and the training labels' statistics (no datamodule)."""

import pytest
import torch

from genre_lab.data.labels import LabelSpace
from genre_lab.data.movie_data import LabelStats
from genre_lab.errors import GenreLabError
from genre_lab.model.build import build_model
from tests.conftest import compose_train

SPACE = LabelSpace(("comedy", "drama", "horror"), False)
STATS = LabelStats(SPACE, [0.5, 0.3, 0.2], rows=10, rows_with_several_genres=0, source="train.csv")


def test_the_head_the_prior_and_auto_class_weights_come_from_the_stats(tmp_path):
    cfg = compose_train(["model=tiny", "data=sample", "+model.pos_weight=auto", "model.pooling=head"], tmp_path)
    model = build_model(cfg, STATS)
    assert list(model.label_space.names) == list(SPACE.names)
    assert model.hparams.pos_weight == pytest.approx([1.0, 7 / 3, 4.0])  # negatives / positives
    bias = model.model.classifier.bias.detach()  # log prior odds (model.prior_bias_init)
    assert torch.allclose(bias, torch.log(torch.tensor([0.5, 0.3, 0.2]) / torch.tensor([0.5, 0.7, 0.8])), atol=1e-5)


def test_softmax_refuses_multi_label_rows(tmp_path):
    cfg = compose_train(["model=tiny", "data=sample", "model.objective=ce"], tmp_path)
    several = LabelStats(SPACE, [0.5, 0.3, 0.2], rows=10, rows_with_several_genres=4, source="train.csv")
    with pytest.raises(GenreLabError, match=r"4 of 10 rows of train.csv have several"):
        build_model(cfg, several)
