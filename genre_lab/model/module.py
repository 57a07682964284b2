"""GenreClassifier: an HF encoder with its sequence-classification head, trained with BCE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from genre_lab.data.labels import LabelSpace
from genre_lab.decoding import Decoder
from genre_lab.errors import GenreLabError, is_number, require_number
from genre_lab.metrics import BestThresholdF1, GenreMetrics, flatten
from genre_lab.model.backbone import load_classifier

STAGES = ("train", "val", "test")


def init_bias_to_prior(model: nn.Module, prior: Sequence[float]) -> None:
    """Start the output layer at each genre's log prior odds.

    With a zero bias, BCE spends the first hundreds of steps learning that every genre is rare
    (loss falls to the prior's entropy, top-1 stays at chance); starting there, the gradient goes
    to telling genres apart from step one (measured gain: README, Design notes).
    """
    p = torch.as_tensor(list(prior), dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == len(p)]
    with torch.no_grad():
        heads[-1].bias.copy_(torch.log(p / (1 - p)))


def check_hparams(lr: Any = 5e-5, weight_decay: Any = 0.0, warmup_ratio: Any = 0.0, dropout: Any = None) -> None:
    """Optimiser and regularisation settings a run can train with (else a GenreLabError naming the key)."""
    require_number(lr, "model.lr", lambda v: v > 0, "> 0", "5e-5")
    require_number(weight_decay, "model.weight_decay", lambda v: v >= 0, "≥ 0", "0.01")
    require_number(warmup_ratio, "model.warmup_ratio", lambda v: 0 <= v < 1, "in [0, 1)", "0.1")
    if dropout is not None:
        require_number(dropout, "model.dropout", lambda v: 0 <= v < 1, "in [0, 1) or null", "0.1")


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
    """Multi-label genre classifier (single-label data is the one-genre case).

    A checkpoint alone rebuilds it: hyper-parameters carry the label names and the backbone's
    architecture config (so no download is needed to restore it), the state dict the weights,
    and ``checkpoint["decoder"]`` the decision rule.
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
    ) -> None:
        super().__init__()
        check_hparams(lr, weight_decay, warmup_ratio, dropout)
        check_pos_weight(pos_weight, label_names)
        self.save_hyperparameters(ignore=["decoder"])
        self.label_space = LabelSpace(tuple(label_names), multi_label)
        self.model = load_classifier(backbone, list(label_names), dropout, backbone_config, attn_implementation)
        # from_pretrained returns eval mode, and Lightning keeps sub-module modes as it finds them:
        # without this, dropout would stay off during training.
        self.model.train()
        if prior_bias_init and label_prior is not None and backbone_config is None:
            init_bias_to_prior(self.model, label_prior)
        if backbone_config is None:
            self.hparams["backbone_config"] = self.model.config.to_dict()
        self.decoder = decoder or Decoder()
        weight = torch.tensor(list(pos_weight), dtype=torch.float32) if pos_weight is not None else None
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

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = self.loss_fn(logits, batch["labels"])
        probs = torch.sigmoid(logits.detach().float())
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

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")

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

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def configure_optimizers(self) -> dict[str, Any]:
        from transformers import get_linear_schedule_with_warmup  # deferred: transformers (see backbones.py)

        # No weight decay on biases and norm weights (every parameter with fewer than 2 dims).
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": self.hparams.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        optimizer = torch.optim.AdamW(groups, lr=self.hparams.lr, fused=self._fused_ok(params))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.hparams.warmup_ratio * total)
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _fused_ok(self, params: list[torch.Tensor]) -> bool | None:
        """Fused AdamW (one kernel for all parameters) where torch has it for these devices and dtypes."""
        if not self.hparams.get("fused_adamw", True):
            return None
        fusable = {"cpu", "cuda", "mps", "xpu"}
        ok = all(p.device.type in fusable and p.is_floating_point() for p in params)
        return True if ok else None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["label_space"] = self.label_space.to_dict()
        checkpoint["decoder"] = self.decoder.to_dict()
        # eval/predict compute in the same precision by default, so they reproduce training's figures
        checkpoint["precision"] = str(self.trainer.precision) if self._trainer is not None else "32-true"

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "decoder" in checkpoint:
            self.decoder = Decoder(**checkpoint["decoder"])
