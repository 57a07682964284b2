"""Every bad input through the `genre-lab` CLI: exit code 2, one message naming the problem and the place, no
traceback, and an earlier run's directory byte-for-byte unchanged.

The cases run `genre_lab.cli.main` in this process (a subprocess per case costs ~5 s of imports); one case runs
through the installed console script, where the process boundary itself is what is tested.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from genre_lab.cli import main as cli_main
from tests.test_cli import genre_lab, run

# Each case: (command, builder). A builder writes its inputs under tmp and returns (arguments, fragments the
# error message must contain). ``run_dir`` is a finished earlier run that eval/predict cases point at.
Builder = Callable[[Path, Path, pd.DataFrame], tuple[list[str], list[str]]]


def run_in_process(args: list[str], capfd, monkeypatch) -> tuple[int, str, str]:
    """`genre-lab <args>` in this process, from a fresh folder (a command that gets as far as Hydra's run directory
    must not leave outputs/ in the checkout): (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cli.main sets it for Hydra; restored afterwards
    monkeypatch.chdir(tempfile.mkdtemp(prefix="genre_lab_cli_"))
    capfd.readouterr()
    code = 0
    try:
        cli_main(args)
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else int(done.code is not None)
    out, err = capfd.readouterr()
    return code, out, err


def _csv(tmp: Path, frame: pd.DataFrame, name: str = "bad.csv", **kwargs) -> Path:
    path = tmp / name
    frame.to_csv(path, index=False, **kwargs)
    return path


def _edited(frame: pd.DataFrame, row: int, column: str, value: str) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


def missing_file(tmp, run_dir, frame):
    return [f"data.train_csv={tmp / 'nowhere.csv'}"], ["data file not found", str(tmp / "nowhere.csv")]


def semicolon_csv(tmp, run_dir, frame):
    path = _csv(tmp, frame, sep=";")
    return [f"data.train_csv={path}"], [str(path), "semicolon", "comma-separated"]


def one_column_semicolon_csv(tmp, run_dir, frame):
    path = _csv(tmp, frame.replace({",": " "}, regex=True), sep=";")  # no comma anywhere: parses as one column
    return [f"data.train_csv={path}"], [str(path), "missing column(s) ['synopsis', 'movie_name', 'genre']",
                                        "semicolon"]


def empty_file(tmp, run_dir, frame):
    path = tmp / "bad.csv"
    path.write_text("")
    return [f"data.train_csv={path}"], [str(path), "the file is empty"]


def header_only(tmp, run_dir, frame):
    path = _csv(tmp, frame.head(0))
    return [f"data.train_csv={path}"], [str(path), "header only"]


def missing_columns(tmp, run_dir, frame):
    path = _csv(tmp, frame.drop(columns="genre"))
    return [f"data.train_csv={path}"], [str(path), "missing column(s) ['genre']", "found ['id', 'movie_name'"]


def empty_synopsis(tmp, run_dir, frame):
    path = _csv(tmp, _edited(_edited(frame, 1, "synopsis", "  "), 4, "synopsis", "NaN"))
    return [f"data.train_csv={path}"], [str(path), "empty 'synopsis' on line(s) 3, 6", "data.empty_text=drop"]


def nan_label(tmp, run_dir, frame):
    path = _csv(tmp, _edited(frame, 2, "genre", float("nan")))
    return [f"data.train_csv={path}"], [str(path), "'genre' on line(s) 4"]


def unseen_val_genre(tmp, run_dir, frame):
    train = _csv(tmp, frame, "train.csv")
    val = _csv(tmp, _edited(frame.head(8), 3, "genre", "western"), "val.csv")
    return [f"data.train_csv={train}", f"data.val_csv={val}"], [str(val), "['western']", "data.unseen_labels=ignore"]


def too_few_rows_to_split(tmp, run_dir, frame):
    path = _csv(tmp, _edited(frame, 0, "genre", "western"))
    return [f"data.train_csv={path}"], ["{'western': 1}", "at least 2 rows per genre"]


def too_few_rows_to_sample(tmp, run_dir, frame):
    path = _csv(tmp, frame)
    return [f"data.train_csv={path}", "data.sample.per_class=50"], ["data.sample.per_class=50", "at most 8"]


def duplicate_ids(tmp, run_dir, frame):
    path = _csv(tmp, _edited(frame, 5, "id", frame.loc[2, "id"]))
    return [f"data.train_csv={path}"], [str(path), "duplicate 'id'", "line(s) 4, 7"]


def invalid_utf8(tmp, run_dir, frame):
    path = _csv(tmp, frame)
    lines = path.read_bytes().split(b"\n")
    lines[6] = lines[6].replace(b"e", b"\xe9", 1)  # Latin-1 'é' inside UTF-8
    path.write_bytes(b"\n".join(lines))
    return [f"data.train_csv={path}"], [str(path), "invalid UTF-8", "line(s) 7", "data.encoding_errors=replace"]


def bad_policy_value(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "data.empty_text=skip"], ["data.empty_text='skip'", "fail, drop"]


def sample_frac_out_of_range(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "data.sample.frac=1.5"], ["data.sample.frac=1.5", "(0, 1]"]


def threshold_out_of_range(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "decode.threshold=1.5"], ["decode.threshold", "(0, 1)", "1.5"]


def train_with_the_checkpoint_rule(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "decode=checkpoint"], ["decode=checkpoint", "eval and predict",
                                                                        "decode=threshold"]


def zero_batch_size(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "data.batch_size=0"], ["data.batch_size=0", "≥ 1"]


def unknown_backbone(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "model.backbone=no-such-org/no-such-encoder"], \
        ["cannot load backbone 'no-such-org/no-such-encoder'", "model=tiny"]


def resume_without_checkpoint(tmp, run_dir, frame):
    return [f"data.train_csv={_csv(tmp, frame)}", "resume=true"], ["resume=true", "last.ckpt does not exist"]


def eval_other_label_space(tmp, run_dir, frame):
    path = _csv(tmp, _edited(frame, 0, "genre", "western"))
    return [f"run_dir={run_dir}", f"input_csv={path}"], [str(path), "['western']", "model's genres"]


def eval_run_dir_without_checkpoints(tmp, run_dir, frame):
    (tmp / "unfinished").mkdir()
    return [f"run_dir={tmp / 'unfinished'}"], [str(tmp / "unfinished"), "holds no checkpoints"]


def eval_threshold_out_of_range(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "decode.threshold=0"], ["decode.threshold", "(0, 1)"]


def eval_zero_batch_size(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "batch_size=0"], ["batch_size=0", "≥ 1"]


def predict_missing_text_columns(tmp, run_dir, frame):
    path = _csv(tmp, frame.rename(columns={"synopsis": "plot"}))
    return [f"run_dir={run_dir}", f"input_csv={path}"], [str(path), "missing text column(s) ['synopsis']"]


def predict_negative_batch_size(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "text=ghost", "batch_size=-1"], ["batch_size=-1", "≥ 1"]


def _gz(tmp: Path, frame: pd.DataFrame, name: str = "bad.csv.gz") -> Path:
    path = tmp / name
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    return path


def _good(tmp: Path, frame: pd.DataFrame, *overrides: str) -> list[str]:
    return [f"data.train_csv={_csv(tmp, frame)}", *overrides]


# -- config values a run cannot train with (issue 11) ---------------------------------------------------------
def negative_lr(tmp, run_dir, frame):
    return _good(tmp, frame, "model.lr=-1"), ["model.lr=-1", "> 0"]


def zero_lr(tmp, run_dir, frame):
    return _good(tmp, frame, "model.lr=0"), ["model.lr=0", "> 0"]


def zero_val_size(tmp, run_dir, frame):
    return _good(tmp, frame, "data.val_size=0"), ["data.val_size=0", "(0, 1)", "data.val_csv"]


def val_size_one(tmp, run_dir, frame):
    return _good(tmp, frame, "data.val_size=1"), ["data.val_size=1", "(0, 1)", "data.val_csv"]


def negative_val_size(tmp, run_dir, frame):
    return _good(tmp, frame, "data.val_size=-0.2"), ["data.val_size=-0.2", "(0, 1)", "data.val_csv"]


def seed_not_a_number(tmp, run_dir, frame):
    return _good(tmp, frame, "seed=abc"), ["seed='abc'", "whole number", "seed=42"]


def top_k_not_a_number(tmp, run_dir, frame):
    return _good(tmp, frame, "decode.top_k=abc"), ["decode.top_k='abc'", "whole number ≥ 1"]


def top_k_fraction(tmp, run_dir, frame):
    return _good(tmp, frame, "decode.top_k=1.5"), ["decode.top_k=1.5", "whole number ≥ 1"]


def top_k_above_genre_count(tmp, run_dir, frame):
    return _good(tmp, frame, "decode.top_k=999"), ["decode.top_k=999", "the training data has 4 genres",
                                                   "between 1 and 4"]


def threshold_not_a_number(tmp, run_dir, frame):
    return _good(tmp, frame, "decode.threshold=abc"), ["decode.threshold='abc'", "(0, 1)"]


def zero_epochs(tmp, run_dir, frame):
    return _good(tmp, frame, "trainer.max_epochs=0"), ["trainer.max_epochs=0", "≥ 1", "max_steps"]


def max_length_beyond_backbone(tmp, run_dir, frame):
    return _good(tmp, frame, "data.max_length=513"), ["data.max_length=513", "at most 512 tokens",
                                                      "data.max_length=512"]


def max_length_zero(tmp, run_dir, frame):
    return _good(tmp, frame, "data.max_length=0"), ["data.max_length=0", "at least 8 tokens"]


def max_length_fraction(tmp, run_dir, frame):
    return _good(tmp, frame, "data.max_length=100.5"), ["data.max_length=100.5", "whole number"]


def max_length_not_a_number(tmp, run_dir, frame):
    return _good(tmp, frame, "data.max_length=abc"), ["data.max_length='abc'", "whole number"]


def unknown_config_option(tmp, run_dir, frame):
    return _good(tmp, frame, "model=nope"), ["Could not find 'model/nope'", "--help"]


def misspelt_key(tmp, run_dir, frame):
    return _good(tmp, frame, "trainer.max_epoch=2"), ["Could not override 'trainer.max_epoch'", "--cfg job"]


def misspelt_key_added(tmp, run_dir, frame):  # what Hydra's message for the misspelt key suggests
    return _good(tmp, frame, "+trainer.max_epoch=2"), ["trainer.max_epoch is not a setting",
                                                       "did you mean trainer.max_epochs?"]


def unknown_data_key(tmp, run_dir, frame):
    return _good(tmp, frame, "+data.max_len=64"), ["data.max_len is not a setting", "data.max_length"]


def single_genre_file(tmp, run_dir, frame):
    path = _csv(tmp, frame.assign(genre="horror"))
    return [f"data.train_csv={path}"], [str(path), "every row has the genre 'horror'", "at least 2 genres",
                                        "data.label_column='genre'"]


def train_csv_is_a_directory(tmp, run_dir, frame):
    (tmp / "data").mkdir()
    _csv(tmp / "data", frame, "train.csv")
    return [f"data.train_csv={tmp / 'data'}"], [f"{tmp / 'data'} is a folder, but not a saved Hugging Face",
                                                  str(tmp / "data" / "train.csv")]


def jsonl_broken_line(tmp, run_dir, frame):
    path = tmp / "bad.jsonl"
    frame.to_json(path, orient="records", lines=True)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:4], lines[4][:-9], *lines[5:]]) + "\n")
    return [f"data.train_csv={path}"], [str(path), "line 5 is not valid JSON"]


