import pytest

from genre_lab.errors import GenreLabError
from genre_lab.model.backbone import load_classifier, load_tokenizer, resolve_backbone


def test_unloadable_backbone_names_the_offline_choices():
    with pytest.raises(GenreLabError) as err:
        load_classifier("no-such-org/no-such-encoder", ["a", "b"])
    assert "model=minilm" in str(err.value) and "model=tiny" in str(err.value)
    with pytest.raises(GenreLabError, match="model=minilm"):
        load_tokenizer("no-such-org/no-such-encoder")


def test_tiny_backbone_is_built_once_and_loads_offline():
    path = resolve_backbone("tiny")
    assert resolve_backbone("tiny") == path
    model = load_classifier("tiny", ["a", "b", "c"], dropout=0.3)
    assert model.config.num_labels == 3 and model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.seq_classif_dropout == 0.3
    tokenizer = load_tokenizer("tiny")
    assert tokenizer.is_fast and tokenizer("a dark castle")["input_ids"][0] == tokenizer.cls_token_id


def test_rebuilding_from_a_saved_config_needs_no_weights():
    model = load_classifier("tiny", ["a", "b"])
    rebuilt = load_classifier("anything-not-loadable", ["a", "b"], config=model.config.to_dict())
    assert type(rebuilt) is type(model)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())
