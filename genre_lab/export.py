"""`genre-lab export run_dir=… out=DIR [format=hf|onnx] [quantize=int8|int8_block]`: a standard Hugging Face model
folder (``format=hf``, the default) or a self-contained ONNX folder (``format=onnx``).

An ONNX folder holds ``model.onnx`` (the classifier's logits; ``model.int8.onnx`` or ``model.int8_block.onnx``
instead with ``quantize=``, weights in int8: model/onnx_graph.py says how the two differ), ``tokenizer.json`` and
``genre_lab.json``, the manifest: genres, text
template, max_length and truncation, calibration, decision rule, objective, and the model's identity
(genre_lab/serving/manifest.py). genre_lab/serving/onnx_runtime.py runs it with onnxruntime, tokenizers and NumPy
only; ``genre-lab eval`` and ``predict`` take it as ``run_dir=``.

A Hugging Face DIR holds the weights and config (id2label/label2id; ``problem_type``
``multi_label_classification`` for a bce run, ``single_label_classification`` for a ce run, so transformers and the
HF pipeline apply sigmoid or softmax as genre_lab does), the tokenizer (``model_max_length`` = the run's max_length;
``truncation_side=left`` for a ``data.truncation=tail`` run) and ``thresholds.json`` (the decision rule: the run's
own, or as ``decode=`` says, as for eval and predict; ONNX folders carry it in their manifest).
``AutoModelForSequenceClassification.from_pretrained(DIR)`` and ``pipeline("text-classification", model=DIR,
top_k=None)`` load it with no genre_lab code. A ``model.pooling=mean`` model has no standard HF class: DIR also
holds its code (``pooling.py``, from genre_lab/model/pooling.py) and
loads with ``trust_remote_code=True``. A TF-IDF baseline or an ensemble has no such folder: export refuses it.
"""

from __future__ import annotations

import logging
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from tokenizers import Tokenizer

from genre_lab.config_dir import config_dir
from genre_lab.data.token_rows import cutting_tokenizer
from genre_lab.data.tokens import make_collator
from genre_lab.errors import GenreLabError, require_choice, run_app, user_errors
from genre_lab.io import OutputTaken, file_digest, honour_umask, publish_folder, temp_dir_beside, write_json
from genre_lab.model.adapters import plain_copy
from genre_lab.model.module import fold_calibration, head_of
from genre_lab.model.onnx_graph import (
    QUANTIZERS,
    check_graph,
    describe,
    export_logits,
    quantize_graph,
    require_onnx_packages,
)
from genre_lab.runs.finished import BaselineRun, ExportedRun, FinishedRun, Run, locate
from genre_lab.runs.layout import RunLayout
from genre_lab.scoring.decoding import rule_for_run
from genre_lab.serving.manifest import Manifest

log = logging.getLogger(__name__)
FORMATS = ("hf", "onnx")
ONNX_FILE, TOKENIZER_FILE = "model.onnx", "tokenizer.json"


def refuse_run_folder(out: Path, run: Run) -> None:
    """``out`` must be apart from the run: export replaces ``out`` whole, so an ``out`` that is, contains or
    lies inside the run directory (or the checkpoint's folder) could delete the checkpoints it exports."""
    target = out.resolve()
    for kept in {p.resolve() for p in (run.dir, run.ckpt_path.parent) if p is not None}:
        if target == kept or kept in target.parents or target in kept.parents:
            raise GenreLabError(f"out={out} is, contains or lies inside {kept}, which holds the checkpoint being "
                                "exported; export replaces out, so choose a folder outside it, e.g. out=exported/")