def parquet_struct_column(tmp, run_dir, frame):
    path = tmp / "bad.parquet"
    frame.assign(synopsis=[{"text": t, "lang": "en"} for t in frame.synopsis]).to_parquet(path)
    return [f"data.train_csv={path}"], [str(path), "column 'synopsis' holds struct<", "text or numbers"]


def predict_out_of_unknown_format(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "text=ghost", f"out={tmp / 'p.xlsx'}"], [".csv, .tsv, .jsonl or .parquet"]


def gzip_csv_is_read(tmp, run_dir, frame):  # the error proves the columns inside were read
    path = _gz(tmp, frame.drop(columns="genre"))
    return [f"data.train_csv={path}"], [str(path), "missing column(s) ['genre']", "'synopsis'"]


def corrupt_gzip(tmp, run_dir, frame):
    path = tmp / "bad.csv.gz"
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode())[:200])
    return [f"data.train_csv={path}"], [str(path), "not a valid gz file"]


def gzip_without_gz_suffix(tmp, run_dir, frame):
    path = tmp / "bad.csv"
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    return [f"data.train_csv={path}"], [str(path), "gzip-compressed", "*.csv.gz"]


def invalid_template(tmp, run_dir, frame):
    return _good(tmp, frame, "data.text_template='{synopsis'"), ["text template '{synopsis'", "braces"]


