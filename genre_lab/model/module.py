"""GenreClassifier: an HF encoder with a classification head, trained with BCE (multi-label) or softmax
cross-entropy (single-label); the optimizer and scheduler are ``_partial_`` configs (conf/optimizer, conf/scheduler)
it calls with its parameter groups."""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torch.nn import functional as F

from genre_lab.data.labels import LabelSpace
from genre_lab.errors import GenreLabError, is_number, require_choice, require_number
from genre_lab.model.backbone import load_classifier
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import BestThresholdF1, GenreMetrics, flatten

STAGES = ("train", "val")  # a test split is scored after fit, on the final rule (train.final_metrics)
OBJECTIVES = ("bce", "ce")
POOLINGS = ("head", "mean")
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


def init_bias_to_prior(model: nn.Module, prior: Sequence[float], objective: str = "bce") -> None:
    """Start the output layer at each genre's log prior odds (bce) or log prior (ce: softmax's equivalent).

    With a zero bias, BCE spends the first hundreds of steps learning that every genre is rare
    (loss falls to the prior's entropy, top-1 stays at chance); starting there, the gradient goes
    to telling genres apart from step one (measured gain: README, Design notes).
    """
    p = torch.as_tensor(list(prior), dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == len(p)]
    with torch.no_grad():
        heads[-1].bias.copy_(torch.log(p / p.sum()) if objective == "ce" else torch.log(p / (1 - p)))


def probabilities(logits: torch.Tensor, objective: str = "bce") -> torch.Tensor:
    """The one map from logits to per-genre probabilities: softmax for ce (they sum to 1), else sigmoid."""
    return torch.softmax(logits, dim=-1) if objective == "ce" else torch.sigmoid(logits)


def check_hparams(lr: Any = 5e-5, weight_decay: Any = 0.0, warmup_ratio: Any = 0.0, dropout: Any = None,
                  layer_lr_decay: Any = None, objective: Any = "bce", label_smoothing: Any = 0.0,
                  pooling: Any = "head", pos_weight: Any = None, distill_weight: Any = 0.0) -> None:
    """The recipe's settings a run can train with (else a GenreLabError naming the key)."""
    require_number(lr, "model.lr", lambda v: v > 0, "> 0", "5e-5")
    require_number(weight_decay, "model.weight_decay", lambda v: v >= 0, "≥ 0", "0.01")
    require_number(warmup_ratio, "model.warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)", "0.1")
    if dropout is not None:
        require_number(dropout, "model.dropout", lambda v: 0 <= v < 1, "in [0, 1) or null", "0.1")
    if layer_lr_decay is not None:
        require_number(layer_lr_decay, "model.layer_lr_decay", lambda v: 0 < v <= 1,
                       "in (0, 1] or null (off)", "0.8")
    require_choice(objective, "model.objective", OBJECTIVES)
    require_number(label_smoothing, "model.label_smoothing", lambda v: 0 <= v < 1, "in [0, 1)", "0.1")
    require_choice(pooling, "model.pooling", POOLINGS)
    require_number(distill_weight, "model.distill_weight", lambda v: 0 <= v <= 1, "in [0, 1] (the teacher's share "
                   "of each training target; data/teacher=tfidf_lr gives the teacher)", "0.5")
    if objective == "ce" and pos_weight is not None:
        raise GenreLabError(f"model.pos_weight={pos_weight!r} weighs BCE's positive terms; with model.objective=ce "
                            "set model.pos_weight=null")


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


def check_single_label(objective: str, several: int, rows: int, source: str) -> None:
    """ce (softmax: one genre per movie) refuses training data where ``several`` of ``rows`` carry several genres."""
    if objective == "ce" and several:
        raise GenreLabError(f"model.objective=ce gives each movie one genre (softmax), but {several} of {rows} rows of "
                            f"{source} have several; use model.objective=bce (the default) for multi-label data")


def check_pos_weight(pos_weight: Any, label_names: Sequence[str]) -> None:
    """``model.pos_weight``: null, or one weight ≥ 0 per genre (``auto`` is resolved by train; it gives 0 to a
    genre on every row)."""
    if pos_weight is None:
        return
    weights = list(pos_weight) if isinstance(pos_weight, Sequence) and not isinstance(pos_weight, str) else []
    if len(weights) != len(label_names) or not all(is_number(w) and w >= 0 for w in weights):
        raise GenreLabError(f"model.pos_weight={pos_weight!r} must be auto, null or {len(label_names)} numbers ≥ 0, "
                            f"one per genre in the order {list(label_names)}")


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


