"""Mean pooling: the mean of the encoder's last hidden states over the real (non-padding) tokens, then dropout and
one linear layer per genre — what sentence-transformer backbones such as all-MiniLM-L6-v2 were trained with.

This file imports only torch and transformers, on purpose: ``save_pretrained`` copies it into an exported model
folder (``register_for_auto_class`` below), where ``AutoModelForSequenceClassification.from_pretrained(DIR,
trust_remote_code=True)`` loads it with no genre_lab installed. Its own ``model_type`` makes loading without
``trust_remote_code`` fail loudly instead of putting a randomly initialised standard head on the encoder.
genre_lab imports it only inside functions (it imports transformers; see genre_lab/backbones.py).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "genre_lab_mean_pooling"


class MeanPoolingConfig(PretrainedConfig):
    """The encoder's own config (``encoder``) plus the head's dropout; labels and problem_type as usual."""

    model_type = MODEL_TYPE
    sub_configs = {"encoder": AutoConfig}

    def __init__(self, encoder: dict[str, Any] | PretrainedConfig | None = None, classifier_dropout: float = 0.1,
                 **kwargs: Any) -> None:
        self.encoder = AutoConfig.for_model(**encoder) if isinstance(encoder, dict) else encoder
        self.classifier_dropout = classifier_dropout
        super().__init__(**kwargs)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[N, T, H]`` hidden states averaged over the positions where ``mask`` ``[N, T]`` is 1."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class MeanPoolingClassifier(PreTrainedModel):
    """Any ``AutoModel`` encoder, mean-pooled, under dropout and one linear layer: one logit per genre."""

    config_class = MeanPoolingConfig
    base_model_prefix = "encoder"
    _supports_sdpa = True

    def __init__(self, config: MeanPoolingConfig) -> None:
        super().__init__(config)
        self.encoder = AutoModel.from_config(config.encoder)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.encoder.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                **kwargs: Any) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(masked_mean(hidden, attention_mask))))


# save_pretrained then writes this file and the auto_map entries into the model folder
MeanPoolingConfig.register_for_auto_class()
MeanPoolingClassifier.register_for_auto_class("AutoModelForSequenceClassification")
