"""Both notebooks execute headless on small inputs and show the figures of the data and runs they are given, so
they never rot: a renamed genre_lab function, a changed run layout or a wrong number fails here."""

import ast
import importlib
import json
import os
import re
import shutil

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient

from tests.conftest import REPO, SAMPLE_CSV

NOTEBOOKS = sorted(p.name for p in (REPO / "notebooks").glob("*.ipynb"))
# Run first, before the notebook's own cells: every DataFrame the notebook shows also comes out as JSON, so the
# tests read the exact table a user sees (only the display changes, not what the notebook computes).
FRAMES_AS_JSON = """\
import json as _json
import pandas as _pd
get_ipython().display_formatter.formatters["application/json"].for_type(
    _pd.DataFrame, lambda frame: _json.loads(frame.to_json(orient="split")))
"""


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "notebooks" / name, as_version=4)


def code_cells(notebook) -> list[str]:
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_stored_clean_and_uses_only_what_genre_lab_has(name):
    """Without executing it (fast): no stored outputs, every code cell is valid Python, and every genre_lab module
    and name it imports exists (a rename or a move in genre_lab fails here, with the cell that uses it)."""
    notebook = read(name)
    assert not any(c.get("outputs") or c.get("execution_count") for c in notebook.cells if c.cell_type == "code"), \
        "stored with outputs"
    for source in code_cells(notebook):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "genre_lab":
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{name}: {node.module} has no {missing}, imported by:\n{source}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    importlib.import_module(alias.name)
    documented = {word.strip("`,.()/").rstrip("*") for cell in notebook.cells if cell.cell_type == "markdown"
                  for word in cell.source.split() if word.strip("`").startswith("GENRE_LAB_NB_")}
    read_vars = {node.args[0].value for source in code_cells(notebook) for node in ast.walk(ast.parse(source))
                 if isinstance(node, ast.Call) and ast.unparse(node.func) == "os.environ.get"}
    assert documented and all(any(v.startswith(d) for v in read_vars) for d in documented), (documented, read_vars)


def execute(name: str, env: dict[str, str], cwd) -> nbformat.NotebookNode:
    notebook = read(name)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(FRAMES_AS_JSON))
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()  # raises on any cell's error
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def outputs(notebook):
    return [o for c in notebook.cells for o in c.get("outputs", [])]


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") for o in outputs(notebook))


def frames_of(notebook) -> list[pd.DataFrame]:
    """Every table the notebook displayed, in order."""
    return [pd.DataFrame(**o["data"]["application/json"]) for o in outputs(notebook)
            if "application/json" in o.get("data", {})]


def images_of(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(notebook))


def explore_figures(frame: pd.DataFrame, labels: pd.Series) -> tuple[tuple[str, float], dict[str, int], list[int]]:
    """What the exploration notebook must show, computed here from the CSV with pandas and the tokenizer itself:
    the summary line, movies per genre, and token lengths (the tiny backbone's, up to 512)."""
    from genre_lab.backbones import load_tokenizer

    genres = labels.str.split("|").explode()
    per_genre = genres.value_counts().to_dict()
    line = (f"{len(frame)} rows, {len(per_genre)} genres, ", len(genres) / len(frame))
    texts = (frame.synopsis + " " + frame.movie_name).tolist()
    lengths = [len(ids) for ids in load_tokenizer("tiny")(texts, truncation=True, max_length=512)["input_ids"]]
    return line, per_genre, lengths


def check_explore(notebook, frame: pd.DataFrame, labels: pd.Series) -> None:
    (start, per_movie), per_genre, lengths = explore_figures(frame, labels)
    text = text_of(notebook)
    shown = re.search(rf"{re.escape(start)}([0-9.]+) genres per movie", text)
    assert shown and float(shown[1]) == pytest.approx(per_movie, abs=0.0051), text  # 2 decimals, either rounding
    (counts,) = frames_of(notebook)  # movies per genre, most first
    assert counts.movies.astype(int).to_dict() == per_genre
    assert counts.movies.is_monotonic_decreasing
    assert f"mean {np.mean(lengths):.1f}, p50 {np.percentile(lengths, 50):.0f}" in text
    assert f"max {max(lengths)}; over 128: {np.mean(np.array(lengths) > 128):.1%}" in text
    assert images_of(notebook) == 3  # genre bars, co-occurrence, length histogram


def test_explore_notebook_runs_on_the_sample(tmp_path):
    notebook = execute("01_explore_data.ipynb", {"GENRE_LAB_NB_BACKBONE": "tiny"}, tmp_path)
    frame = pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)
    check_explore(notebook, frame, frame.genre)
    assert "400 rows, 10 genres, 1.00 genres per movie" in text_of(notebook)


def test_explore_notebook_on_multilabel_data(tmp_path, multilabel_csv):
    env = {"GENRE_LAB_NB_CSV": str(multilabel_csv), "GENRE_LAB_NB_LABEL_COLUMN": "genres",
           "GENRE_LAB_NB_MULTI_LABEL": "true", "GENRE_LAB_NB_BACKBONE": "tiny"}
    notebook = execute("01_explore_data.ipynb", env, tmp_path)
    frame = pd.read_csv(multilabel_csv, dtype=str, keep_default_na=False)
    check_explore(notebook, frame, frame.genres)
    assert "400 rows, 10 genres, 1.34 genres per movie" in text_of(notebook)


