"""Both notebooks execute headless on small inputs, so they never rot."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO


def execute(name: str, env: dict[str, str], cwd) -> nbformat.NotebookNode:
    notebook = nbformat.read(REPO / "notebooks" / name, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), "stored with outputs"
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook


def text_of(notebook) -> str:
    return "\n".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("backbone", ["tiny"])
def test_explore_notebook_runs_on_the_sample(tmp_path, backbone):
    notebook = execute("01_explore_data.ipynb", {"GENRE_LAB_NB_BACKBONE": backbone}, tmp_path)
    assert "400 rows, 10 genres" in text_of(notebook)


def test_explore_notebook_on_multilabel_data(tmp_path, multilabel_csv):
    env = {"GENRE_LAB_NB_CSV": str(multilabel_csv), "GENRE_LAB_NB_LABEL_COLUMN": "genres",
           "GENRE_LAB_NB_MULTI_LABEL": "true", "GENRE_LAB_NB_BACKBONE": "tiny"}
    assert "400 rows, 10 genres, 1.34 genres per movie" in text_of(execute("01_explore_data.ipynb", env, tmp_path))


def images_of(notebook) -> int:
    return sum("image/png" in o.get("data", {}) for c in notebook.cells for o in c.get("outputs", []))


def test_compare_notebook_opens_a_run_and_a_sweep_where_a_user_has_them(tmp_path, grid_sweep, trained_run):
    """No paths given: from the project directory (or its notebooks/ folder) it finds the newest run under
    outputs/train and the newest sweep under multirun/train, and shows their plots inline."""
    import shutil

    project = tmp_path / "project"
    run = shutil.copytree(trained_run, project / "outputs" / "train" / "2026-12-01" / "10-00-00")
    (run / ".hydra").mkdir(exist_ok=True)  # as `genre-lab train` leaves it (the fixture was composed in-process)
    shutil.copytree(grid_sweep, project / "multirun" / "train" / "2026-12-01" / "11-00-00")
    (project / "notebooks").mkdir()
    notebook = execute("02_compare_runs.ipynb", {}, project / "notebooks")
    text = text_of(notebook)
    assert "run: " + str(project / "outputs" / "train" / "2026-12-01" / "10-00-00") in text
    assert f"4 runs under {project / 'multirun' / 'train' / '2026-12-01' / '11-00-00'}" in text
    assert images_of(notebook) >= 5  # the run's PNG plots, its curve, the sweep's ranking and curves


def test_compare_notebook_takes_the_paths_it_is_given(tmp_path, grid_sweep, trained_run):
    notebook = execute("02_compare_runs.ipynb", {"GENRE_LAB_NB_SWEEP": str(grid_sweep),
                                                 "GENRE_LAB_NB_RUN": str(trained_run)}, tmp_path)
    assert "4 runs under" in text_of(notebook) and f"run: {trained_run}" in text_of(notebook)
