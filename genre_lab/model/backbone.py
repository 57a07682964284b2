"""The classifier: a Hugging Face encoder with one output per genre, under its own sequence-classification head
(``pooling=head``) or mean-pooled with a linear head (``pooling=mean``, genre_lab/model/pooling.py).

transformers is imported inside the functions on purpose (see genre_lab/backbones.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genre_lab.backbones import cannot_load, resolve_backbone
from genre_lab.errors import GenreLabError

DROPOUT_KEYS = ("seq_classif_dropout", "classifier_dropout")
# where architectures keep the dropout in front of their head, in the order looked up for mean pooling's head
HEAD_DROPOUT_KEYS = ("classifier_dropout", "seq_classif_dropout", "hidden_dropout_prob")
# the objective decides how transformers (and the HF pipeline) turn an exported model's logits into probabilities
PROBLEM_TYPES = {"bce": "multi_label_classification", "ce": "single_label_classification"}


def load_classifier(
    name: str, label_names: list[str], dropout: float | None = None, config: dict | None = None,
    attn_implementation: str | None = None, objective: str = "bce", pooling: str = "head",
) -> Any:
    """A classifier for ``name`` with one output per genre: ``AutoModelForSequenceClassification`` (``pooling=head``)
    or a ``MeanPoolingClassifier`` (``pooling=mean``).

    With ``config`` (a saved ``config.to_dict()``), the architecture is rebuilt without touching the
    network or the pretrained weights: the caller loads a state dict on top. ``attn_implementation``
    (``sdpa``, ``eager``, ``flash_attention_2``; None = transformers' default, SDPA where supported).
    """
    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": PROBLEM_TYPES[objective],
    }
    if pooling == "mean":
        return mean_pooling_classifier(name, labels, dropout, config, attn_implementation)
    from transformers import AutoConfig, AutoModelForSequenceClassification  # deferred: see backbones.py

    if config is not None:
        hf_config = AutoConfig.for_model(**{**config, **labels})
        return AutoModelForSequenceClassification.from_config(hf_config, attn_implementation=attn_implementation)
    path = resolve_backbone(name)
    hf_config = pretrained_config(name, path, labels)
    for key in DROPOUT_KEYS:
        if dropout is not None and hasattr(hf_config, key):
            setattr(hf_config, key, dropout)
    return from_pretrained(AutoModelForSequenceClassification.from_pretrained, name, path, hf_config,
                           attn_implementation)


def mean_pooling_classifier(name: str, labels: dict[str, Any], dropout: float | None, config: dict | None,
                            attn_implementation: str | None) -> Any:
    """The encoder (pretrained, or rebuilt from ``config``: a saved mean-pooling config or an encoder's own) under
    the mean-pooling head; the head's dropout is ``dropout``, else the architecture's own classifier dropout."""
    from transformers import AutoConfig, AutoModel  # deferred: see backbones.py

    from genre_lab.model.pooling import MODEL_TYPE, MeanPoolingClassifier, MeanPoolingConfig  # deferred: as above

    if config is not None and config.get("model_type") == MODEL_TYPE:  # a checkpoint's: weights come on top
        model = MeanPoolingClassifier(MeanPoolingConfig(**{**config, **labels}))
        if attn_implementation is not None:
            model.encoder = AutoModel.from_config(model.config.encoder, attn_implementation=attn_implementation)
        return model
    if config is not None:
        encoder_config = AutoConfig.for_model(**config)
        encoder = AutoModel.from_config(encoder_config, attn_implementation=attn_implementation)
    else:
        path = resolve_backbone(name)
        encoder_config = pretrained_config(name, path, {})
        encoder = from_pretrained(AutoModel.from_pretrained, name, path, encoder_config, attn_implementation)
    head_dropout = dropout if dropout is not None else architecture_dropout(encoder_config)
    model = MeanPoolingClassifier(MeanPoolingConfig(encoder_config.to_dict(), head_dropout, **labels))
    model.encoder = encoder  # the pretrained encoder replaces the randomly initialised one built with the class
    return model


def architecture_dropout(config: Any) -> float:
    """The dropout the architecture puts in front of its own classification head (0.1 where it names none)."""
    values = (getattr(config, key, None) for key in HEAD_DROPOUT_KEYS)
    return next((float(v) for v in values if v is not None), 0.1)


def pretrained_config(name: str, path: str, overrides: dict[str, Any]) -> Any:
    from transformers import AutoConfig  # deferred: see backbones.py

    try:
        return AutoConfig.from_pretrained(path, **overrides)
    except (OSError, ValueError) as err:
        raise cannot_load(name, err) from None


def from_pretrained(load: Callable[..., Any], name: str, path: str, hf_config: Any,
                    attn_implementation: str | None) -> Any:
    """``load(path, …)`` quietly, an attention implementation the backbone lacks being a user error."""
    from transformers.utils import logging as hf_logging  # deferred: see backbones.py

    # transformers prints a table of the (expected) freshly initialised head weights; keep it quiet.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return load(path, config=hf_config, attn_implementation=attn_implementation)
    except ValueError as err:
        if attn_implementation is None or "attn_implementation" not in str(err):
            raise
        raise GenreLabError(f"model.attn_implementation={attn_implementation!r} does not work with backbone {name!r}: "
                            f"{str(err).splitlines()[0]} Use null (transformers' default), sdpa or eager.") from None
    finally:
        hf_logging.set_verbosity(verbosity)