def check_run_shown(notebook, run) -> list[pd.DataFrame]:
    """The run's headline validation figures (its metrics.json), its per-genre table (per_class.csv) and every PNG
    plot it wrote; returns the tables shown after them."""
    metrics = json.loads((run / "metrics.json").read_text())
    headline, per_class, *rest = frames_of(notebook)
    expected = {k: v for k, v in metrics.items() if k.startswith("val/") and k.count("/") == 1}
    assert expected and headline.iloc[:, 0].to_dict() == pytest.approx(expected)
    table = pd.read_csv(run / "per_class.csv").set_index("genre").round(3)
    pd.testing.assert_frame_equal(per_class, table, check_dtype=False, check_names=False)
    pngs = sorted(p.name for p in run.glob("*.png"))
    shown = [o["data"]["text/markdown"].strip("*") for o in outputs(notebook) if "text/markdown" in o.get("data", {})]
    assert pngs and shown == pngs
    return rest


def check_sweep_shown(ranking: pd.DataFrame, sweep, metric: str = "val/f1_micro") -> None:
    """One row per job of the 2x2 grid (max_epochs x lr), with its own metrics.json figure, best first."""
    jobs = {}
    for job in (p.parent for p in sweep.glob("*/metrics.json")):
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
                         if "=" in o)
        key = (int(overrides["trainer.max_epochs"]), float(overrides["model.lr"]))
        jobs[key] = json.loads((job / "metrics.json").read_text())[metric]
    assert len(jobs) == 4 and ranking.columns.is_unique
    shown = {}
    for overrides, value in zip(ranking.overrides, ranking[metric], strict=True):
        items = dict(o.split("=", 1) for o in overrides.split())
        assert set(items) == {"trainer.max_epochs", "model.lr"}  # what tells the runs apart, not what they share
        shown[(int(items["trainer.max_epochs"]), float(items["model.lr"]))] = value
    assert shown == pytest.approx(jobs)
    assert ranking[metric].is_monotonic_decreasing and (ranking.status == "ok").all()


def test_compare_notebook_opens_a_run_and_a_sweep_where_a_user_has_them(tmp_path, grid_sweep, trained_run):
    """No paths given: from the project directory (or its notebooks/ folder) it finds the newest run under
    outputs/train and the newest sweep under multirun/train, and shows their figures and plots inline."""
    project = tmp_path / "project"
    run = shutil.copytree(trained_run, project / "outputs" / "train" / "2026-12-01" / "10-00-00")
    (run / ".hydra").mkdir(exist_ok=True)  # as `genre-lab train` leaves it (the fixture was composed in-process)
    sweep = shutil.copytree(grid_sweep, project / "multirun" / "train" / "2026-12-01" / "11-00-00")
    (project / "notebooks").mkdir()
    notebook = execute("02_compare_runs.ipynb", {}, project / "notebooks")
    text = text_of(notebook)
    assert f"run: {run}\nsweep: {sweep}" in text
    assert f"4 runs under {sweep}, 0 failed" in text
    (ranking,) = check_run_shown(notebook, run)
    check_sweep_shown(ranking, sweep)
    pngs = len(list(run.glob("*.png")))
    assert images_of(notebook) == pngs + 3  # the run's PNG plots, its curve, the sweep's ranking and curves


def test_compare_notebook_takes_the_paths_it_is_given(tmp_path, grid_sweep, trained_run):
    notebook = execute("02_compare_runs.ipynb", {"GENRE_LAB_NB_SWEEP": str(grid_sweep),
                                                 "GENRE_LAB_NB_RUN": str(trained_run),
                                                 "GENRE_LAB_NB_METRIC": "val/f1_macro"}, tmp_path)
    assert f"run: {trained_run}\nsweep: {grid_sweep}" in text_of(notebook)
    assert "not an Optuna search (no optimization_results.yaml)" in text_of(notebook)
    (ranking,) = check_run_shown(notebook, trained_run)
    check_sweep_shown(ranking, grid_sweep, "val/f1_macro")  # a metric also among the default columns: shown once


def test_compare_notebook_shows_an_optuna_search_s_slots_and_confirmed_winner(tmp_path, confirmed_search):
    notebook = execute("02_compare_runs.ipynb", {"GENRE_LAB_NB_SWEEP": str(confirmed_search)}, tmp_path)
    text = text_of(notebook)
    winner = yaml.safe_load((confirmed_search / "best" / "winner.yaml").read_text())
    assert "study genre_lab: {'COMPLETE': 3}; ended by n_trials" in text
    assert f"winner: trial {winner['winner_trial']} (mean {winner['winner_mean']:.4f}" in text
    confirmation = next(f for f in frames_of(notebook) if "search_value" in f.columns)
    assert len(confirmation) == 2 and list(confirmation["trial"]) == list(
        pd.read_csv(confirmed_search / "confirmation.csv")["trial"])
    assert any("busy_s" in f.columns for f in frames_of(notebook))  # the slots table

