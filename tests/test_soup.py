"""genre-lab soup: the weights of runs fine-tuned from one backbone averaged into one model, written as a run."""

import json

import numpy as np
import pytest
import torch

from genre_lab.errors import GenreLabError
from genre_lab.evaluate import evaluate
from genre_lab.runs.finished import Run
from genre_lab.runs.layout import RunLayout
from genre_lab.runs.stored_probs import StoredProbs
from genre_lab.soup import average_states, differences, soup
from tests.conftest import compose_cfg, genre_lab_here
from tests.test_ensemble import refused


def soup_cfg(runs, out, *overrides):
    return compose_cfg("soup", [f"runs=[{','.join(map(str, runs))}]", "plots=false", *overrides], out)


def test_the_soup_of_a_run_with_itself_is_the_run(trained_run, tmp_path):
    metrics = soup(soup_cfg([trained_run, trained_run], tmp_path / "s"))
    ours, theirs = RunLayout(tmp_path / "s"), RunLayout(trained_run)
    souped = torch.load(ours.best, map_location="cpu", weights_only=True)
    original = torch.load(theirs.best, map_location="cpu", weights_only=True)
    assert set(souped["state_dict"]) == set(original["state_dict"])
    for key, value in original["state_dict"].items():
        torch.testing.assert_close(souped["state_dict"][key], value, atol=1e-6, rtol=0)
    np.testing.assert_allclose(StoredProbs.load(ours.val_probs).probs, StoredProbs.load(theirs.val_probs).probs,
                               atol=1e-6)
    assert metrics["model"] == "soup" and metrics["members"] == [str(trained_run)] * 2
    assert souped["decoder"] == metrics["decoder"] and "optimizer_states" not in souped
    # a run like any other: eval rebuilds it from best.ckpt and the copied tokenizer, with the same figures
    scored = evaluate(compose_cfg("eval", [f"run_dir={tmp_path / 's'}", "plots=false"], tmp_path / "ev"))
    assert scored["eval/f1_micro"] == pytest.approx(metrics["val/f1_micro"], abs=1e-6)
    assert (ours.tokenizer / "tokenizer_config.json").is_file()


def test_greedy_adds_a_run_only_when_the_soup_improves(trained_run, tmp_path):
    checkpoints = [trained_run / "checkpoints" / "best.ckpt", trained_run / "checkpoints" / "last.ckpt"]
    metrics = soup(soup_cfg([*checkpoints, trained_run], tmp_path / "g", "greedy=true"))
    trail = metrics["greedy_trail"]
    assert [step["own"] for step in trail] == sorted((step["own"] for step in trail), reverse=True)
    best = trail[0]["soup"]
    for step in trail[1:]:
        assert step["kept"] == (step["soup"] > best)
        best = max(best, step["soup"])
    assert metrics["members"] == [step["run"] for step in trail if step["kept"]]
    assert metrics["val/f1_micro"] == pytest.approx(best, abs=1e-9)


def test_average_states_means_floats_and_keeps_integer_buffers():
    a = {"w": torch.tensor([1.0, 2.0]), "ids": torch.arange(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.arange(3)}
    out = average_states([a, b, b])
    torch.testing.assert_close(out["w"], torch.tensor([7 / 3, 14 / 3]))
    assert torch.equal(out["ids"], torch.arange(3))


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda c: c["hyper_parameters"].update(backbone="minilm"), "backbone ('tiny' vs 'minilm')"),
    (lambda c: c["hyper_parameters"].update(objective="ce"), "head (model.objective) ('bce' vs 'ce')"),
    (lambda c: c.update(label_space={"names": ["a", "b"], "multi_label": False}), "genres (['family'"),
    (lambda c: c["datamodule_hyper_parameters"].update(seed=7), "data.seed (42 vs 7)"),
    (lambda c: c["state_dict"].pop(next(iter(c["state_dict"]))), "weights (their parameter names or shapes)"),
])
def test_runs_that_cannot_be_souped_are_refused_by_what_differs(trained_run, tmp_path, change, fragment):
    first = Run(trained_run / "checkpoints" / "best.ckpt", trained_run)
    other = Run(trained_run / "checkpoints" / "best.ckpt", trained_run)
    changed = {k: (dict(v) if isinstance(v, dict) else v) for k, v in first.checkpoint.items()}
    change(changed)
    other.__dict__["checkpoint"] = changed
    assert fragment in "; ".join(differences(first, other))
    torch.save(changed, tmp_path / "other.ckpt")
    result = genre_lab_here("soup", f"runs=[{trained_run},{tmp_path / 'other.ckpt'}]",
                            f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path)
    refused(result, "cannot make a soup of", fragment, "genre-lab ensemble")
    assert RunLayout(tmp_path / "s").record() == []


@pytest.mark.parametrize(("runs", "fragment"), [("[{run}]", "two or more"), ("[{run},{tmp}/nope]", "does not exist"),
                                                ("[{run},{tmp}/ensemble]", "not a transformer run")])
def test_bad_ingredients_are_refused_and_nothing_is_written(trained_run, tmp_path, runs, fragment):
    (tmp_path / "ensemble").mkdir()  # an ensemble's run directory: probabilities to average, no weights
    (tmp_path / "ensemble" / "ensemble.json").write_text(json.dumps({"members": []}))
    result = genre_lab_here("soup", "runs=" + runs.format(run=trained_run, tmp=tmp_path),
                            f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path)
    refused(result, fragment)
    assert RunLayout(tmp_path / "s").record() == []


def test_soup_never_writes_into_an_earlier_run(trained_run, tmp_path):
    result = genre_lab_here("soup", f"runs=[{trained_run},{trained_run}]", f"hydra.run.dir={trained_run}",
                            cwd=tmp_path)
    refused(result, "already holds an earlier run's results")
    with pytest.raises(GenreLabError, match="already holds"):
        soup(soup_cfg([trained_run, trained_run], trained_run))
