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


def test_compare_notebook_runs_on_a_sweep(tmp_path, grid_sweep):
    notebook = execute("02_compare_runs.ipynb", {"GENRE_LAB_NB_SWEEP": str(grid_sweep)}, tmp_path)
    assert "4 runs under" in text_of(notebook)
