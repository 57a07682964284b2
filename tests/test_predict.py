import logging
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from genre_lab import cli
from genre_lab import predict as predict_module
from genre_lab.errors import GenreLabError
from genre_lab.evaluate import evaluate
from genre_lab.predict import predict
from genre_lab.runs.finished import locate
from genre_lab.runs.stored_probs import StoredProbs
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
    names = locate(trained_run).label_space.names
    assert [c for c in result.columns if c.startswith("prob_")] == [f"prob_{n}" for n in names]
    written = pd.read_csv(tmp_path / "p" / "predictions.csv", keep_default_na=False)
    assert len(written) == len(decisions) and (written.status == "ok").all()


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_predict_reads_and_writes_other_formats_with_the_same_figures(trained_run, tmp_path, sample_frame, suffix):
    frame = sample_frame.head(12)
    frame.to_csv(tmp_path / "in.csv", index=False)
    source = tmp_path / f"in{suffix}"
    frame.to_json(source, orient="records", lines=True) if suffix == ".jsonl" else frame.to_parquet(source)
    reference = predict(predict_cfg(trained_run, tmp_path / "a", f"input_csv={tmp_path / 'in.csv'}"))
    predict(predict_cfg(trained_run, tmp_path / "b", f"input_csv={source}", f"out={tmp_path / ('out' + suffix)}"))
    written = (pd.read_parquet(tmp_path / "out.parquet") if suffix == ".parquet" else
               pd.read_json(tmp_path / "out.jsonl", lines=True, dtype={"id": str}))
    assert written.id.astype(str).tolist() == reference.id.tolist() and written.status.eq("ok").all()
    assert written.prob_horror.dtype == np.float64 or written.prob_horror.dtype == np.float32
    np.testing.assert_allclose(written.filter(like="prob_").to_numpy(), reference.filter(like="prob_").to_numpy(),
                               atol=1e-6)


def test_empty_synopses_are_reported_not_guessed(trained_run, tmp_path, sample_frame, caplog):
    frame = sample_frame[sample_frame.genre == "horror"].head(6).reset_index(drop=True)
    frame.loc[[1, 4], "synopsis"] = ""
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    assert len(result) == 6
    assert result.status.tolist() == ["ok", "empty synopsis", "ok", "ok", "empty synopsis", "ok"]
    assert result.loc[[1, 4], "genres"].eq("").all() and result.loc[[1, 4], "prob_horror"].isna().all()
    assert "line(s) 3, 6" in caplog.text  # header is line 1


def test_predict_single_text_and_fields(trained_run, tmp_path):
    one = predict(predict_cfg(trained_run, tmp_path / "a", "text=A haunted lighthouse keeper hears voices."))
    assert len(one) == 1 and one.status[0] == "ok"
    two = predict(predict_cfg(trained_run, tmp_path / "b", "+synopsis=Two rival chefs fall in love.",
                              "+movie_name=Salt and Sugar", "decode.top_k=2"))
    assert len(two.genres[0].split("|")) == 2


