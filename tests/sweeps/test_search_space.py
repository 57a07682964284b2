"""The `params:` grammar as Optuna distributions, a trial back as overrides, and the trial={…} override."""

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from genre_lab.errors import GenreLabError
from genre_lab.sweeps.search_space import parse_search_space
from genre_lab.sweeps.storage import absolute_url, sqlite_path
from genre_lab.sweeps.trial_link import trial_override

optuna = pytest.importorskip("optuna")
D = optuna.distributions


def test_the_grammar_maps_to_optuna_distributions():
    space = parse_search_space({
        "model.lr": "tag(log, interval(1e-5, 3e-4))", "model.dropout": "interval(0.0, 0.3)",
        "trainer.max_epochs": "range(1, 5)", "a.step": "range(2, 11, 4)", "data.batch_size": "choice(16, 32, 64)",
        "model.name": "x,y", "data.max_length": 64,
    }, [])
    assert space.distributions == {
        "model.lr": D.FloatDistribution(1e-5, 3e-4, log=True), "model.dropout": D.FloatDistribution(0.0, 0.3),
        "trainer.max_epochs": D.IntDistribution(1, 4),  # end-exclusive, as in Hydra's grid sweeps
        "a.step": D.IntDistribution(2, 10, step=4), "data.batch_size": D.CategoricalDistribution([16, 32, 64]),
        "model.name": D.CategoricalDistribution(["x", "y"]),
    }
    assert space.fixed == ["data.max_length=64"]


def test_the_command_line_wins_over_params_and_passes_everything_else_through():
    space = parse_search_space({"model.lr": "interval(1e-5, 1e-3)", "data.batch_size": "choice(16, 32)"},
                               ["model.lr=1e-4", "data.batch_size=8,64", "~callbacks.progress_bar", "model=tiny"])
    assert set(space.distributions) == {"data.batch_size"}
    assert space.distributions["data.batch_size"] == D.CategoricalDistribution([8, 64])
    assert space.fixed == ["model.lr=1e-4", "~callbacks.progress_bar", "model=tiny"]


def test_a_trial_becomes_overrides_that_hydra_parses_back():
    space = parse_search_space({"a": "tag(log, interval(1e-5, 1e-3))", "b": "range(1, 4)", "c": "choice('p q', r)",
                                "d": "choice(true, false)"}, [])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(space.suggest(trial))}
        assert parsed == trial.params


def test_sweeping_hydra_keys_is_refused():
    with pytest.raises(GenreLabError, match="does not sweep hydra"):
        parse_search_space({"hydra.job.chdir": "true,false"}, [])


@pytest.mark.parametrize("url", [None, "sqlite:////tmp/a b/it's.db", "journal:///nfs/x.log",
                                 "postgresql://u:p@db:5432/optuna?sslmode=require,x", "C:\\\\"])
def test_the_trial_override_carries_any_storage_url(url):
    override = OverridesParser.create().parse_overrides([trial_override(7, "st'udy", url)])[0]
    assert override.value() == {"number": 7, "study_name": "st'udy", "storage": url}


def test_file_storage_urls_are_made_absolute_for_jobs_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_url("sqlite:///study.db") == f"sqlite:///{tmp_path}/study.db"
    assert absolute_url("sqlite:////abs/s.db?timeout=9") == "sqlite:////abs/s.db?timeout=9"
    assert absolute_url("journal://j.log") == f"journal://{tmp_path}/j.log"
    assert absolute_url("mysql://h/db") == "mysql://h/db" and absolute_url(None) is None
    assert sqlite_path("sqlite:///:memory:") is None and sqlite_path("sqlite://") is None


@pytest.mark.parametrize(("line", "why"), [
    ("model.lr=interval(1e-3,1e-5)", r"`low <= high` must hold"),
    ("model.lr=tag(log,interval(0,1e-3))", r"`low > 0` must hold for `log=True`"),
    ("trainer.max_epochs=range(3,1)", r"the range is empty"),
])
def test_a_space_that_cannot_be_sampled_is_one_user_error(line, why):
    """Checked when the space is parsed, before any trial (Optuna's own ValueError names no key)."""
    with pytest.raises(GenreLabError, match=rf"^{line.split('=')[0]}=.*{why}"):
        parse_search_space({}, [line])
