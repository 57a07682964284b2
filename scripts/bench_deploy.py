"""The README's deployment table: how fast a trained run predicts in each deployable form, how far the forms agree,
and what `genre-lab serve` sustains over HTTP.

    python scripts/bench_deploy.py --run RUN_DIR [--out deploy_results] [--rows 1024] [--seconds 15]

RUN_DIR: a finished transformer run (the README uses the shipped MiniLM recipe on tmdb_movies_10genre.csv). Into
--out it exports the run as ONNX fp32, int8 and int8_block and as a Hugging Face folder (`genre-lab export`;
skipped when already there), then on the run's own validation rows measures
  1. predict samples/s on the first --rows rows (batch 64, after a warm-up): PyTorch fp32 and bf16 (the run's model,
     as `genre-lab predict` runs it), the ONNX folders (onnxruntime, 2 threads), and transformers' `pipeline` on the
     HF folder (how the seed notebook's users would serve it);
  2. on every validation row: each ONNX folder's decisions against fp32's, micro-F1, and ONNX fp32 against PyTorch
     fp32 in probability;
  3. `genre-lab serve` as a child process, loaded from loopback by 1, 8 and 32 closed-loop clients (one movie per
     request) for --seconds each, with micro-batching as serve's defaults set it (max_batch=32, max_wait_ms=0,
     batch_size=4), as a GPU would want it (max_wait_ms=5, batch_size=32), and off (max_batch=1): requests/s,
     p50 and p99 latency, and the server's peak resident memory, for the ONNX folder served and for the
     PyTorch run. The clients run on the same cores as the server: on a 2-core machine they take a share.
Prints the tables and writes them with every figure to --out/deploy.json and --out/table.md. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from genre_lab.benchmark.http_load import ServerProcess, load
from genre_lab.benchmark.measuring import top1_and_f1
from genre_lab.io import atomic_write_text
from genre_lab.runs.finished import Run, locate
from genre_lab.runs.scored_rows import validation_split
from genre_lab.scoring.decoding import Decoder
from genre_lab.serving.onnx_runtime import OnnxGenreModel

QUANTIZED = ("fp32", "int8", "int8_block")


def export(run: Path, out: Path, fmt: str, quantize: str | None = None) -> Path:
    folder = out / (f"onnx_{quantize or 'fp32'}" if fmt == "onnx" else "hf")
    if folder.is_dir():
        return folder
    args = [f"run_dir={run}", f"out={folder}", f"format={fmt}", *([f"quantize={quantize}"] if quantize else [])]
    print("$ genre-lab export", " ".join(args), flush=True)
    if subprocess.run([sys.executable, "-m", "genre_lab", "export", *args]).returncode:
        sys.exit(f"bench_deploy: error: genre-lab export {' '.join(args)} failed")
    return folder


def samples_per_s(predict: Callable[[list[str]], object], texts: list[str]) -> float:
    predict(texts[:64])  # warm-up: one-off costs (first allocation, thread pools) stay out of the figure
    start = time.perf_counter()
    predict(texts)
    return len(texts) / (time.perf_counter() - start)


def hf_pipeline(folder: Path) -> Callable[[list[str]], object]:
    from transformers import pipeline

    # trust_remote_code: a mean-pooling run's folder carries its pooling code (genre_lab's own, written by export)
    classify = pipeline("text-classification", model=str(folder), top_k=None, truncation=True, device=-1,
                        trust_remote_code=True)
    return lambda texts: classify(texts, batch_size=64)


def predict_rates(run: Run, onnx: dict[str, OnnxGenreModel], hf: Path, texts: list[str]) -> dict[str, float]:
    forms: dict[str, Callable[[list[str]], object]] = {
        "PyTorch fp32": lambda t: run.probabilities(t, 64, "32-true"),
        "PyTorch bf16": lambda t: run.probabilities(t, 64, "bf16-mixed"),
        **{f"ONNX {q}": (lambda t, m=m: m.probabilities_and_cuts(t, 64)) for q, m in onnx.items()},
        "HF pipeline": hf_pipeline(hf),
    }
    rates = {}
    for name, predict in forms.items():
        rates[name] = samples_per_s(predict, texts)
        print(f"{name}: {rates[name]:.1f} samples/s", flush=True)
    return rates


def agreement(run: Run, onnx: dict[str, OnnxGenreModel], texts: list[str], targets: np.ndarray) -> dict[str, float]:
    probs = {q: m.probabilities_and_cuts(texts, 64)[0] for q, m in onnx.items()}
    decided = {q: onnx[q].rule.decide(p) for q, p in probs.items()}
    torch_fp32 = run.probabilities(texts, 64, "32-true")
    figures = {"rows": len(texts), "onnx_fp32_vs_pytorch_fp32_max_abs": float(np.abs(probs["fp32"] - torch_fp32).max())}
    for q in onnx:
        rule = Decoder(**onnx[q].manifest.decision_rule)  # the folder's own rule, by the one scoring path
        figures[f"{q}_micro_f1"] = top1_and_f1(probs[q], targets, rule)["f1_micro"]
        figures[f"{q}_same_decisions"] = float((decided[q] == decided["fp32"]).all(axis=1).mean())
    return figures


def served(args: list[str], texts: list[str], seconds: float, log: Path) -> list[dict[str, float]]:
    """The server's figures at 1, 8 and 32 clients, and its peak memory; stopped with SIGTERM after."""
    server = ServerProcess([*args, "access_log=false"], log)
    bodies = [{"texts": [t]} for t in texts]
    rows = []
    try:
        for clients in (1, 8, 32):
            load(f"{server.url}/v1/predict", bodies, clients, 1.0)  # warm-up at this concurrency
            rows.append(load(f"{server.url}/v1/predict", bodies, clients, seconds).figures())
            print(f"  {' '.join(args[1:])}: {rows[-1]}", flush=True)
        peak = server.peak_rss_mib()
    finally:
        code = server.stop()
    if code != 0:
        sys.exit(f"bench_deploy: error: the server exited {code} on SIGTERM; its log: {log}")
    return [{**row, "peak_rss_mib": peak} for row in rows]


