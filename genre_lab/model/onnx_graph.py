"""The classifier as an ONNX graph of its logits (``genre-lab export format=onnx``), checked against PyTorch, and its
int8 dynamic quantization.

The graph holds the network only: inputs ``input_ids`` and ``attention_mask`` (int64, dynamic batch and sequence
axes), output ``logits``. Cutting, the template, calibration, the squash and the decision rule stay out of it, in
genre_lab's own NumPy code that the runtime shares with training (genre_lab/serving), so they cannot drift apart.
torch.onnx's exporter is the torch.export-based one (``dynamo=True``; the TorchScript exporter is deprecated since
torch 2.9); it needs onnx and onnxscript, the quantizer onnxruntime: the ``onnx`` extra.
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from genre_lab.errors import GenreLabError

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"
EXTRA = ("onnx", "onnxscript", "onnxruntime")  # what format=onnx imports: pip install 'genre_lab[onnx]'
MAX_BYTES = 2**31 - 2**26  # one ONNX file holds under 2 GiB (protobuf); keep a margin for the graph itself
TOLERANCE = 1e-3  # fp32 graph vs PyTorch, in logits: a wrong graph is off by far more, rounding by ~1e-6


class LogitsOnly(nn.Module):
    """The Hugging Face classifier called with keywords, returning its logits tensor: what torch.export traces."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classifier(input_ids=input_ids, attention_mask=attention_mask).logits


@contextmanager
def quiet_tools() -> Iterator[None]:
    """Keep the exporter's and the quantizer's chatter out of the run's log (under Hydra's INFO logging, about 70
    lines per export: rewrite passes, skipped torchvision ops, tensors left unquantized). onnxruntime's quantizer
    logs on the root logger, so its records are told apart by their source file; it also asks for a pre-processing
    step that cannot infer these graphs' symbolic shapes, and that changed neither size nor speed on MiniLM."""
    named = {name: logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")}
    levels = {name: logger.level for name, logger in named.items()}
    root = logging.getLogger()

    def not_quantizer(record: logging.LogRecord) -> bool:
        return not (record.name == "root" and "onnxruntime" in record.pathname)

    for logger in named.values():
        logger.setLevel(logging.ERROR)
    root.addFilter(not_quantizer)
    try:
        with warnings.catch_warnings():
            # named axes shared by both inputs: torch.onnx notes that it names them once
            warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
            # torch.export walks pytrees, where Lightning's registration uses a deprecated torch check
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`", category=FutureWarning)
            yield
    finally:
        root.removeFilter(not_quantizer)
        for name, logger in named.items():
            logger.setLevel(levels[name])


def require_onnx_packages() -> None:
    """A GenreLabError naming what to install when the ``onnx`` extra is missing (checked before any work)."""
    missing = [name for name in EXTRA if importlib.util.find_spec(name) is None]
    if missing:
        raise GenreLabError(f"format=onnx needs {', '.join(missing)}: pip install 'genre_lab[onnx]'")


def probe_inputs(classifier: nn.Module, pad_id: int, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows of random ids, two of them padded (so tracing and the check see padding), at most max_length."""
    length = min(max_length, 24)
    vocab = classifier.get_input_embeddings().num_embeddings
    ids = torch.randint(0, vocab, (3, length), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    for row, keep in ((1, max(length // 2, 2)), (2, min(3, length))):
        ids[row, keep:], mask[row, keep:] = pad_id, 0
    return ids, mask


def export_logits(classifier: nn.Module, path: Path, pad_id: int, max_length: int) -> None:
    """Write ``classifier``'s logits as an ONNX graph at ``path`` (weights inside: one file), dynamic in batch and
    sequence length."""
    size = sum(p.numel() * p.element_size() for p in classifier.parameters())
    if size > MAX_BYTES:
        raise GenreLabError(f"the model's weights take {size / 2**30:.1f} GiB, over the 2 GiB one ONNX file holds; "
                            "export it with format=hf")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: sequence}
    try:
        with quiet_tools():
            program = torch.onnx.export(LogitsOnly(classifier).eval(), probe_inputs(classifier, pad_id, max_length),
                                        dynamo=True, input_names=list(INPUTS), output_names=[OUTPUT],
                                        dynamic_shapes={"input_ids": axes, "attention_mask": axes},
                                        external_data=False, optimize=True, verbose=False)
            program.save(str(path))
    except Exception as err:  # the exporter's many error types: the message says what it met
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise GenreLabError(f"torch.onnx.export could not export this model ({type(err).__name__}: {first}); "
                            "export it with format=hf instead (show_traceback=true shows the exporter's "
                            "traceback)") from err


def check_graph(classifier: nn.Module, path: Path, pad_id: int, max_length: int) -> float:
    """The largest difference in logits between the graph at ``path`` (run by onnxruntime) and ``classifier`` on
    padded probe rows; a GenreLabError past ``TOLERANCE`` (a graph that would give other probabilities)."""
    import onnxruntime  # deferred: the optional onnx extra (require_onnx_packages checked it)

    ids, mask = probe_inputs(classifier, pad_id, max_length)
    with torch.inference_mode():
        expected = LogitsOnly(classifier).eval()(ids, mask).float().numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUTS[0]: ids.numpy(), INPUTS[1]: mask.numpy()})[0]
    gap = float(np.abs(got - expected).max())
    if not gap <= TOLERANCE:
        raise GenreLabError(f"the exported ONNX graph's logits differ from PyTorch's by {gap:.2g} (over "
                            f"{TOLERANCE}); this model does not export correctly: use format=hf")
    return gap


def quantize_graph(source: Path, target: Path, method: str) -> None:
    """``source`` with its weights in int8, written to ``target``; ``method`` is export's ``quantize=`` (QUANTIZERS)."""
    with quiet_tools():
        QUANTIZERS[method](source, target)


def dynamic_int8(source: Path, target: Path) -> None:
    """``quantize=int8``: onnxruntime's dynamic quantization, int8 weights per output channel (QInt8), activations
    to uint8 per tensor at run time. The fastest (MiniLM: 2.1x the fp32 graph on 2 cores), but one scale per
    activation tensor rounds the few large hidden dimensions of BERT-like encoders coarsely: decisions near a
    threshold can flip (README, measured figures)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # deferred: the optional onnx extra

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)


def block_int8(source: Path, target: Path) -> None:
    """``quantize=int8_block``: every MatMul's weights in int8 per block of 32 (onnxruntime's MatMulNBits), the
    activations quantized per block of 32 as it multiplies (accuracy_level 4): decisions as fp32's on >= 99 % of
    MiniLM's rows, 1.2x the fp32 graph's speed; the embeddings stay fp32."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer  # deferred: as above

    quantizer = MatMulNBitsQuantizer(str(source), bits=8, block_size=32, is_symmetric=True, accuracy_level=4)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), use_external_data_format=False)


QUANTIZERS = {"int8": dynamic_int8, "int8_block": block_int8}


def describe(path: Path) -> dict[str, Any]:
    """The graph's opset, for the manifest's record of what was exported."""
    import onnx  # deferred: the optional onnx extra

    model = onnx.load(str(path), load_external_data=False)
    return {"opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)}
