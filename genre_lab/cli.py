"""`genre-lab <command> key=value …`: one console script, one Hydra app per command."""

from __future__ import annotations

import importlib
import re
import sys

from genre_lab.config_dir import config_dir, config_keys, hydra_literal
from genre_lab.errors import GenreLabError, exit_with, run_app

COMMANDS = {
    "train": ("genre_lab.train", "fine-tune a backbone on a movie CSV"),
    "eval": ("genre_lab.evaluate", "score a run on its validation split or a labelled CSV; plots"),
    "predict": ("genre_lab.predict", "genres for new movies (CSV or text) from a run"),
    "export": ("genre_lab.export", "write a Hugging Face model folder from a run"),
    "serve": ("genre_lab.serve", "an HTTP API for a run or an exported ONNX folder (FastAPI on uvicorn)"),
    "ensemble": ("genre_lab.ensemble", "average finished runs (weights equal, given or tuned) into a new run"),
    "soup": ("genre_lab.soup", "average the weights of runs fine-tuned from one backbone into one model"),
    "compare": ("genre_lab.compare", "rank finished runs (and W&B runs) and plot their validation curves"),
    "bench": ("genre_lab.bench", "time the notebook's recipe against genre_lab's default, side by side"),
}


def usage() -> str:
    lines = ["usage: genre-lab <command> [key=value …] [hydra flags, e.g. -m, --cfg job]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "e.g. genre-lab train experiment=quickstart; genre-lab <command> --help lists its config groups",
              f"docs: {DOCS}"]
    return "\n".join(lines)


DOCS = "https://github.com/genre-lab/genre_lab#readme (README.md in the source)"
OVERRIDE = re.compile(r"(\+{0,2})([A-Za-z_]\w*)=(.*)", re.DOTALL)


def literal_free_text(argv: list[str], known: frozenset[str]) -> list[str]:
    """predict's free text taken verbatim: ``text=`` and every top-level key its config lacks (the run's
    template columns, ``synopsis=``, ``plot=``, …, which get the ``+`` Hydra needs for a new key)."""
    out = []
    for arg in argv:
        match = OVERRIDE.fullmatch(arg)
        if match and (match[2] == "text" or match[2] not in known):
            prefix = match[1] or ("" if match[2] in known else "+")
            arg = f"{prefix}{match[2]}={hydra_literal(match[3])}"
        out.append(arg)
    return out


def refuse_null_groups(overrides: list[str]) -> None:
    """``logger=null`` on the command line: Hydra answers a config group set to null with a traceback; say how a
    group is left out instead."""
    for arg in overrides:
        match = OVERRIDE.fullmatch(arg)
        if match and match[3] in ("null", "None") and (config_dir() / match[2]).is_dir():
            exit_with(GenreLabError(f"{arg}: a config group cannot be set to null; leave it out with ~{match[2]}, or "
                                    f"choose one of its options ({match[2]}=<name>, `--help` lists them)"))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"genre-lab: error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    refuse_null_groups(rest)
    module = importlib.import_module(COMMANDS[command][0])
    if command == "predict":
        rest = literal_free_text(rest, config_keys("predict"))
    sys.argv = [f"genre-lab {command}", *rest]  # Hydra parses sys.argv[1:]
    run_app(module.main)  # a config that does not compose exits 2, as other user errors do


if __name__ == "__main__":
    main()