def server_figures(run: Path, folder: Path, texts: list[str], seconds: float, out: Path) -> dict[str, list]:
    settings = {  # name: (model, serve settings)
        "ONNX, batching (defaults)": (folder, []),
        "ONNX, batching max_wait_ms=5 batch_size=32": (folder, ["max_wait_ms=5", "batch_size=32"]),
        "ONNX, one at a time (max_batch=1)": (folder, ["max_batch=1"]),
        "PyTorch run, batching (defaults)": (run, []),
    }
    return {name: served([f"run_dir={model}", *extra], texts, seconds, out / f"serve_{k}.log")
            for k, (name, (model, extra)) in enumerate(settings.items())}


def tables(rates: dict[str, float], agree: dict[str, float], server: dict[str, list]) -> str:
    base = rates["PyTorch bf16"]
    lines = ["| form | samples/s | × PyTorch bf16 |", "|---|---|---|"]
    lines += [f"| {name} | {rate:.1f} | {rate / base:.2f} |" for name, rate in rates.items()]
    lines += ["", f"On {agree['rows']} validation rows: ONNX fp32 vs PyTorch fp32, largest probability gap "
                  f"{agree['onnx_fp32_vs_pytorch_fp32_max_abs']:.1e}.", "",
              "| ONNX | micro-F1 | same decisions as fp32 |", "|---|---|---|"]
    lines += [f"| {q} | {agree[f'{q}_micro_f1']:.4f} | {agree[f'{q}_same_decisions']:.2%} |" for q in QUANTIZED]
    lines += ["", "| server | clients | requests/s | p50 ms | p99 ms | errors | peak RSS MiB |", "|---" * 7 + "|"]
    for name, rows in server.items():
        lines += [f"| {name} | {r['clients']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                  f"{r['errors']} | {r['peak_rss_mib']:.0f} |" for r in rows]
    on, off = server["ONNX, batching (defaults)"][-1], server["ONNX, one at a time (max_batch=1)"][-1]
    lines += ["", f"Micro-batching at 32 clients: {on['requests_per_s'] / off['requests_per_s']:.2f}× the "
                  "one-request-at-a-time throughput."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished transformer run directory")
    parser.add_argument("--out", type=Path, default=Path("deploy_results"))
    parser.add_argument("--rows", type=int, default=1024, help="validation rows timed for predict samples/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="load per server setting and client count")
    parser.add_argument("--serve", choices=QUANTIZED, default="int8", help="the ONNX folder the server runs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    run = locate(args.run)
    if not isinstance(run, Run):
        sys.exit(f"bench_deploy: error: --run {args.run}: a transformer run directory, not a {type(run).__name__}")
    folders = {q: export(args.run, args.out, "onnx", None if q == "fp32" else q) for q in QUANTIZED}
    hf = export(args.run, args.out, "hf")
    data = validation_split(run, run.spec, None)
    onnx = {q: OnnxGenreModel(folder) for q, folder in folders.items()}
    rates = predict_rates(run, onnx, hf, data.texts[:args.rows])
    agree = agreement(run, onnx, data.texts, data.targets)
    server = server_figures(args.run, folders[args.serve], data.texts, args.seconds, args.out)
    text = tables(rates, agree, server)
    print(text)
    atomic_write_text(args.out / "table.md", text)
    atomic_write_text(args.out / "deploy.json", json.dumps(
        {"run": str(args.run.resolve()), "served_onnx": args.serve, "predict_samples_per_s": rates,
         "agreement": agree, "server": server}, indent=2))


if __name__ == "__main__":
    main()
