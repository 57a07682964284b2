"""Shared fixtures: hermetic environment (no Hub, private cache), configs, small CSVs."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

# Never touch the network; build the tiny backbone once per test session in a private cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "offline"
if "GENRE_LAB_CACHE" not in os.environ:
    # Made by the process that starts the session (xdist workers and CLI subprocesses inherit the variable) and
    # removed when it exits, so test runs leave no cache folders behind in /tmp.
    os.environ["GENRE_LAB_CACHE"] = _cache = tempfile.mkdtemp(prefix="genre_lab_cache_")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (addopts: -n logical) the workers split the cores as the parallel launcher splits them
# between jobs: without it each worker's torch starts one thread per core and the oversubscribed cores run
# several times slower. Set before torch is imported, which reads these at start-up.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    from genre_lab.sweeps.shares import available_cores, plan_shares

    _share = plan_shares(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]), [], available_cores())[0]
    for _variable, _value in _share.environment().items():
        os.environ.setdefault(_variable, _value)

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from genre_lab.config_dir import RESOURCES_DIR, config_dir  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENRE_LAB_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_CSV = RESOURCES_DIR / "sample_movies.csv"


def compose_cfg(name: str, overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """A command's config (train, eval, predict, export) as the CLI builds it, writing into ``output_dir``."""
    extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=name, overrides=[*overrides, *extra])


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    return compose_cfg("train", overrides, output_dir)


QUIET = ["~callbacks.progress_bar", "+trainer.enable_model_summary=false"]


RUN_GENRES = ["family", "horror", "romance", "scifi"]


@pytest.fixture(scope="session")
def run_frame(sample_frame) -> pd.DataFrame:
    """The 160 sample movies of four genres: enough for the tiny model to learn something quickly."""
    return sample_frame[sample_frame.genre.isin(RUN_GENRES)].reset_index(drop=True)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, run_frame) -> Path:
    """A finished tiny-model run (fp32, 20 epochs; about 10 s on 2 cores), shared by eval/predict/export tests."""
    from genre_lab.train import train

    root = tmp_path_factory.mktemp("trained")
    run_frame.to_csv(root / "four.csv", index=False)
    train(compose_train([
        # the architecture's own head (tiny defaults to mean pooling): its export loads in plain transformers
        "model=tiny", "model.pooling=head", f"data.train_csv={root / 'four.csv'}", "trainer.max_epochs=20",
        "model.lr=2e-3", "data.batch_size=16", "trainer.precision=32-true", *QUIET], root / "run"))
    return root / "run"