def test_predict_csv_without_the_text_columns(trained_run, tmp_path):
    pd.DataFrame({"id": [1], "plot": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(GenreLabError, match=r"missing text column\(s\) \['synopsis', 'movie_name'\]"):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'bad.csv'}"))


def run_cli(monkeypatch, *argv: str) -> int:
    """``genre-lab <argv>`` in this process, as a shell passes the words; returns the exit code."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cli.main sets sys.argv for Hydra
    try:
        cli.main(list(argv))
    except SystemExit as stop:
        return int(stop.code)
    return 0


def spy_on_predict(monkeypatch) -> list:
    """The configs ``genre-lab predict`` hands to predict(), which still runs."""
    seen, real = [], predict_module.predict
    monkeypatch.setattr(predict_module, "predict", lambda cfg: seen.append(cfg) or real(cfg))
    return seen


@pytest.fixture
def in_csv(tmp_path, sample_frame):
    sample_frame.head(4).to_csv(tmp_path / "in.csv", index=False)
    return tmp_path / "in.csv"


def test_predict_never_writes_over_its_input(trained_run, tmp_path, in_csv, monkeypatch):
    before = in_csv.read_bytes()
    (tmp_path / "link.csv").symlink_to(in_csv)
    monkeypatch.chdir(tmp_path)
    for out in (in_csv, "in.csv", tmp_path / "link.csv", tmp_path / "sub" / ".." / "in.csv"):
        with pytest.raises(GenreLabError, match="is the input file"):
            predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={in_csv}", f"out={out}", "overwrite=true"))
    with pytest.raises(GenreLabError, match="is the input file"):  # a symlink as the input, the file as out
        predict(predict_cfg(trained_run, tmp_path / "p", "input_csv=link.csv", f"out={in_csv}"))
    assert in_csv.read_bytes() == before


def test_predict_replaces_an_existing_file_only_with_overwrite(trained_run, tmp_path, in_csv, monkeypatch, capsys):
    out = tmp_path / "old.csv"
    out.write_text("mine")
    with pytest.raises(GenreLabError, match=r"already exists.*overwrite=true"):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={in_csv}", f"out={out}"))
    assert out.read_text() == "mine"
    assert run_cli(monkeypatch, "predict", f"run_dir={trained_run}", f"input_csv={in_csv}", f"out={out}",
                   f"hydra.run.dir={tmp_path / 'h'}") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("genre-lab: error: ")]
    assert len(errors) == 1 and "already exists" in errors[0] and out.read_text() == "mine"
    predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={in_csv}", f"out={out}", "overwrite=true"))
    assert len(pd.read_csv(out)) == 4


def test_a_file_another_command_writes_meanwhile_is_kept_not_replaced(trained_run, tmp_path, in_csv, monkeypatch):
    out, real = tmp_path / "out" / "p.csv", predict_module.predict_frame

    def racing(*args, **kwargs):  # another predict finishes into the same out= while this one runs
        out.write_text("theirs")
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_module, "predict_frame", racing)
    with pytest.raises(GenreLabError, match=r"written by another command while this one ran; that file is kept"):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={in_csv}", f"out={out}"))
    assert out.read_text() == "theirs" and sorted(p.name for p in out.parent.iterdir()) == ["p.csv"]
    predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={in_csv}", f"out={out}", "overwrite=true"))
    assert len(pd.read_csv(out)) == 4


def test_a_file_error_while_predicting_is_reported_as_it_is(trained_run, tmp_path, in_csv, monkeypatch):
    out = tmp_path / "out" / "p.csv"

    def fails(*args, **kwargs):  # not the output race: must not be called "written by another command"
        raise FileExistsError("a cache file")

    monkeypatch.setattr(predict_module, "predict_frame", fails)
    with pytest.raises(FileExistsError, match="a cache file"):  # on the old code: GenreLabError, "another command"
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={in_csv}", f"out={out}"))
    assert sorted(p.name for p in out.parent.iterdir()) == []


TRICKY = """It's "quoted", has = signs, commas, a ${path} and a back\\slash\\"""


def test_free_text_survives_the_real_command_line_exactly(trained_run, tmp_path, monkeypatch):
    seen = spy_on_predict(monkeypatch)
    assert run_cli(monkeypatch, "predict", f"run_dir={trained_run}", "text=raw model input, no template",
                   f"hydra.run.dir={tmp_path / 'a'}") == 0
    assert run_cli(monkeypatch, "predict", f"run_dir={trained_run}", f"text={TRICKY}",
                   f"hydra.run.dir={tmp_path / 'b'}") == 0
    assert run_cli(monkeypatch, "predict", f"run_dir={trained_run}", f"synopsis={TRICKY}",
                   "+movie_name=Salt, Sugar = 'Love'", f"hydra.run.dir={tmp_path / 'c'}") == 0
    assert [cfg.text for cfg in seen[:2]] == ["raw model input, no template", TRICKY]
    assert (seen[2].synopsis, seen[2].movie_name) == (TRICKY, "Salt, Sugar = 'Love'")
    assert pd.read_csv(tmp_path / "c" / "predictions.csv").status.tolist() == ["ok"]


def test_text_columns_come_from_the_runs_template(trained_run, tmp_path, monkeypatch, capsys):
    """A run whose template is ``{plot}`` takes plot=… (and +plot=… in Python); other keys are refused."""
    run = tmp_path / "plot_run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copytree(trained_run / "tokenizer", run / "tokenizer")
    checkpoint = torch.load(trained_run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
    checkpoint["datamodule_hyper_parameters"]["text_template"] = "{plot}"
    torch.save(checkpoint, run / "checkpoints" / "best.ckpt")
    one = predict(predict_cfg(run, tmp_path / "a", "+plot='A haunted lighthouse, and its keeper.'"))  # Hydra quoting
    assert one.status.tolist() == ["ok"]
    assert run_cli(monkeypatch, "predict", f"run_dir={run}", "plot=A haunted lighthouse, and its keeper.",
                   f"hydra.run.dir={tmp_path / 'b'}") == 0
    same = pd.read_csv(tmp_path / "b" / "predictions.csv")
    assert same.prob_horror[0] == pytest.approx(one.prob_horror[0], abs=1e-6)
    capsys.readouterr()
    assert run_cli(monkeypatch, "predict", f"run_dir={run}", "synopsis=x", f"hydra.run.dir={tmp_path / 'c'}") == 2
    assert "['synopsis']: neither a predict setting nor a text column of this run" in capsys.readouterr().err


def test_predict_warns_about_duplicate_ids_and_long_texts(trained_run, tmp_path, sample_frame, caplog):
    frame = sample_frame.head(5).reset_index(drop=True)
    frame.loc[3, "id"] = frame.loc[1, "id"]
    frame.loc[2, "synopsis"] = "ghost " * 300  # far beyond max_length
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    assert len(result) == 5
    assert "2 row(s) share their 'id' with another row" in caplog.text and "line(s) 3, 5" in caplog.text
    assert "1 text(s) longer than max_length=128 tokens, truncated" in caplog.text and "line(s) 4" in caplog.text


def test_predict_tokenizes_each_text_once(trained_run, tmp_path, sample_frame, caplog, monkeypatch):
    """One tokenization gives the model its ids and predict its "truncated" warning."""
    from genre_lab.data import tokens

    encoded: list[int] = []  # the number of texts of each tokenizer call

    class Counting:
        def __init__(self, backend):
            self.backend = backend

        def __getattr__(self, name):
            return getattr(self.backend, name)

        def encode_batch_fast(self, texts, **kwargs):
            encoded.append(len(texts))
            return self.backend.encode_batch_fast(texts, **kwargs)

    real = tokens.Tokenizer
    monkeypatch.setattr(tokens, "Tokenizer", type("Tokenizer", (), {"from_str": staticmethod(
        lambda text: Counting(real.from_str(text)))}))
    frame = sample_frame.head(5).reset_index(drop=True)
    frame.loc[2, "synopsis"] = "ghost " * 300  # far beyond max_length
    frame.loc[4, "synopsis"] = ""  # not predicted: not tokenized either
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    assert encoded == [4]
    assert "1 text(s) longer than max_length=128 tokens, truncated" in caplog.text and "line(s) 4" in caplog.text
    assert result.status.tolist() == ["ok"] * 4 + ["empty synopsis"]


def test_a_csv_without_rows_gives_a_warning_and_a_header_only_file(trained_run, tmp_path, sample_frame, caplog):
    sample_frame.head(0).to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    assert len(result) == 0 and "no data rows (header only)" in caplog.text
    written = (tmp_path / "p" / "predictions.csv").read_text().splitlines()
    names = locate(trained_run).label_space.names
    assert written == [",".join(["id", "genres", *(f"prob_{n}" for n in names), "status"])]


def test_line_numbers_are_the_files_lines_when_synopses_span_lines(trained_run, tmp_path, sample_frame, caplog):
    frame = sample_frame.head(5).reset_index(drop=True)
    frame.loc[0, "synopsis"] = "A storm.\nA lighthouse.\nA keeper."  # lines 2-4
    frame.loc[1, "synopsis"] = "Two rival chefs.\nOne kitchen."  # lines 5-6
    frame.loc[[2, 4], "synopsis"] = ""  # lines 7 and 9
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    assert "2 row(s) with an empty synopsis" in caplog.text and "line(s) 7, 9" in caplog.text


def test_only_a_last_checkpoint_is_used_with_a_warning(trained_run, tmp_path, caplog):
    """What a run that never validated leaves: checkpoints/last.ckpt and no best.ckpt."""
    run = tmp_path / "never_validated"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt")
    with caplog.at_level(logging.WARNING):
        predict(predict_cfg(run, tmp_path / "p", "text=A haunted lighthouse."))
    assert "has no checkpoints/best.ckpt" in caplog.text and str(run / "checkpoints" / "last.ckpt") in caplog.text


def test_predict_on_a_baseline_run_gives_its_stored_validation_probabilities(mixed_sweep, tmp_path, val_rows_csv,
                                                                             monkeypatch, caplog):
    """The same CSV format, statuses and inputs (CSV, text=, template columns) as for a transformer run."""
    run = mixed_sweep / "0"  # the TF-IDF baseline
    csv, ids = val_rows_csv(run)
    result = predict(predict_cfg(run, tmp_path / "p", f"input_csv={csv}"))
    stored = StoredProbs.load(run / "val_probs.npz")
    assert result.id.astype(str).tolist() == ids and (result.status == "ok").all()
    assert list(result.columns) == ["id", "genres", *(f"prob_{n}" for n in stored.labels), "status"]
    np.testing.assert_allclose(result[[f"prob_{n}" for n in stored.labels]].to_numpy(), stored.probs, atol=1e-6)

    frame = pd.read_csv(csv, dtype=str, keep_default_na=False).head(4)
    frame.loc[1, "synopsis"] = ""
    frame.loc[2, "synopsis"] = "ghost " * 300  # no token limit: nothing to warn about
    frame.to_csv(tmp_path / "four_rows.csv", index=False)
    with caplog.at_level(logging.WARNING):
        rows = predict(predict_cfg(run, tmp_path / "q", f"input_csv={tmp_path / 'four_rows.csv'}"))
    assert rows.status.tolist() == ["ok", "empty synopsis", "ok", "ok"] and "line(s) 3" in caplog.text
    assert "truncated" not in caplog.text
    one = predict(predict_cfg(run, tmp_path / "t", "text=A haunted lighthouse keeper hears voices."))
    assert one.status.tolist() == ["ok"]
    assert run_cli(monkeypatch, "predict", f"run_dir={run}", "synopsis=A ghost, a lighthouse.", "movie_name=Night",
                   f"hydra.run.dir={tmp_path / 'c'}") == 0
    assert pd.read_csv(tmp_path / "c" / "predictions.csv").status.tolist() == ["ok"]


def test_empty_text_drop_leaves_empty_rows_out_listed_by_line(trained_run, tmp_path, sample_frame, caplog):
    frame = sample_frame[sample_frame.genre == "horror"].head(6).reset_index(drop=True)
    frame.loc[[1, 4], "synopsis"] = ""
    frame.to_csv(tmp_path / "in.csv", index=False)
    with caplog.at_level(logging.WARNING):
        result = predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}",
                                     "empty_text=drop"))
    assert result.id.astype(str).tolist() == frame.drop(index=[1, 4]).id.tolist()
    assert (result.status == "ok").all() and result.genres.ne("").all()
    assert "2 row(s) with an empty synopsis left out of the predictions (empty_text=drop): line(s) 3, 6" in caplog.text
    with pytest.raises(GenreLabError, match=r"empty_text='fail' must be one of keep, drop"):
        predict(predict_cfg(trained_run, tmp_path / "q", f"input_csv={tmp_path / 'in.csv'}", "empty_text=fail"))