def sample_frac_not_a_number(tmp, run_dir, frame):
    return _good(tmp, frame, "data.sample.frac=abc"), ["data.sample.frac='abc'", "(0, 1]"]


def negative_workers(tmp, run_dir, frame):
    return _good(tmp, frame, "data.num_workers=-1"), ["data.num_workers=-1", "≥ 0"]


def pos_weight_count(tmp, run_dir, frame):
    return _good(tmp, frame, "model.pos_weight=[1.0,2.0]"), ["model.pos_weight=[1.0, 2.0]", "4 numbers ≥ 0"]


def bad_precision(tmp, run_dir, frame):
    return _good(tmp, frame, "trainer.precision=foo"), ["trainer settings", "Precision 'foo' is invalid"]


def bad_attn_implementation(tmp, run_dir, frame):
    return _good(tmp, frame, "model.attn_implementation=foo"), ["model.attn_implementation='foo'", "sdpa"]


def missing_start_checkpoint(tmp, run_dir, frame):
    return _good(tmp, frame, f"ckpt_path={tmp / 'nowhere.ckpt'}"), [str(tmp / "nowhere.ckpt"), "no such checkpoint"]


def tuning_grid_not_a_number(tmp, run_dir, frame):  # used after training: checked before it
    return _good(tmp, frame, "tuning.grid_step=abc"), ["tuning.grid_step='abc'", "(0, 0.5)"]


