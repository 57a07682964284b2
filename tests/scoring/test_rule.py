"""The NumPy decision rule (eval, predict, tuning, the ONNX runtime) decides as the torch one of the training step."""

import numpy as np
import pytest
import torch

from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.rule import DecisionRule

RULES = [{"threshold": 0.5}, {"threshold": [0.2, 0.5, 0.7, 0.4, 0.9]}, {"threshold": 0.8, "at_least_one": True},
         {"threshold": [0.9, 0.95, 0.9, 0.99, 0.9], "at_least_one": True}, {"top_k": 1}, {"top_k": 3}]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", range(3))
def test_numpy_and_torch_decide_alike(rule, seed):
    probs = np.random.default_rng(seed).random((200, 5), dtype=np.float32)
    decided = DecisionRule(**rule).decide(probs)
    assert decided.dtype == np.int64 and decided.shape == probs.shape
    np.testing.assert_array_equal(decided, Decoder(**rule)(torch.from_numpy(probs)).numpy())
    np.testing.assert_array_equal(decided, Decoder(**rule).decide(probs))


def test_ties_and_empty_inputs():
    probs = np.array([[0.3, 0.3, 0.1], [0.2, 0.2, 0.2]], dtype=np.float32)
    assert DecisionRule(top_k=1).decide(probs).tolist() == [[1, 0, 0], [1, 0, 0]]  # the first of equals
    assert DecisionRule(0.5, at_least_one=True).decide(probs).tolist() == [[1, 0, 0], [1, 0, 0]]
    for rule in ({"threshold": 0.5, "at_least_one": True}, {"top_k": 2}):
        assert DecisionRule(**rule).decide(np.empty((0, 3), dtype=np.float32)).shape == (0, 3)


def test_a_decoder_is_its_rule_with_torch_added():
    rule = Decoder([0.3, 0.6], at_least_one=True).with_overrides(top_k=None)
    assert isinstance(rule, Decoder) and isinstance(rule.for_genres(2), Decoder)
    assert rule.to_dict() == DecisionRule([0.3, 0.6], at_least_one=True).to_dict()
