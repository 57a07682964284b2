"""LoRA adapters on the backbone (``peft=lora``, the peft library): the pretrained weights stay frozen; low-rank
updates of the chosen linear layers and the whole classification head train.

A run's checkpoint then keeps only what trained (adapters, head, buffers): the frozen weights come from the
pretrained backbone again when the run is rebuilt, as at the start of training, and a fingerprint of them,
stored with the run, refuses a backbone that is not the one the adapters were trained on. ``plain_copy`` folds the
adapters into the weights: a plain Hugging Face model (export, ONNX).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from genre_lab.errors import GenreLabError, require_number

log = logging.getLogger(__name__)
HEADS = ("pre_classifier", "classifier", "score")  # classification-head modules (DistilBERT, BERT, ours, …)
# query and value projections of encoders peft's own table lacks (it has bert, roberta, deberta, …)
MORE_TARGETS = {"distilbert": ["q_lin", "v_lin"]}


def check_lora(settings: Mapping[str, Any] | None) -> None:
    """``peft.*``: rank a whole number ≥ 1, alpha > 0, dropout in [0, 1), target modules null or names."""
    if settings is None:
        return
    require_number(settings.get("r"), "peft.r", lambda v: v >= 1 and int(v) == v, "≥ 1 without a fraction "
                   "(the adapters' rank)", "8")
    require_number(settings.get("lora_alpha"), "peft.lora_alpha", lambda v: v > 0, "> 0", "16")
    require_number(settings.get("lora_dropout", 0.0), "peft.lora_dropout", lambda v: 0 <= v < 1, "in [0, 1)", "0.1")
    targets = settings.get("target_modules")
    if targets is not None and not (isinstance(targets, list | tuple) and targets
                                    and all(isinstance(t, str) for t in targets)):
        raise GenreLabError(f"peft.target_modules={targets!r}: give a list of module names, e.g. [query,value], or "
                            "null for peft's choice for the backbone's architecture")


def default_targets(model: nn.Module) -> list[str]:
    """peft's usual LoRA targets for the encoder's architecture (the attention's query and value projections)."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TARGETS  # deferred: optional extra

    config = getattr(model.config, "encoder", None) or model.config  # a mean-pooling model wraps its encoder's
    kind = getattr(config, "model_type", "")
    found = TARGETS.get(kind) or MORE_TARGETS.get(kind)
    if not found:
        raise GenreLabError(f"peft has no default LoRA targets for model type {kind!r}: name the linear "
                            "layers to adapt, e.g. peft.target_modules=[query,value]")
    return list(found)


def with_lora(model: nn.Module, settings: Mapping[str, Any]) -> nn.Module:
    """``model`` under LoRA adapters (a peft ``PeftModel``); its head trains in full."""
    try:
        from peft import LoraConfig, get_peft_model  # deferred: optional extra
    except ImportError:
        raise GenreLabError("peft=lora needs the peft library: pip install 'genre_lab[peft]'") from None
    plain = {k: v for k, v in settings.items() if not k.startswith("_")}
    plain["target_modules"] = list(plain.get("target_modules") or default_targets(model))
    plain["modules_to_save"] = [name for name in HEADS if hasattr(model, name)]
    try:
        wrapped = get_peft_model(model, LoraConfig(**{**plain, "r": int(plain["r"])}))
    except ValueError as err:  # e.g. target modules the backbone lacks
        raise GenreLabError(f"peft.target_modules={plain['target_modules']}: {str(err).splitlines()[0]}") from None
    trained, total = parameter_counts(wrapped)
    log.info("LoRA r=%s on %s: %s of %s parameters train (%.2f%%)", plain["r"], plain["target_modules"],
             f"{trained:,}", f"{total:,}", 100 * trained / total)
    return wrapped


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, all) parameters."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def is_adapted(model: nn.Module) -> bool:
    return hasattr(model, "merge_and_unload") and hasattr(model, "peft_config")


def plain_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` as a plain Hugging Face model: LoRA adapters folded into the weights they adapt."""
    copied = copy.deepcopy(model)
    return copied.merge_and_unload() if is_adapted(copied) else copied


def fingerprint(model: nn.Module) -> list[float]:
    """Sum and absolute sum of the frozen pretrained weights (float64; the head's frozen original, randomly
    initialised, left out): what identifies the backbone under the adapters without storing it."""
    frozen = [p.detach().double() for name, p in model.named_parameters()
              if not p.requires_grad and not set(name.split(".")) & set(HEADS)]
    if not frozen:
        return [0.0, 0.0]
    return [float(sum(t.sum() for t in frozen)), float(sum(t.abs().sum() for t in frozen))]


def check_fingerprint(model: nn.Module, stored: list[float] | None, backbone: str) -> None:
    if stored is None:
        return
    found = fingerprint(model)
    if not torch.allclose(torch.tensor(found, dtype=torch.float64), torch.tensor(stored, dtype=torch.float64),
                          rtol=1e-6):
        raise GenreLabError(f"backbone {backbone!r} loaded here is not the one this run's LoRA adapters were trained "
                            "on (its frozen weights differ); the checkpoint keeps only the adapters and the head, so "
                            "load the run where the same pretrained backbone is available")
