"""The classifier: a Hugging Face encoder with its sequence-classification head, one output per genre.

transformers is imported inside ``load_classifier`` on purpose (see genre_lab/backbones.py)."""

from __future__ import annotations

from typing import Any

from genre_lab.backbones import cannot_load, resolve_backbone
from genre_lab.errors import GenreLabError

DROPOUT_KEYS = ("seq_classif_dropout", "classifier_dropout")
# tokenizer and backbone-name helpers that lived here before they moved to the neutral genre_lab.backbones
MOVED = ("cache_dir", "minilm_path", "build_tiny_backbone", "load_tokenizer", "position_limit", "check_max_length")


def __getattr__(name: str) -> object:
    if name in MOVED:
        raise AttributeError(f"genre_lab.model.backbone.{name} moved to genre_lab.backbones.{name} (data/ must not "
                             "import model/): from genre_lab.backbones import " + name)
    raise AttributeError(f"module 'genre_lab.model.backbone' has no attribute {name!r}")


def load_classifier(
    name: str, label_names: list[str], dropout: float | None = None, config: dict | None = None,
    attn_implementation: str | None = None,
) -> Any:
    """``AutoModelForSequenceClassification`` for ``name`` with one output per genre.

    With ``config`` (a saved ``config.to_dict()``), the architecture is rebuilt without touching the
    network or the pretrained weights: the caller loads a state dict on top. ``attn_implementation``
    (``sdpa``, ``eager``, ``flash_attention_2``; None = transformers' default, SDPA where supported).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification  # deferred: see backbones.py

    labels = {
        "num_labels": len(label_names),
        "id2label": dict(enumerate(label_names)),
        "label2id": {n: i for i, n in enumerate(label_names)},
        "problem_type": "multi_label_classification",
    }
    if config is not None:
        hf_config = AutoConfig.for_model(**{**config, **labels})
        return AutoModelForSequenceClassification.from_config(hf_config, attn_implementation=attn_implementation)
    path = resolve_backbone(name)
    try:
        hf_config = AutoConfig.from_pretrained(path, **labels)
    except (OSError, ValueError) as err:
        raise cannot_load(name, err) from None
    for key in DROPOUT_KEYS:
        if dropout is not None and hasattr(hf_config, key):
            setattr(hf_config, key, dropout)
    from transformers.utils import logging as hf_logging  # deferred: as above

    # transformers prints a table of the (expected) freshly initialised head weights; keep it quiet.
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            path, config=hf_config, attn_implementation=attn_implementation
        )
    except ValueError as err:
        if attn_implementation is None or "attn_implementation" not in str(err):
            raise
        raise GenreLabError(f"model.attn_implementation={attn_implementation!r} does not work with backbone {name!r}: "
                            f"{str(err).splitlines()[0]} Use null (transformers' default), sdpa or eager.") from None
    finally:
        hf_logging.set_verbosity(verbosity)
