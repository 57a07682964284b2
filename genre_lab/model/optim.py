"""The classifier's optimizer and schedule: parameter groups (no decay on biases and norms, layer-wise lr decay),
the configured ``_partial_`` optimizer and scheduler (conf/optimizer, conf/scheduler) called with what the module
supplies, fused AdamW where torch has it, and the check that those configs leave the supplied arguments alone."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from genre_lab.errors import GenreLabError

# Plain configs, not objects, in the hyper-parameters: checkpoints stay weights_only-loadable.
DEFAULT_OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True}
DEFAULT_SCHEDULER = {"_target_": "transformers.get_linear_schedule_with_warmup", "_partial_": True}
# What the module passes to the partials, and the model.* key a user sets instead: one source of truth.
SUPPLIED = {
    "optimizer": {"params": "the module's parameter groups", "lr": "model.lr", "weight_decay": "model.weight_decay",
                  "fused": "model.fused_adamw"},
    "scheduler": {"optimizer": "the module's optimizer", "num_warmup_steps": "model.warmup_ratio",
                  "num_training_steps": "the trainer's step count"},
}
# a numbered encoder block: bert.encoder.layer.3., distilbert.transformer.layer.3., model.layers.3.
LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")
EMBEDDINGS = -1  # the position of embedding parameters: below layer 0
FUSABLE_DEVICES = {"cpu", "cuda", "mps", "xpu"}


def check_recipe(optimizer: Mapping[str, Any] | None, scheduler: Mapping[str, Any] | None) -> None:
    """``optimizer``/``scheduler`` configs: ``_partial_`` constructors that leave to the module what it supplies."""
    for group, node in (("optimizer", optimizer), ("scheduler", scheduler)):
        if node is None:
            continue
        if not isinstance(node, Mapping) or "_target_" not in node or node.get("_partial_") is not True:
            raise GenreLabError(f"{group} must be a config with a _target_ and _partial_: true (the module calls it "
                                f"with what it supplies); pick one of conf/{group}/*.yaml, e.g. {group}="
                                f"{'adamw' if group == 'optimizer' else 'linear'}")
        for key, owner in SUPPLIED[group].items():
            if key in node:
                raise GenreLabError(f"{group}.{key} is supplied by the module ({owner}); remove it"
                                    + (f" and set {owner}" if owner.startswith("model.") else ""))


def encoder_position(name: str) -> int | None:
    """Where a parameter sits in the encoder: its layer number, ``EMBEDDINGS`` below layer 0, None for the head
    (classifier, pooler, anything above the numbered layers)."""
    match = LAYER.search(name)
    if match:
        return int(match.group(1))
    return EMBEDDINGS if any("embed" in part for part in name.split(".")) else None


def parameter_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float,
                     layer_lr_decay: float | None = None) -> list[dict[str, Any]]:
    """Optimizer groups: no weight decay on biases and norm weights (parameters with fewer than 2 dims); with
    ``layer_lr_decay`` d, the head at ``lr``, the top encoder layer at lr·d, the next at lr·d², …, embeddings
    lowest. Without it, exactly two groups (decayed, not decayed)."""
    params = [(n, p) for n, p in named if p.requires_grad]
    decay = None if layer_lr_decay in (None, 1.0) else float(layer_lr_decay)
    positions = {n: encoder_position(n) if decay else None for n, _ in params}
    layers = [pos for pos in positions.values() if pos is not None and pos >= 0]
    if decay and not layers:
        raise GenreLabError(f"model.layer_lr_decay={layer_lr_decay} needs numbered encoder layers (parameter names "
                            "with .layer.<N>. or .layers.<N>.), and this backbone has none; set "
                            "model.layer_lr_decay=null")
    top = max(layers, default=0) + 1
    groups: dict[tuple[float, bool], dict[str, Any]] = {}
    for name, p in params:
        pos, decayed = positions[name], p.ndim >= 2
        group = groups.setdefault((-math.inf if pos is None else -pos, decayed), {
            "params": [], "weight_decay": weight_decay if decayed else 0.0,
            "lr": lr * (1.0 if pos is None else decay ** (top - pos)),
        })
        if decay:
            part = "head" if pos is None else "embeddings" if pos == EMBEDDINGS else f"layer.{pos}"
            group["name"] = part if decayed else f"{part}/no_decay"  # LearningRateMonitor's name for the group
        group["params"].append(p)
    # head first, then the layers from the top down, embeddings last; decayed before not decayed
    return [groups[key] for key in sorted(groups, key=lambda key: (key[0], not key[1]))]


def accepts(function: Any, name: str) -> bool:
    return name in inspect.signature(function).parameters


def fused_ok(params: Iterable[torch.Tensor], wanted: bool = True) -> bool:
    """Fused AdamW (one kernel for all parameters) when ``wanted`` (``model.fused_adamw``) and torch has it for
    these devices and dtypes."""
    return wanted and all(p.device.type in FUSABLE_DEVICES and p.is_floating_point() for p in params)


def build_optimizers(named: Iterable[tuple[str, nn.Parameter]], hparams: Mapping[str, Any],
                     stepping_batches: int) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` answer: the configured optimizer over ``parameter_groups`` and the
    configured schedule over ``stepping_batches`` steps (warmup: ``warmup_ratio`` of them), stepped every step.
    ``hparams``: the module's (lr, weight_decay, warmup_ratio; optional layer_lr_decay, fused_adamw, optimizer,
    scheduler)."""
    lr = hparams["lr"]
    groups = parameter_groups(named, lr, hparams["weight_decay"], hparams.get("layer_lr_decay"))
    make_optimizer = instantiate(hparams.get("optimizer") or DEFAULT_OPTIMIZER)
    params = [p for group in groups for p in group["params"]]
    wanted = bool(hparams.get("fused_adamw", True))
    fused = {"fused": True} if accepts(make_optimizer, "fused") and fused_ok(params, wanted) else {}
    optimizer = make_optimizer(groups, lr=lr, **fused)
    total = max(1, int(stepping_batches))
    steps = {"num_warmup_steps": int(hparams["warmup_ratio"] * total), "num_training_steps": total}
    make_scheduler = instantiate(hparams.get("scheduler") or DEFAULT_SCHEDULER)
    scheduler = make_scheduler(optimizer, **{k: v for k, v in steps.items() if accepts(make_scheduler, k)})
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
