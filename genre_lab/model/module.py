"""GenreClassifier: an HF encoder with a classification head, trained with BCE (multi-label) or softmax
cross-entropy (single-label), and ``check_hparams``, the one check of its settings; the optimizer and schedule
(``_partial_`` configs called with its parameter groups) are built by optim.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F

from genre_lab.data.labels import LabelSpace
from genre_lab.errors import GenreLabError, is_number, require_choice, require_number
from genre_lab.model.adapters import check_fingerprint, check_lora, fingerprint, with_lora
from genre_lab.model.backbone import load_classifier
from genre_lab.model.optim import build_optimizers, check_recipe
from genre_lab.scoring.calibration import scale, temperatures
from genre_lab.scoring.decoding import Decoder
from genre_lab.scoring.metrics import BestThresholdF1, GenreMetrics, flatten

STAGES = ("train", "val")  # a test split is scored after fit, on the final rule (train.final_metrics)
OBJECTIVES = ("bce", "ce")
POOLINGS = ("head", "mean")


def head_of(hparams: Mapping[str, Any]) -> dict[str, str]:
    """A run's head: ``pooling`` and ``objective``, with the defaults of checkpoints saved before they existed."""
    return {"pooling": hparams.get("pooling", POOLINGS[0]), "objective": hparams.get("objective", OBJECTIVES[0])}


