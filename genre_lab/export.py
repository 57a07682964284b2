"""`genre-lab export run_dir=… out=DIR`: a standard Hugging Face model folder.

DIR holds the weights and config (id2label/label2id; ``problem_type`` ``multi_label_classification`` for a bce run,
``single_label_classification`` for a ce run, so transformers and the HF pipeline apply sigmoid or softmax as
genre_lab does), the tokenizer (``model_max_length`` = the run's max_length; ``truncation_side=left`` for a
``data.truncation=tail`` run) and ``thresholds.json`` (the decision rule: the run's own, or as ``decode=`` says, as
for eval and predict). ``AutoModelForSequenceClassification.from_pretrained(DIR)`` and
``pipeline("text-classification", model=DIR, top_k=None)`` load it with no genre_lab code. A ``model.pooling=mean``
model has no standard HF class: DIR also holds its code (``pooling.py``, from genre_lab/model/pooling.py) and
loads with ``trust_remote_code=True``. A TF-IDF baseline or an ensemble has no such folder: export refuses it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from genre_lab.config_dir import config_dir
from genre_lab.errors import GenreLabError, run_app, user_errors
from genre_lab.io import honour_umask, temp_dir_beside, write_json
from genre_lab.runs.finished import BaselineRun, FinishedRun, Run, locate
from genre_lab.scoring.decoding import rule_for_run

log = logging.getLogger(__name__)


def refuse_run_folder(out: Path, run: Run) -> None:
    """``out`` must be apart from the run: export replaces ``out`` whole, so an ``out`` that is, contains or
    lies inside the run directory (or the checkpoint's folder) could delete the checkpoints it exports."""
    target = out.resolve()
    for kept in {p.resolve() for p in (run.dir, run.ckpt_path.parent) if p is not None}:
        if target == kept or kept in target.parents or target in kept.parents:
            raise GenreLabError(f"out={out} is, contains or lies inside {kept}, which holds the checkpoint being "
                                "exported; export replaces out, so choose a folder outside it, e.g. out=exported/")


def transformer_run(run: FinishedRun) -> Run:
    """``run`` itself when it has a Hugging Face model to export; a GenreLabError saying what to do otherwise."""
    if isinstance(run, Run):
        return run
    if isinstance(run, BaselineRun):
        raise GenreLabError(f"export writes Hugging Face model folders of transformer runs; {run.dir or 'this'} is a "
                            f"TF-IDF baseline run, whose model is {run.model_file} (a scikit-learn pipeline: load it "
                            "with skops.io.load, or use the run with genre-lab eval / predict)")
    raise GenreLabError(f"export writes Hugging Face model folders of transformer runs; {run.model_file} is an "
                        "ensemble of runs: export its members (listed there with their weights), or use it with "
                        "genre-lab eval / predict")


def export(cfg: DictConfig) -> Path:
    run = transformer_run(locate(cfg.get("run_dir"), cfg.get("ckpt_path")))
    if not cfg.get("out"):
        raise GenreLabError("say where to write the model folder: out=<directory>")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise GenreLabError(f"out={out} is a file, and export writes a model folder: give a directory that does "
                            "not exist yet (or an empty one), e.g. out=exported/")
    refuse_run_folder(out, run)
    if out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise GenreLabError(f"out={out} exists and is not empty; choose another folder or pass overwrite=true")
    # Write beside the target and swap in at the end: a failed export never leaves half a model.
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out)
    try:
        run.model.model.save_pretrained(tmp)  # a mean-pooling model also writes its code and auto_map
        save_tokenizer(run, tmp)
        decoder = rule_for_run(run.model.decoder, cfg.decode).for_genres(len(run.model.label_space))
        write_json(tmp / "thresholds.json", rule_file(run, decoder.to_dict()))
        honour_umask(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s to %s", run.ckpt_path, out)
    mean = run.model.hparams.get("pooling") == "mean"
    custom = " (mean pooling: load it with trust_remote_code=True)" if mean else ""
    print(f"exported {run.ckpt_path} -> {out}{custom}")
    return out


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
    objective = run.model.hparams.get("objective", "bce")
    squash = "softmax over the genres" if objective == "ce" else "sigmoid to each logit"
    return {
        "labels": list(run.model.label_space.names),
        "multi_label": run.model.label_space.multi_label,
        "objective": objective,
        "truncation": run.truncation,
        "decoder": decoder,
        "note": f"apply {squash}; a genre is predicted when its probability is above its threshold "
                "(or is among the top_k)",
    }


@hydra.main(config_path=str(config_dir()), config_name="export", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    export(cfg)


if __name__ == "__main__":
    run_app(main)
