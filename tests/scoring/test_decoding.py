import pytest
import torch
from omegaconf import OmegaConf

from genre_lab.errors import GenreLabError
from genre_lab.scoring.decoding import Decoder, rule_for_run

PROBS = torch.tensor([[0.7, 0.2, 0.55], [0.1, 0.3, 0.2], [0.5, 0.49, 0.9]])


def test_global_and_per_class_thresholds():
    assert Decoder(0.5)(PROBS).tolist() == [[1, 0, 1], [0, 0, 0], [0, 0, 1]]  # strictly above
    assert Decoder([0.6, 0.25, 0.95])(PROBS).tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 0]]


def test_top_k_and_at_least_one():
    assert Decoder(top_k=1)(PROBS).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert Decoder(top_k=2)(PROBS).sum(dim=1).tolist() == [2, 2, 2]
    assert Decoder(0.5, at_least_one=True)(PROBS).tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]


@pytest.mark.parametrize("kwargs", [{"threshold": 0.0}, {"threshold": 1.0}, {"threshold": [0.5, 1.2]},
                                    {"top_k": 0}])
def test_bad_decoder_settings(kwargs):
    with pytest.raises(GenreLabError, match="decode"):
        Decoder(**kwargs)


def test_per_class_threshold_count_must_match():
    with pytest.raises(GenreLabError, match="2 values but the model has 3"):
        Decoder([0.5, 0.5])(PROBS)


@pytest.mark.parametrize("kwargs, key", [({"threshold": "abc"}, "decode.threshold='abc'"),
                                         ({"threshold": True}, "decode.threshold=True"),
                                         ({"threshold": []}, "decode.threshold=[]"),
                                         ({"top_k": "abc"}, "decode.top_k='abc'"),
                                         ({"top_k": 1.5}, "decode.top_k=1.5"),
                                         ({"at_least_one": "yes"}, "decode.at_least_one='yes'")])
def test_settings_of_the_wrong_type_name_the_key(kwargs, key):
    with pytest.raises(GenreLabError) as err:
        Decoder(**kwargs)
    assert str(err.value).startswith(key)


def test_a_decoder_is_checked_against_the_genre_count():
    assert Decoder(top_k=3).for_genres(3).top_k == 3
    with pytest.raises(GenreLabError, match="decode.top_k=4 but the training data has 3 genres"):
        Decoder(top_k=4).for_genres(3, "the training data")
    with pytest.raises(GenreLabError, match="2 values but the model has 3 genres"):
        Decoder([0.5, 0.5]).for_genres(3)


def test_eval_and_predict_keep_the_saved_rule_or_replace_it():
    saved = Decoder([0.3, 0.6, 0.4], at_least_one=True)
    keep = OmegaConf.create({"threshold": None, "top_k": None, "at_least_one": None})  # decode=checkpoint
    assert rule_for_run(saved, keep) == saved
    assert rule_for_run(saved, OmegaConf.merge(keep, {"at_least_one": False})) == Decoder([0.3, 0.6, 0.4])
    top_k = OmegaConf.create({"_target_": "genre_lab.scoring.decoding.Decoder", "threshold": 0.5, "top_k": 2,
                              "at_least_one": False})  # decode=top_k decode.top_k=2
    assert rule_for_run(saved, top_k) == Decoder(0.5, top_k=2)