def test_predict_reads_non_utf8_bytes_under_its_own_encoding_errors_key(trained_run, tmp_path, sample_frame):
    frame = sample_frame.head(5).copy()
    frame.loc[2, "synopsis"] = "Un café noir, une nuit blanche."
    (tmp_path / "in.csv").write_bytes(frame.to_csv(index=False).encode("latin-1", errors="replace"))
    with pytest.raises(GenreLabError, match=r"line\(s\) 4\..*or set encoding_errors=replace\.$"):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}"))
    result = predict(predict_cfg(trained_run, tmp_path / "r", f"input_csv={tmp_path / 'in.csv'}",
                                 "encoding_errors=replace"))
    assert len(result) == 5 and (result.status == "ok").all()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predicting_in_chunks_gives_exactly_the_whole_file_result(trained_run, tmp_path, sample_frame, caplog,
                                                                  suffix):
    frame = sample_frame.head(30).reset_index(drop=True)
    frame.loc[[3, 17], "synopsis"] = ""  # empty: a status, named by place
    frame.loc[5, "synopsis"] = "A lighthouse.\nA keeper.\nA storm."  # spans lines in the CSV
    frame.loc[[8, 25], "id"] = "dup"
    frame.loc[22, "synopsis"] = "a long night " * 60  # cut at max_length
    source = tmp_path / f"in{suffix}"
    {".csv": lambda: frame.to_csv(source, index=False), ".jsonl": lambda: frame.to_json(source, orient="records",
     lines=True), ".parquet": lambda: frame.to_parquet(source)}[suffix]()
    logs = {}
    for rows in (1000, 7):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            predict(predict_cfg(trained_run, tmp_path / f"p{rows}", f"input_csv={source}", f"chunk_rows={rows}",
                                f"out={tmp_path / f'out{rows}.csv'}"))
        logs[rows] = sorted(r.getMessage() for r in caplog.records if r.name == "genre_lab.predict")
    chunked, whole = (pd.read_csv(tmp_path / f"out{rows}.csv", dtype={"id": str}) for rows in (7, 1000))
    pd.testing.assert_frame_equal(chunked.drop(columns=chunked.filter(like="prob_").columns),
                                  whole.drop(columns=whole.filter(like="prob_").columns))  # ids, genres, status
    # probabilities to float noise: a text's batch (hence its padded length) depends on its neighbours
    pd.testing.assert_frame_equal(chunked.filter(like="prob_"), whole.filter(like="prob_"), atol=1e-6, rtol=0)
    assert logs[7] == logs[1000] and len(logs[7]) == 3
    place = {".csv": "line(s) 5, 21", ".jsonl": "line(s) 4, 18", ".parquet": "row index 3, 17"}[suffix]
    assert any("2 row(s) with an empty synopsis" in line and line.endswith(place) for line in logs[7]), logs[7]


def test_predict_logs_its_progress_when_stdout_is_not_a_terminal(trained_run, tmp_path, sample_frame, caplog,
                                                                  monkeypatch):
    monkeypatch.setattr("genre_lab.framework.progress.INTERVAL_S", 0.0)  # a line after every batch
    sample_frame.head(40).to_csv(tmp_path / "in.csv", index=False)
    assert not sys.stdout.isatty()  # pytest captures it, as a log file would
    with caplog.at_level(logging.INFO, logger="genre_lab.framework.progress"):
        predict(predict_cfg(trained_run, tmp_path / "p", f"input_csv={tmp_path / 'in.csv'}", "chunk_rows=8"))
    lines = [r.getMessage() for r in caplog.records if r.name == "genre_lab.framework.progress"]
    assert lines[0].startswith("predicting: 8/40 rows (20%), ") and "rows/s, ETA " in lines[0]
    assert len(lines) == 5 and lines[-1].startswith("predicting: 40 rows in ")