@pytest.fixture(scope="session")
def onnx_folder(tmp_path_factory, trained_run) -> Path:
    """``trained_run`` exported with format=onnx (fp32): the ONNX runtime's, eval's and predict's exported folder."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from genre_lab.export import export

    root = tmp_path_factory.mktemp("onnx")
    export(compose_cfg("export", [f"run_dir={trained_run}", f"out={root / 'model'}", "format=onnx"], root / "x"))
    return root / "model"


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    def make(*overrides: str) -> DictConfig:
        return compose_train(list(overrides), tmp_path / "run")

    return make


@pytest.fixture(scope="session")
def sample_frame() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)


@pytest.fixture
def small_csv(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    """32 rows: 8 of each of 4 genres from the bundled sample."""
    genres = ["horror", "romance", "scifi", "family"]
    frame = pd.concat([sample_frame[sample_frame.genre == g].head(8) for g in genres])
    path = tmp_path / "small.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def multilabel_csv(tmp_path: Path, sample_frame: pd.DataFrame) -> Path:
    """The sample turned multi-label: each movie also gets its neighbour genre in a fixed ring."""
    ring = sorted(sample_frame.genre.unique())
    frame = sample_frame.copy()
    frame["genres"] = [
        g if i % 3 else f"{g}|{ring[(ring.index(g) + 1) % len(ring)]}" for i, g in enumerate(frame.genre)
    ]
    path = tmp_path / "multi.csv"
    frame.drop(columns="genre").to_csv(path, index=False)
    return path


def genre_lab_cli(*args: str, cwd: Path, env: dict | None = None, timeout: int = 900):
    """Run `python -m genre_lab <args>` in a subprocess as a user would; returns the CompletedProcess. For tests
    of the process boundary (DDP ranks, launchers, signals); the others use ``genre_lab_here``."""
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "genre_lab", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def genre_lab_here(*args: str, cwd: Path, env: dict | None = None):
    """`genre-lab <args>` through ``genre_lab.cli.main`` in this process, from ``cwd`` with ``env`` added; returns
    a CompletedProcess (exit code, stdout, stderr). A subprocess costs ~5 s of imports on 2 cores."""
    import contextlib
    import io
    import subprocess
    import sys

    from genre_lab.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_env = list(sys.argv), os.getcwd(), dict(os.environ)
    code = 0
    try:
        os.chdir(cwd)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli_main(list(args))
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        # Hydra's --cfg / --help / --info paths leave their config (command line included) in a process-wide
        # singleton; a later test composing in Python would be taken for that command (settings.command_line_keys)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().cfg = None
        os.environ.clear()
        os.environ.update(saved_env)
    return subprocess.CompletedProcess(["genre-lab", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def four_csv(tmp_path_factory, run_frame) -> Path:
    path = tmp_path_factory.mktemp("four") / "four.csv"
    run_frame.to_csv(path, index=False)
    return path


TINY_FAST = ["model=tiny", "trainer.precision=32-true", "data.batch_size=16", "~callbacks.progress_bar",
             "+trainer.enable_model_summary=false"]


@pytest.fixture(scope="session")
def confirmed_search(tmp_path_factory) -> Path:
    """A finished 3-trial Optuna search of the tiny model with its top 2 configurations confirmed over 2 seeds."""
    pytest.importorskip("optuna")
    root = tmp_path_factory.mktemp("confirmed")
    sweep = root / "sweep"
    result = genre_lab_here("train", "-m", "hparams_search=optuna", *TINY_FAST, "data=sample", "trainer.max_epochs=1",
                            "hydra.sweeper.n_trials=3", "hydra.sweeper.confirm.top_k=2",
                            "hydra.sweeper.confirm.seeds=[1,2]", f"hydra.sweep.dir={sweep}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    return sweep


@pytest.fixture(scope="session")
def grid_sweep(tmp_path_factory, four_csv) -> Path:
    """A finished 2x2 multirun of the tiny model: max_epochs x lr."""
    root = tmp_path_factory.mktemp("grid")
    result = genre_lab_here("train", "-m", *TINY_FAST, f"data.train_csv={four_csv}", "trainer.max_epochs=1,2",
                            "model.lr=1e-3,3e-3", f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert result.returncode == 0, result.stderr[-4000:]
    (root / "sweep" / "stdout.txt").write_text(result.stdout)
    return root / "sweep"


@pytest.fixture(scope="session")
def mixed_sweep(tmp_path_factory, four_csv) -> Path:
    """A finished multirun over model=tfidf_lr,tiny on four_csv (overrides valid for both): job 0 is the TF-IDF
    baseline, job 1 the tiny transformer (1 epoch); both scored on the same validation rows."""
    root = tmp_path_factory.mktemp("mixed")
    result = genre_lab_here("train", "-m", "model=tfidf_lr,tiny", f"data.train_csv={four_csv}", *TINY_FAST[1:],
                            "trainer.max_epochs=1", f"hydra.sweep.dir={root / 'sweep'}", cwd=root)
    assert result.returncode == 0, result.stderr[-4000:]
    assert all((root / "sweep" / job / "metrics.json").is_file() for job in ("0", "1")), result.stdout[-4000:]
    return root / "sweep"


@pytest.fixture
def val_rows_csv(run_frame, tmp_path) -> Callable[[Path], tuple[Path, list[str]]]:
    """A run's validation rows (val_probs.npz order) as a CSV of the sample's columns: (its path, the ids)."""
    from genre_lab.runs.stored_probs import StoredProbs

    def write(run: Path) -> tuple[Path, list[str]]:
        ids = [str(i) for i in StoredProbs.load(run / "val_probs.npz").movie_ids]
        path = tmp_path / f"val_rows_{run.name}.csv"
        run_frame.set_index("id").loc[ids].reset_index().to_csv(path, index=False)
        return path, ids

    return write