class GenreClassifier(pl.LightningModule):
    """Genre classifier: multi-label with ``objective=bce`` (single-label data is the one-genre case), one genre
    per movie with ``objective=ce``.

    A checkpoint alone rebuilds it: hyper-parameters carry the label names, the backbone's
    architecture config (so no download is needed to restore it) and the optimizer/scheduler configs
    (plain dicts), the state dict the weights, and ``checkpoint["decoder"]`` the decision rule.
    """

    def __init__(
        self,
        backbone: str,
        label_names: Sequence[str],
        multi_label: bool = False,
        lr: float = 5e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        dropout: float | None = None,
        pos_weight: Sequence[float] | None = None,
        label_prior: Sequence[float] | None = None,
        prior_bias_init: bool = True,
        decoder: Decoder | None = None,
        backbone_config: dict[str, Any] | None = None,
        attn_implementation: str | None = None,
        compile: bool = False,
        fused_adamw: bool = True,
        layer_lr_decay: float | None = None,
        objective: str = "bce",
        label_smoothing: float = 0.0,
        pooling: str = "head",
        distill_weight: float = 0.0,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_hparams(lr, weight_decay, warmup_ratio, dropout, layer_lr_decay, objective, label_smoothing, pooling,
                      pos_weight, distill_weight)
        check_pos_weight(pos_weight, label_names)
        check_recipe(optimizer, scheduler)
        self.save_hyperparameters(ignore=["decoder"])
        self.label_space = LabelSpace(tuple(label_names), multi_label)
        self.model = load_classifier(backbone, list(label_names), dropout, backbone_config, attn_implementation,
                                     objective, pooling)
        # from_pretrained returns eval mode, and Lightning keeps sub-module modes as it finds them:
        # without this, dropout would stay off during training.
        self.model.train()
        if prior_bias_init and label_prior is not None and backbone_config is None:
            init_bias_to_prior(self.model, label_prior, objective)
        if backbone_config is None:
            self.hparams["backbone_config"] = self.model.config.to_dict()
        self.decoder = decoder or Decoder()
        weight = torch.tensor(list(pos_weight), dtype=torch.float32) if pos_weight is not None else None
        # the attribute and its pos_weight buffer keep their names: earlier checkpoints' state dicts hold them
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
        # ModuleDict keys must not shadow nn.Module attributes (``train``), hence the suffix.
        self.metrics = nn.ModuleDict({f"{s}_metrics": GenreMetrics(len(label_names)) for s in STAGES})
        # val/f1_micro_tuned, val/f1_macro_tuned: what picks best.ckpt and what pruning compares (train.yaml monitor)
        self.val_tuned = BestThresholdF1(len(label_names))
        self.compiled_forward: Any = None  # set by configure_model when model.compile=true

    def configure_model(self) -> None:
        # torch.compile of the backbone's forward function, not of the module: a compiled function is a plain
        # attribute, outside the module tree, so checkpoints keep their plain parameter names.
        if self.hparams.get("compile") and self.compiled_forward is None:
            self.compiled_forward = torch.compile(self.model.forward, dynamic=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        forward = self.compiled_forward or self.model
        return forward(input_ids=input_ids, attention_mask=attention_mask).logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-genre probabilities for this model's objective (metrics, final figures, eval, predict)."""
        return probabilities(logits, self.hparams.get("objective", "bce"))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """BCE on targets smoothed to y·(1−ε)+ε/2, or cross-entropy with torch's label smoothing ε; with a
        ``teacher`` (training batches of a distilled run), on ``(1−w)·targets + w·teacher`` first."""
        smoothing = float(self.hparams.get("label_smoothing") or 0.0)
        ce = self.hparams.get("objective") == "ce"
        if ce:  # one-hot rows as class probabilities: the same loss as class indices
            targets = targets / targets.sum(-1, keepdim=True).clamp(min=1)
        weight = float(self.hparams.get("distill_weight") or 0.0)
        if teacher is not None and weight:
            targets = (1 - weight) * targets + weight * teacher
        if ce:
            return F.cross_entropy(logits, targets, label_smoothing=smoothing)
        return self.loss_fn(logits, targets * (1 - smoothing) + smoothing / 2 if smoothing else targets)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss(logits, batch["labels"], batch.get("teacher"))
        probs = self.probabilities(logits.detach().float())
        self.metrics[f"{stage}_metrics"].update(probs, self.decoder(probs), batch["labels"])
        if stage == "val":
            self.val_tuned.update(probs, batch["labels"])
        # Not on the progress bar: the bar reads its metrics every step, a GPU sync per step.
        self.log(f"{stage}/loss", loss, on_step=stage == "train", on_epoch=True,
                 batch_size=len(logits), sync_dist=stage != "train")
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def _epoch_end(self, stage: str) -> None:
        results = self.metrics[f"{stage}_metrics"].compute()
        self.metrics[f"{stage}_metrics"].reset()
        flat = flatten(results, self.label_space.names, stage)
        if stage == "val":
            flat.update({f"val/{k}": float(v) for k, v in self.val_tuned.compute().items()})
            self.val_tuned.reset()
        headline = f"{stage}/f1_micro"
        self.log(headline, flat.pop(headline), prog_bar=True)
        self.log_dict(flat)

    def on_train_epoch_end(self) -> None:
        self._epoch_end("train")

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def configure_optimizers(self) -> dict[str, Any]:
        """The configured optimizer over ``parameter_groups`` and the configured schedule, stepped every step."""
        hp = self.hparams
        groups = parameter_groups(self.named_parameters(), hp.lr, hp.weight_decay, hp.get("layer_lr_decay"))
        make_optimizer = instantiate(hp.get("optimizer") or DEFAULT_OPTIMIZER)
        params = [p for group in groups for p in group["params"]]
        fused = {"fused": True} if accepts(make_optimizer, "fused") and self._fused_ok(params) else {}
        optimizer = make_optimizer(groups, lr=hp.lr, **fused)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        steps = {"num_warmup_steps": int(hp.warmup_ratio * total), "num_training_steps": total}
        make_scheduler = instantiate(hp.get("scheduler") or DEFAULT_SCHEDULER)
        scheduler = make_scheduler(optimizer, **{k: v for k, v in steps.items() if accepts(make_scheduler, k)})
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _fused_ok(self, params: list[torch.Tensor]) -> bool:
        """Fused AdamW (one kernel for all parameters) where torch has it for these devices and dtypes."""
        if not self.hparams.get("fused_adamw", True):
            return False
        fusable = {"cpu", "cuda", "mps", "xpu"}
        return all(p.device.type in fusable and p.is_floating_point() for p in params)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["label_space"] = self.label_space.to_dict()
        checkpoint["decoder"] = self.decoder.to_dict()
        # eval/predict compute in the same precision by default, so they reproduce training's figures
        checkpoint["precision"] = str(self.trainer.precision) if self._trainer is not None else "32-true"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "decoder" in checkpoint:
            self.decoder = Decoder(**checkpoint["decoder"])