def calibration_min_positives_negative(tmp, run_dir, frame):  # used after training: checked before it
    return _good(tmp, frame, "calibration=temperature", "calibration.min_positives=-2"), [
        "calibration.min_positives=-2", "≥ 0"]


def calibration_of_the_tfidf_baseline(tmp, run_dir, frame):
    return _good(tmp, frame, "model=tfidf_lr", "calibration=temperature"), ["TF-IDF baseline", "calibration=none"]


def eval_csv_is_a_directory(tmp, run_dir, frame):
    (tmp / "data").mkdir()
    return [f"run_dir={run_dir}", f"input_csv={tmp / 'data'}"], [f"{tmp / 'data'} is a folder, but not a saved"]


def eval_gzip_csv_is_read(tmp, run_dir, frame):  # an unknown genre inside: the rows were read
    path = _gz(tmp, _edited(frame, 0, "genre", "western"))
    return [f"run_dir={run_dir}", f"input_csv={path}"], [str(path), "['western']"]


def eval_top_k_above_genre_count(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "decode.top_k=5"], ["decode.top_k=5", "the model has 4 genres"]


def predict_csv_is_a_directory(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", f"input_csv={tmp}"], [f"{tmp} is a folder, but not a saved Hugging Face dataset"]


def predict_out_is_a_directory(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "text=ghost", f"out={tmp}"], [f"out={tmp} is a directory", "predictions.csv"]


def predict_top_k_not_a_number(tmp, run_dir, frame):
    return [f"run_dir={run_dir}", "text=ghost", "decode.top_k=abc"], ["decode.top_k='abc'"]


def export_out_is_a_file(tmp, run_dir, frame):
    (tmp / "model.bin").write_text("something else")
    return [f"run_dir={run_dir}", f"out={tmp / 'model.bin'}"], [f"out={tmp / 'model.bin'} is a file", "directory"]


CASES: dict[str, tuple[str, Builder]] = {f.__name__: (command, f) for command, fs in {
    "train": [missing_file, semicolon_csv, one_column_semicolon_csv, empty_file, header_only, missing_columns,
              empty_synopsis, nan_label, unseen_val_genre, too_few_rows_to_split, too_few_rows_to_sample,
              duplicate_ids, invalid_utf8, bad_policy_value, sample_frac_out_of_range, threshold_out_of_range,
              zero_batch_size, unknown_backbone, resume_without_checkpoint, negative_lr, zero_lr, zero_val_size,
              val_size_one, negative_val_size, seed_not_a_number, top_k_not_a_number, top_k_fraction,
              top_k_above_genre_count, threshold_not_a_number, zero_epochs, max_length_beyond_backbone,
              max_length_zero, max_length_fraction, max_length_not_a_number, unknown_config_option, misspelt_key,
              misspelt_key_added, unknown_data_key, single_genre_file, train_csv_is_a_directory, gzip_csv_is_read,
              jsonl_broken_line, parquet_struct_column,
              corrupt_gzip, gzip_without_gz_suffix, invalid_template, sample_frac_not_a_number, negative_workers,
              pos_weight_count, bad_precision, bad_attn_implementation, missing_start_checkpoint,
              tuning_grid_not_a_number, train_with_the_checkpoint_rule, calibration_min_positives_negative,
              calibration_of_the_tfidf_baseline],
    "eval": [eval_other_label_space, eval_run_dir_without_checkpoints, eval_threshold_out_of_range,
             eval_zero_batch_size, eval_csv_is_a_directory, eval_gzip_csv_is_read, eval_top_k_above_genre_count],
    "predict": [predict_missing_text_columns, predict_negative_batch_size, predict_csv_is_a_directory,
                predict_out_is_a_directory, predict_top_k_not_a_number, predict_out_of_unknown_format],
    "export": [export_out_is_a_file],
}.items() for f in fs}


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (by relative path): equal digests mean byte-identical trees."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def good_frame(run_frame) -> pd.DataFrame:
    """32 valid rows, 8 of each of 4 genres; each case breaks one thing."""
    return run_frame.groupby("genre").head(8).reset_index(drop=True)


def assert_refused(code: int, out: str, err: str, fragments: list[str]) -> None:
    """Exit code 2, exactly one `genre-lab: error:` line holding every fragment, no traceback."""
    assert code == 2, err[-3000:]
    message = [line for line in err.splitlines() if line.startswith("genre-lab: error: ")]
    assert len(message) == 1, err[-3000:]
    for fragment in fragments:
        assert fragment in message[0], (fragment, message[0])
    assert "Traceback" not in err + out


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_a_message_and_changes_nothing(case, trained_run, good_frame, tmp_path, capfd,
                                                              monkeypatch):
    command, build = CASES[case]
    args, fragments = build(tmp_path, trained_run, good_frame)
    before = tree_digest(trained_run)
    extra = ["model=tiny"] if command == "train" else []
    result = run_in_process([command, *extra, *args, f"hydra.run.dir={tmp_path / 'out'}"], capfd, monkeypatch)
    assert_refused(*result, fragments)
    assert tree_digest(trained_run) == before
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.parametrize("command", ["train", "eval", "predict"])
def test_an_unreadable_csv_is_named_with_the_fix(command, trained_run, good_frame, tmp_path, capfd, monkeypatch):
    path = _csv(tmp_path, good_frame)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file whatever its mode: refuse the read the way the kernel would
        read_bytes = Path.read_bytes

        def refused(self: Path) -> bytes:
            if self == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return read_bytes(self)

        monkeypatch.setattr(Path, "read_bytes", refused)
        opened = Path.open

        def refused_open(self: Path, *args, **kwargs):  # predict streams the file
            if self == path:
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return opened(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", refused_open)
    args = {"train": ["model=tiny", f"data.train_csv={path}"], "eval": [f"run_dir={trained_run}", f"input_csv={path}"],
            "predict": [f"run_dir={trained_run}", f"input_csv={path}"]}[command]
    before = tree_digest(trained_run)
    result = run_in_process([command, *args, f"hydra.run.dir={tmp_path / 'out'}"], capfd, monkeypatch)
    assert_refused(*result, [str(path), "permission denied", "chmod u+r"])
    assert tree_digest(trained_run) == before


def test_a_new_run_into_a_finished_runs_directory_is_refused_before_anything_is_written(trained_run, good_frame,
                                                                                         tmp_path, capfd,
                                                                                         monkeypatch):
    before = tree_digest(trained_run)  # .hydra/config.yaml and the job log included
    result = run_in_process(["train", "model=tiny", f"data.train_csv={_csv(tmp_path, good_frame)}",
                             f"hydra.run.dir={trained_run}"], capfd, monkeypatch)
    assert_refused(*result, [f"{trained_run} already holds a trained model", "resume=true"])
    assert tree_digest(trained_run) == before


@pytest.mark.process
def test_config_error_through_the_console_script_exits_2(tmp_path):
    """The process boundary: Hydra's own message, then one line, and the shell sees exit code 2."""
    result = run([genre_lab(), "train", "model=tiny", "trainer.max_epoch=2", f"hydra.run.dir={tmp_path / 'out'}"],
                 cwd=tmp_path)
    assert_refused(result.returncode, result.stdout, result.stderr, ["Could not override 'trainer.max_epoch'"])
    assert "Key 'max_epoch' is not in struct" in result.stderr  # Hydra's message is kept
    assert not (tmp_path / "out").exists()


def test_eval_in_a_read_only_run_directory_skips_the_probability_cache(trained_run, good_frame, tmp_path, capfd,
                                                                       monkeypatch):
    import genre_lab.evaluate

    def read_only(path):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(genre_lab.evaluate, "atomic_target", read_only)
    before = tree_digest(trained_run)
    code, out, err = run_in_process(["eval", f"run_dir={trained_run}", f"input_csv={_csv(tmp_path, good_frame)}",
                                     "plots=false", f"hydra.run.dir={tmp_path / 'out'}"], capfd, monkeypatch)
    assert code == 0, err[-3000:]
    assert "probability cache not written" in out + err and "Read-only file system" in out + err
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert tree_digest(trained_run) == before


def test_predict_reads_a_gzipped_csv(trained_run, good_frame, tmp_path, capfd, monkeypatch):
    plain, packed = tmp_path / "plain.csv", _gz(tmp_path, good_frame, "movies.csv.gz")
    good_frame.to_csv(plain, index=False)
    outputs = []
    for name, path in (("a", plain), ("b", packed)):
        code, _, err = run_in_process(["predict", f"run_dir={trained_run}", f"input_csv={path}",
                                       f"hydra.run.dir={tmp_path / name}"], capfd, monkeypatch)
        assert code == 0, err[-3000:]
        outputs.append((tmp_path / name / "predictions.csv").read_text())
    assert outputs[0] == outputs[1]


def test_a_bug_keeps_its_traceback_and_exit_code_1(tmp_path, capfd, monkeypatch):
    """Only user errors are cut to one line: an unexpected exception is not mistaken for a config error."""
    import genre_lab.train

    def bug(cfg):
        raise RuntimeError("an unexpected failure")

    monkeypatch.setattr(genre_lab.train, "train", bug)
    code, out, err = run_in_process(["train", "model=tiny", f"hydra.run.dir={tmp_path / 'out'}"], capfd, monkeypatch)
    assert code == 1 and "Traceback" in err and "RuntimeError: an unexpected failure" in err
    assert "genre-lab: error:" not in err


@pytest.mark.parametrize("setting", ["hydra.sweeper.keep_checkpoints=0",
                                     "hydra/launcher=parallel hydra.launcher.n_jobs=0"])
def test_bad_sweeper_and_launcher_settings_exit_2_with_one_line(setting, tmp_path, capfd, monkeypatch):
    code, _, err = run_in_process(["train", "hparams_search=optuna", *setting.split(), "model=tiny",
                                   f"hydra.sweep.dir={tmp_path / 'sweep'}"], capfd, monkeypatch)
    lines = [line for line in err.splitlines() if line.startswith("genre-lab: error: ")]
    assert code == 2 and len(lines) == 1 and setting.split()[-1].split("=")[0] in lines[0]
    assert "whole number ≥ 1" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize(("args", "named"), [
    (["eval", "run_dir=x", "data_csv=y.csv"], "input_csv="),
    (["train", "callbacks.model_checkpoint.dirpath=/tmp/x"], "genre_lab/runs/layout.py"),
    (["train", "callbacks.model_checkpoint.save_top_k=3"], "genre_lab/runs/layout.py"),
    (["train", "logger.csv.name=mine"], "hydra.run.dir="),
])
def test_a_setting_that_was_replaced_names_its_replacement(args, named, tmp_path, capfd, monkeypatch):
    code, _, err = run_in_process([*args, f"hydra.run.dir={tmp_path / 'out'}"], capfd, monkeypatch)
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"genre-lab: error: {args[-1].split('=')[0]} is no longer a setting")
    assert named in line and not (tmp_path / "out").exists()


def test_a_misspelt_setting_is_not_mistaken_for_a_replaced_one(tmp_path, capfd, monkeypatch):
    code, _, err = run_in_process(["train", "callbacks.model_checkpoint.monitr=x"], capfd, monkeypatch)
    assert code == 2 and "Could not override 'callbacks.model_checkpoint.monitr'" in err.splitlines()[-1]


@pytest.mark.parametrize(("args", "fragment"), [
    (["compare", "--bogus"], "unrecognized arguments: --bogus"),
    (["compare"], "give run directories"),
    (["export", "run_dir=/nonexistent", "decode=top_k"], "run_dir=/nonexistent: no such directory"),
])
def test_every_command_shares_the_error_path_and_takes_decode(args, fragment, capfd, monkeypatch):
    code, _, err = run_in_process(args, capfd, monkeypatch)
    assert code == 2 and err.strip().splitlines()[-1].startswith("genre-lab: error: ") and fragment in err