def transformer_run(run: FinishedRun) -> Run:
    """``run`` itself when it has a PyTorch checkpoint to export; a GenreLabError saying what to do otherwise."""
    if isinstance(run, Run):
        return run
    what = "export writes Hugging Face model folders of transformer runs (or ONNX folders, format=onnx)"
    if isinstance(run, BaselineRun):
        raise GenreLabError(f"{what}; {run.dir or 'this'} is a TF-IDF baseline run, whose model is {run.model_file} (a "
                            "scikit-learn pipeline: load it with skops.io.load, or use the run with genre-lab eval / "
                            "predict)")
    if isinstance(run, ExportedRun):
        raise GenreLabError(f"{what}; {run.folder} is already an exported ONNX folder: copy it, or export the run "
                            f"it came from ({run.manifest.model.get('source_checkpoint')})")
    raise GenreLabError(f"{what}; {run.model_file} is an ensemble of runs: export its members (listed there with "
                        "their weights), or use it with genre-lab eval / predict")


def export_format(cfg: DictConfig) -> tuple[str, str | None]:
    """``format`` and ``quantize``, checked before anything is loaded or written."""
    fmt = require_choice(cfg.get("format", "hf"), "format", FORMATS)
    quantize = cfg.get("quantize")
    if quantize is not None:
        require_choice(quantize, "quantize", tuple(QUANTIZERS))
        if fmt != "onnx":
            raise GenreLabError(f"quantize={quantize} quantizes an ONNX graph: add format=onnx (a Hugging Face folder, "
                                "format=hf, keeps the trained weights)")
    if fmt == "onnx":
        require_onnx_packages()
    return fmt, quantize


def output_folder(cfg: DictConfig, run: Run) -> Path:
    """``out``: a new or empty folder (a non-empty one with overwrite=true), apart from the run."""
    if not cfg.get("out"):
        raise GenreLabError("say where to write the model folder: out=<directory>")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise GenreLabError(f"out={out} is a file, and export writes a model folder: give a directory that does "
                            "not exist yet (or an empty one), e.g. out=exported/")
    refuse_run_folder(out, run)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise GenreLabError(f"out={out} exists and is not empty; choose another folder or pass overwrite=true")
    return out


def export(cfg: DictConfig) -> Path:
    fmt, quantize = export_format(cfg)
    run = transformer_run(locate(cfg.get("run_dir"), cfg.get("ckpt_path")))
    out = output_folder(cfg, run)
    decoder = rule_for_run(run.model.decoder, cfg.decode).for_genres(len(run.model.label_space))
    # Write beside the target and swap in at the end: a failed export never leaves half a model.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out)
    try:
        if fmt == "onnx":
            write_onnx_folder(run, tmp, decoder.to_dict(), quantize)
        else:
            write_hf_folder(run, tmp, decoder.to_dict())
        honour_umask(tmp)
        publish_folder(tmp, out, replace=cfg.overwrite)
    except OutputTaken:  # filled by another command since output_folder checked it: keep that folder
        shutil.rmtree(tmp, ignore_errors=True)
        raise GenreLabError(f"out={out} was written by another command while this one ran; that folder is kept "
                            "and this export is discarded: export again into another folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to %s", run.ckpt_path, out)
    mean = fmt == "hf" and head_of(run.model.hparams)["pooling"] == "mean"
    note = {"onnx": f" (ONNX{f', {quantize} weights' if quantize else ''})",
            "hf": " (mean pooling: load it with trust_remote_code=True)" if mean else ""}[fmt]
    print(f"exported {run.ckpt_path} -> {out}{note}")
    return out


def write_hf_folder(run: Run, folder: Path, decoder: dict[str, Any]) -> None:
    """The weights with the run's calibration folded into the output layer (plain transformers and the HF pipeline
    then give the calibrated probabilities), the tokenizer and thresholds.json."""
    classifier = plain_copy(run.model.model)  # LoRA adapters merged into the weights
    fold_calibration(classifier, run.model.calibration, len(run.label_space))
    classifier.save_pretrained(folder)  # a mean-pooling model also writes its code and auto_map
    save_tokenizer(run, folder)
    write_json(folder / "thresholds.json", rule_file(run, decoder))