def init_bias_to_prior(model: nn.Module, prior: Sequence[float], objective: str = "bce") -> None:
    """Start the output layer at each genre's log prior odds (bce) or log prior (ce: softmax's equivalent).

    With a zero bias, BCE spends the first hundreds of steps learning that every genre is rare
    (loss falls to the prior's entropy, top-1 stays at chance); starting there, the gradient goes
    to telling genres apart from step one (measured gain: README, Design notes).
    """
    p = torch.as_tensor(list(prior), dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    with torch.no_grad():
        output_layer(model, len(p)).bias.copy_(torch.log(p / p.sum()) if objective == "ce" else torch.log(p / (1 - p)))


def output_layer(model: nn.Module, genres: int) -> nn.Linear:
    """The layer that gives the logits: the last linear layer with one output per genre."""
    return [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == genres][-1]


def fold_calibration(model: nn.Module, calibration: Mapping[str, Any] | None, genres: int) -> None:
    """Divide the output layer's weights and bias by the temperatures, in place: the model then gives calibrated
    logits itself, so an exported folder (plain transformers, ONNX) needs no calibration step of its own."""
    found = temperatures(calibration)
    if found is None:
        return
    layer = output_layer(model, genres)
    t = torch.tensor(found, dtype=layer.weight.dtype, device=layer.weight.device)
    with torch.no_grad():
        layer.weight.div_(t.unsqueeze(1))
        layer.bias.div_(t)


def probabilities(logits: torch.Tensor, objective: str = "bce") -> torch.Tensor:
    """The one map from logits to per-genre probabilities: softmax for ce (they sum to 1), else sigmoid."""
    return torch.softmax(logits, dim=-1) if objective == "ce" else torch.sigmoid(logits)


def check_hparams(lr: Any = 5e-5, weight_decay: Any = 0.0, warmup_ratio: Any = 0.0, dropout: Any = None,
                  layer_lr_decay: Any = None, objective: Any = "bce", label_smoothing: Any = 0.0,
                  pooling: Any = "head", pos_weight: Any = None, distill_weight: Any = 0.0, *,
                  optimizer: Mapping[str, Any] | None = None, scheduler: Mapping[str, Any] | None = None,
                  peft: Mapping[str, Any] | None = None, label_names: Sequence[str] | None = None) -> None:
    """The one check of the settings a classifier can train with (else a GenreLabError naming the key): the
    constructor's, and train's before any data is read. The positional parameters are ``model.*`` keys
    (settings.HPARAM_KEYS); ``optimizer``/``scheduler``/``peft`` are the recipe's configs; ``pos_weight`` is checked per
    genre once the ``label_names`` are known."""
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
    if label_names is not None:
        check_pos_weight(pos_weight, label_names)
    check_recipe(optimizer, scheduler)
    check_lora(peft)


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


class GenreClassifier(pl.LightningModule):
    """Genre classifier: multi-label with ``objective=bce`` (single-label data is the one-genre case), one genre
    per movie with ``objective=ce``.

    A checkpoint alone rebuilds it: hyper-parameters carry the label names, the backbone's
    architecture config (so no download is needed to restore it) and the optimizer/scheduler configs
    (plain dicts), the state dict the weights, ``checkpoint["decoder"]`` the decision rule and
    ``checkpoint["calibration"]`` the temperatures fitted after training (scoring/calibration.py), if any.
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
        peft: dict[str, Any] | None = None,
        peft_base: list[float] | None = None,
    ) -> None:
        super().__init__()
        check_hparams(lr, weight_decay, warmup_ratio, dropout, layer_lr_decay, objective, label_smoothing, pooling,
                      pos_weight, distill_weight, optimizer=optimizer, scheduler=scheduler, peft=peft,
                      label_names=label_names)
        self.save_hyperparameters(ignore=["decoder"])
        self.label_space = LabelSpace(tuple(label_names), multi_label)
        self.model = self._classifier(label_prior if prior_bias_init else None)
        self.decoder = decoder or Decoder()
        weight = torch.tensor(list(pos_weight), dtype=torch.float32) if pos_weight is not None else None
        # the attribute and its pos_weight buffer keep their names: earlier checkpoints' state dicts hold them
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=weight)
        # ModuleDict keys must not shadow nn.Module attributes (``train``), hence the suffix.
        self.metrics = nn.ModuleDict({f"{s}_metrics": GenreMetrics(len(label_names)) for s in STAGES})
        # val/f1_micro_tuned, val/f1_macro_tuned: what picks best.ckpt and what pruning compares (train.yaml monitor)
        self.val_tuned = BestThresholdF1(len(label_names))
        self.compiled_forward: Any = None  # set by configure_model when model.compile=true
        self.calibration: dict[str, Any] | None = None  # fitted after training (train.final_metrics)

    def _classifier(self, label_prior: Sequence[float] | None) -> nn.Module:
        """The HF classifier of the hyper-parameters: pretrained (a new run; its bias at the label prior) or
        rebuilt from the stored architecture (a checkpoint's weights come on top); under LoRA adapters with
        ``peft``, whose frozen weights are always the pretrained backbone's."""
        hp = self.hparams
        config, peft, head = hp.get("backbone_config"), hp.get("peft"), head_of(hp)
        model = load_classifier(hp["backbone"], list(hp["label_names"]), hp.get("dropout"), None if peft else config,
                                hp.get("attn_implementation"), head["objective"], head["pooling"])
        # from_pretrained returns eval mode, and Lightning keeps sub-module modes as it finds them:
        # without this, dropout would stay off during training.
        model.train()
        if label_prior is not None and config is None:
            init_bias_to_prior(model, label_prior, head["objective"])
        if config is None:
            hp["backbone_config"] = model.config.to_dict()
        if peft:
            model = with_lora(model, peft)
            model.train()
            check_fingerprint(model, hp.get("peft_base"), hp["backbone"])
            hp["peft_base"] = fingerprint(model)
        return model

    def configure_model(self) -> None:
        # torch.compile of the backbone's forward function, not of the module: a compiled function is a plain
        # attribute, outside the module tree, so checkpoints keep their plain parameter names.
        if self.hparams.get("compile") and self.compiled_forward is None:
            self.compiled_forward = torch.compile(self.model.forward, dynamic=True)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        forward = self.compiled_forward or self.model
        return forward(input_ids=input_ids, attention_mask=attention_mask).logits

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Per-genre probabilities for this model's objective (metrics, final figures, eval, predict), of the
        calibrated logits once a calibration is fitted."""
        return probabilities(scale(logits, self.calibration), head_of(self.hparams)["objective"])

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """BCE on targets smoothed to y·(1−ε)+ε/2, or cross-entropy with torch's label smoothing ε; with a
        ``teacher`` (training batches of a distilled run), on ``(1−w)·targets + w·teacher`` first."""
        smoothing = float(self.hparams.get("label_smoothing") or 0.0)
        ce = head_of(self.hparams)["objective"] == "ce"
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
        """The configured optimizer over optim.parameter_groups and the configured schedule, stepped every step."""
        return build_optimizers(self.named_parameters(), self.hparams, self.trainer.estimated_stepping_batches)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.hparams.get("peft"):  # adapters, head and buffers: the frozen rest is the pretrained backbone
            kept = {n for n, p in self.named_parameters() if p.requires_grad} | {n for n, _ in self.named_buffers()}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in kept}
        checkpoint["label_space"] = self.label_space.to_dict()
        checkpoint["decoder"] = self.decoder.to_dict()
        if self.calibration is not None:
            checkpoint["calibration"] = self.calibration
        # eval/predict compute in the same precision by default, so they reproduce training's figures
        checkpoint["precision"] = str(self.trainer.precision) if self._trainer is not None else "32-true"

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """A LoRA run's checkpoint lacks the frozen pretrained weights (on_save_checkpoint): only they may be
        missing."""
        if not self.hparams.get("peft"):
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
        wrong = [k for k in result.missing_keys if k not in frozen] + list(result.unexpected_keys)
        if strict and wrong:
            raise RuntimeError(f"LoRA checkpoint does not fit the model: missing or unexpected {wrong[:5]}")
        return result

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "decoder" in checkpoint:
            self.decoder = Decoder(**checkpoint["decoder"])
        self.calibration = checkpoint.get("calibration")
