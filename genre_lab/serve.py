"""`genre-lab serve run_dir=… [host=127.0.0.1] [port=8000] [api_key=…]`: a finished run (transformer, TF-IDF
baseline, ensemble) or an exported ONNX folder behind an HTTP API (genre_lab/serving/app.py), on uvicorn.

An exported folder is served with onnxruntime, tokenizers and NumPy only: torch is never imported, which is what
makes its server small and fast (the README's deployment table). A run is served through the same code as
``genre-lab predict`` (its template, truncation, calibration and decision rule), in ``precision=`` (null: the run's
own). To serve a changed decision rule, export the run with ``decode.…=`` and serve the export.

SIGTERM (or Ctrl-C) stops accepting connections, finishes the requests in flight, then exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from genre_lab.checks import require_int, require_number, require_positive
from genre_lab.config_dir import config_dir
from genre_lab.errors import GenreLabError, run_app, user_errors
from genre_lab.io import file_digest
from genre_lab.serving.manifest import MANIFEST

log = logging.getLogger(__name__)
API_KEY_ENV = "GENRE_LAB_API_KEY"
OPEN_HOSTS = ("0.0.0.0", "::", "")


def served_export(folder: Path, cfg: DictConfig) -> Any:
    """An exported ONNX folder, run by the ONNX runtime (no torch)."""
    from genre_lab.serving.app import ServedModel
    from genre_lab.serving.onnx_runtime import OnnxGenreModel

    model = OnnxGenreModel(folder, threads=cfg.threads)
    manifest = model.manifest

    def compute(texts: list[str]) -> tuple[Any, Any, Any]:
        probs, cut = model.probabilities_and_cuts(texts, cfg.batch_size)
        return probs, model.rule.decide(probs), cut

    identity = {"kind": "onnx", "file": manifest.onnx_file, "sha256": model.sha256,
                "quantization": manifest.model.get("quantization"), "backbone": manifest.model.get("backbone"),
                "genre_lab_version": version("genre_lab")}
    return ServedModel(model.genres, manifest.text_template, compute, identity, {
        "multi_label": manifest.multi_label, "objective": manifest.objective, "max_length": manifest.max_length,
        "truncation": manifest.truncation, "decision_rule": manifest.decision_rule,
        "calibration": manifest.calibration, "training": manifest.training,
        "source_checkpoint": manifest.model.get("source_checkpoint")})


def served_run(cfg: DictConfig) -> Any:
    """A run directory or model file, through predict's code (loads torch for a transformer run)."""
    from genre_lab.runs.finished import locate
    from genre_lab.runs.layout import RunLayout
    from genre_lab.serving.app import ServedModel

    run = locate(cfg.get("run_dir"), cfg.get("ckpt_path"))
    decoder = run.decoder.for_genres(len(run.label_space), str(run.model_file))
    precision = cfg.precision

    def compute(texts: list[str]) -> tuple[Any, Any, Any]:
        probs, cut = run.probabilities_and_cuts(texts, cfg.batch_size, precision)
        return probs, decoder.decide(probs), cut

    hparams = run.data_hparams
    checkpoint = getattr(run, "checkpoint", {})
    identity = {"kind": type(run).__name__, "file": run.model_file.name, "sha256": file_digest(run.model_file),
                "backbone": checkpoint.get("hyper_parameters", {}).get("backbone"),
                "genre_lab_version": version("genre_lab")}
    return ServedModel(list(run.label_space.names), run.spec.text_template, compute, identity, {
        "multi_label": run.label_space.multi_label, "max_length": hparams.get("max_length"),
        "truncation": hparams.get("truncation"), "decision_rule": decoder.to_dict(),
        "calibration": checkpoint.get("calibration"), "training": RunLayout(run.dir).final_figures() if run.dir else {},
        "run_dir": str(run.dir) if run.dir is not None else None})


def limits_of(cfg: DictConfig) -> Any:
    from genre_lab.serving.app import ServeLimits

    require_int(cfg.port, "port", 0, 8000, maximum=65535)
    require_number(cfg.max_wait_ms, "max_wait_ms", lambda v: 0 <= v <= 10_000, "between 0 and 10000", "5")
    api_key = cfg.api_key or os.environ.get(API_KEY_ENV) or None
    if api_key is not None and not str(api_key).strip():
        raise GenreLabError(f"api_key is blank; give a real key or leave it out (it is also read from {API_KEY_ENV})")
    return ServeLimits(max_batch=require_positive(cfg.max_batch, "max_batch"), max_wait_ms=float(cfg.max_wait_ms),
                       max_rows=require_positive(cfg.max_rows, "max_rows"),
                       max_body_bytes=require_positive(cfg.max_body_bytes, "max_body_bytes"),
                       api_key=str(api_key) if api_key else None)


def warn_if_open(host: str, api_key: str | None) -> bool:
    """Warn (and say so) when the server would answer anyone on the network without a key."""
    if host not in OPEN_HOSTS or api_key is not None:
        return False
    log.warning("host=%s binds every network interface with no API key: anyone who can reach this machine can use "
                "the model. Set api_key=… (or %s), or serve on host=127.0.0.1 behind a proxy", host, API_KEY_ENV)
    return True


def serve(cfg: DictConfig) -> None:
    try:
        import uvicorn

        from genre_lab.serving.app import create_app
    except ImportError as err:
        raise GenreLabError(f"genre-lab serve needs the serve extra ({err.name} is missing): pip install "
                            "'genre_lab[serve]' (and 'genre_lab[onnx]' to serve an exported ONNX folder)") from None
    limits = limits_of(cfg)
    require_positive(cfg.batch_size, "batch_size")
    warn_if_open(str(cfg.host), limits.api_key)
    folder = Path(cfg.run_dir) if cfg.get("run_dir") else None
    exported = folder is not None and (folder / MANIFEST).is_file() and not cfg.get("ckpt_path")
    model = served_export(folder, cfg) if exported else served_run(cfg)
    server = uvicorn.Server(uvicorn.Config(create_app(model, limits), host=str(cfg.host), port=int(cfg.port),
                                           log_level=str(cfg.log_level), access_log=bool(cfg.access_log),
                                           timeout_graceful_shutdown=None))
    # uvicorn finishes the requests in flight on SIGTERM, then re-raises the signal it caught so the process dies of
    # it (exit 143); a handler of our own receives it instead, so a graceful stop exits 0
    previous = signal.signal(signal.SIGTERM, lambda *_: log.info("stopped on SIGTERM after the requests in flight"))
    log.info("serving %s (%s, sha256 %s…); API docs at /docs", model.identity["file"], model.identity["kind"],
             model.identity["sha256"][:12])
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind
        if server.started:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not server.started:
        raise GenreLabError(f"the server did not start on {cfg.host}:{cfg.port}; the log above says why (a port in "
                            "use, an address this machine does not have, or the model's warm-up call failed)")


@hydra.main(config_path=str(config_dir()), config_name="serve", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    serve(cfg)


if __name__ == "__main__":
    run_app(main)