def write_onnx_folder(run: Run, folder: Path, decoder: dict[str, Any], quantize: str | None) -> None:
    """The ONNX graph (fp32, checked against PyTorch; then quantized if asked), the tokenizer and the manifest."""
    classifier, pad_id = plain_copy(run.model.model).eval(), make_collator(run.tokenizer).pad_id
    graph = folder / ONNX_FILE
    export_logits(classifier, graph, pad_id, run.max_length)
    gap = check_graph(classifier, graph, pad_id, run.max_length)
    log.info("ONNX graph %s: logits within %.2g of PyTorch's on the probe rows", graph.name, gap)
    if quantize:
        quantize_graph(graph, folder / f"model.{quantize}.onnx", quantize)
        graph.unlink()
        graph = folder / f"model.{quantize}.onnx"
    backend = Tokenizer.from_str(run.tokenizer.backend_tokenizer.to_str())
    cutting_tokenizer(backend, run.max_length, run.truncation).save(str(folder / TOKENIZER_FILE))
    onnx_manifest(run, graph, decoder, pad_id, quantize).write(folder)


def onnx_manifest(run: Run, graph: Path, decoder: dict[str, Any], pad_id: int, quantize: str | None) -> Manifest:
    """What the runtime needs besides the graph, and where the model came from."""
    hparams, head = run.model.hparams, head_of(run.model.hparams)
    identity = {"sha256": file_digest(graph), "source_checkpoint": str(run.ckpt_path.resolve()),
                "genre_lab_version": version("genre_lab"), "backbone": str(hparams["backbone"]),
                "pooling": head["pooling"], "quantization": quantize, **describe(graph)}
    return Manifest(genres=list(run.label_space.names), multi_label=run.label_space.multi_label,
                    objective=head["objective"], text_template=run.spec.text_template,
                    max_length=run.max_length, truncation=run.truncation, pad_token_id=pad_id,
                    decision_rule=decoder, calibration=run.checkpoint.get("calibration"), onnx_file=graph.name,
                    tokenizer_file=TOKENIZER_FILE, model=identity, data=run.data_hparams,
                    training=RunLayout(run.dir).final_figures() if run.dir else {})


def save_tokenizer(run: Run, folder: Path) -> None:
    """The run's tokenizer, cutting long texts as the run did where the HF tokenizer can (head, tail)."""
    tokenizer = run.tokenizer
    tokenizer.model_max_length = run.max_length
    tokenizer.truncation_side = "left" if run.truncation == "tail" else "right"
    tokenizer.init_kwargs["truncation_side"] = tokenizer.truncation_side  # what save_pretrained writes it from
    if run.truncation == "head+tail":
        log.warning("the run keeps the head and the tail of long texts (data.truncation=head+tail), which a Hugging "
                    "Face tokenizer cannot: the exported tokenizer cuts texts longer than %d tokens at the end",
                    run.max_length)
    tokenizer.save_pretrained(folder)


def rule_file(run: Run, decoder: dict[str, Any]) -> dict[str, Any]:
    """``thresholds.json``: the genres, the decision rule, and how the model's logits become probabilities."""
    objective = head_of(run.model.hparams)["objective"]
    squash = "softmax over the genres" if objective == "ce" else "sigmoid to each logit"
    return {
        "labels": list(run.model.label_space.names),
        "multi_label": run.model.label_space.multi_label,
        "objective": objective,
        "truncation": run.truncation,
        "decoder": decoder,
        # folded into the output layer's weights (write_hf_folder): the logits come out calibrated
        "calibration": run.model.calibration,
        "note": f"apply {squash}; a genre is predicted when its probability is above its threshold "
                "(or is among the top_k)" + ("; the calibration is already in the weights"
                                            if run.model.calibration else ""),
    }


@hydra.main(config_path=str(config_dir()), config_name="export", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    run_app(main)
