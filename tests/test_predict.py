import logging

import pandas as pd
import pytest

from genre_lab.errors import GenreLabError
from genre_lab.evaluate import evaluate
from genre_lab.predict import EMPTY, predict
from genre_lab.run import Run
from tests.conftest import compose_cfg


def predict_cfg(run, out, *overrides):
    return compose_cfg("predict", [f"run_dir={run}", *overrides], out)


def validation_csv(trained_run, sample_frame, path):
    """The run's validation rows, as a CSV of the original columns."""
    decisions = pd.read_csv(trained_run / "eval_val" / "decisions.csv", keep_default_na=False, dtype=str)
    frame = sample_frame.set_index("id").loc[decisions.id].reset_index()
    frame.to_csv(path, index=False)
    return decisions


@pytest.fixture(scope="module")
def eval_decisions(trained_run):
    evaluate(compose_cfg("eval", [f"run_dir={trained_run}", "plots=false"], trained_run / "eval_val"))


def test_predict_on_the_validation_csv_matches_eval_row_for_row(trained_run, tmp_path, sample_frame,
                                                                eval_decisions):
    decisions = validation_csv(trained_run, sample_frame, tmp_path / "val.csv")
    result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'val.csv'}"))
    assert result.id.astype(str).tolist() == decisions.id.tolist()
    assert result.genres.fillna("").tolist() == decisions.predicted.tolist()
    names = Run.locate(str(trained_run)).model.label_space.names
    assert [c for c in result.columns if c.startswith("prob_")] == [f"prob_{n}" for n in names]
    written = pd.read_csv(tmp_path / "p" / "predictions.csv", keep_default_na=False)
    assert len(written) == len(decisions) and (written.status == "ok").all()


def test_empty_synopses_are_reported_not_guessed(trained_run, tmp_path, sample_frame, caplog):
    frame = sample_frame[sample_frame.genre == "horror"].head(6).reset_index(drop=True)
    frame.loc[[1, 4], "synopsis"] = ""
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    assert len(result) == 6
    assert result.status.tolist() == ["ok", EMPTY, "ok", "ok", EMPTY, "ok"]
    assert result.loc[[1, 4], "genres"].eq("").all() and result.loc[[1, 4], "prob_horror"].isna().all()
    assert "line(s) 3, 6" in caplog.text  # header is line 1


def test_predict_single_text_and_fields(trained_run, tmp_path):
    one = predict(predict_cfg(trained_run, tmp_path / "a", "text=A haunted lighthouse keeper hears voices."))
    assert len(one) == 1 and one.status[0] == "ok"
    two = predict(predict_cfg(trained_run, tmp_path / "b", "synopsis=Two rival chefs fall in love.",
                              "movie_name=Salt and Sugar", "decode.top_k=2"))
    assert len(two.genres[0].split("|")) == 2


def test_predict_csv_without_the_text_columns(trained_run, tmp_path):
    pd.DataFrame({"id": [1], "plot": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(GenreLabError, match=r"missing text column\(s\) \['synopsis', 'movie_name'\]"):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'bad.csv'}"))
