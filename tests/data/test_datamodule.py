from collections import Counter

import pytest
import torch

from genre_lab.data.datamodule import GenreDataModule
from genre_lab.errors import GenreLabError
from tests.conftest import SAMPLE_CSV


def make_dm(**kwargs) -> GenreDataModule:
    args = {"train_csv": str(SAMPLE_CSV), "tokenizer": "tiny", "batch_size": 8, "seed": 0}
    return GenreDataModule(**{**args, **kwargs})


def test_split_sizes_labels_and_stratification():
    dm = make_dm()
    dm.setup("fit")
    assert len(dm.data.label_space) == 10 and not dm.data.label_space.multi_label
    assert len(dm.data.splits["train"].rows) == 320 and len(dm.data.splits["val"].rows) == 80
    val_genres = Counter(dm.data.train_table.labels[i][0] for i in dm.data.splits["val"].rows)
    assert set(val_genres.values()) == {8}  # 20% of 40 per genre
    assert not set(dm.data.splits["train"].movie_ids) & set(dm.data.splits["val"].movie_ids)


def test_dynamic_padding_pads_to_the_longest_in_batch_only():
    dm = make_dm(max_length=128)
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    lengths = batch["attention_mask"].sum(dim=1)
    assert batch["input_ids"].shape[1] == int(lengths.max()) < 128
    assert batch["labels"].shape == (8, 10) and batch["labels"].sum(dim=1).eq(1).all()
    notebook = make_dm(max_length=128, pad_to_max_length=True)
    notebook.setup("fit")
    assert next(iter(notebook.val_dataloader()))["input_ids"].shape[1] == 128


def test_tokenizes_once_and_truncates_at_max_length():
    dm = make_dm(max_length=16)
    dm.setup("fit")
    train = dm.data.splits["train"].dataset
    assert max(len(x) for x in train.input_ids) == 16
    dm.setup("validate")  # Lightning calls setup per stage: the work is not redone
    assert dm.data.splits["train"].dataset is train


def test_per_class_sampling_in_the_datamodule():
    dm = make_dm(sample={"per_class": 10, "frac": None})
    dm.setup("fit")
    rows = list(dm.data.splits["train"].rows) + list(dm.data.splits["val"].rows)
    assert Counter(dm.data.train_table.labels[i][0] for i in rows) == {g: 10 for g in dm.data.label_space.names}


def test_explicit_val_and_unlabelled_test(tmp_path, sample_frame):
    sample_frame.iloc[:300].to_csv(tmp_path / "train.csv", index=False)
    sample_frame.iloc[300:].to_csv(tmp_path / "val.csv", index=False)
    sample_frame.iloc[300:].drop(columns="genre").to_csv(tmp_path / "test.csv", index=False)
    dm = make_dm(train_csv=str(tmp_path / "train.csv"), val_csv=str(tmp_path / "val.csv"),
                 test_csv=str(tmp_path / "test.csv"))
    dm.setup("fit")
    assert len(dm.data.splits["train"].rows) == 300 and len(dm.data.splits["val"].rows) == 100
    assert not dm.data.has_labels("test") and len(dm.data.splits["test"].rows) == 100


def test_unseen_validation_genres_are_listed(tmp_path, sample_frame):
    sample_frame.to_csv(tmp_path / "train.csv", index=False)
    val = sample_frame.head(5).assign(genre=["western", "action", "noir", "action", "action"])
    val.to_csv(tmp_path / "val.csv", index=False)
    dm = make_dm(train_csv=str(tmp_path / "train.csv"), val_csv=str(tmp_path / "val.csv"))
    with pytest.raises(GenreLabError, match=r"\['noir', 'western'\] do not occur in the training data"):
        dm.setup("fit")


def test_multilabel_datamodule(multilabel_csv):
    dm = make_dm(train_csv=str(multilabel_csv), label_column="genres", multi_label=True)
    dm.setup("fit")
    assert dm.data.label_space.multi_label
    targets = dm.data.splits["train"].dataset.targets
    assert set(targets.sum(axis=1).tolist()) == {1.0, 2.0}
    assert len(dm.data.splits["val"].rows) == 80


def test_second_datamodule_reuses_the_token_cache(tmp_path, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="genre_lab.data.token_cache"):
        first = make_dm(token_cache_dir=str(tmp_path / "tokens"))
        first.prepare_data()  # what Lightning runs on one process per node
        first.setup("fit")
        assert "rows tokenized" in caplog.text
        caplog.clear()
        second = make_dm(token_cache_dir=str(tmp_path / "tokens"))
        second.prepare_data()
        second.setup("fit")
    assert "loaded from cache" in caplog.text and "rows tokenized" not in caplog.text
    a, b = first.data.splits["train"].dataset.input_ids, second.data.splits["train"].dataset.input_ids
    assert (a.ids.flat == b.ids.flat).all() and (a.rows == b.rows).all()
    assert b.ids is second.data.splits["val"].dataset.input_ids.ids  # the splits share the table's ids, no copy


def test_training_batches_are_length_grouped_and_eval_longest_first():
    dm = make_dm(batch_size=16)
    dm.setup("fit")
    widths = [b["input_ids"].shape[1] for b in dm.train_dataloader()]
    real = [int(b["attention_mask"].sum()) for b in dm.train_dataloader()]
    assert sum(w * 16 for w in widths) < 1.15 * sum(real)  # little padding
    assert widths != sorted(widths, reverse=True)  # yet batches come in random order
    val = [b["input_ids"].shape[1] for b in dm.val_dataloader()]
    assert val == sorted(val, reverse=True)
    plain = make_dm(batch_size=16, length_grouping=False)
    plain.setup("fit")
    assert sum(b["input_ids"].numel() for b in plain.train_dataloader()) > 1.1 * sum(w * 16 for w in widths)


@pytest.mark.process
def test_worker_processes_give_no_tokenizer_fork_warning(tmp_path):
    import os
    import subprocess
    import sys

    code = (
        "from genre_lab.data.datamodule import GenreDataModule\n"
        f"dm = GenreDataModule(train_csv={str(SAMPLE_CSV)!r}, tokenizer='tiny', num_workers=2, batch_size=64)\n"
        "dm.setup('fit')\n"
        "assert sum(len(b['input_ids']) for b in dm.train_dataloader()) == 320\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TOKENIZERS_PARALLELISM"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "huggingface/tokenizers" not in result.stderr


def test_the_data_config_states_the_class_defaults_it_does_not_change():
    """conf/data/movies.yaml lists every setting (each is overridable without `+`); the values it does not set on
    purpose must be the class's own defaults (TableSpec's for the table), so the two cannot drift apart."""
    from omegaconf import OmegaConf

    from genre_lab.config_dir import config_dir
    from genre_lab.data.datamodule import data_defaults

    listed = OmegaConf.to_container(OmegaConf.load(config_dir() / "data" / "movies.yaml"))
    assert listed.pop("defaults") == ["_self_", {"teacher": None}]  # the teacher group (data/teacher=…) fills `teacher`
    defaults = data_defaults()
    on_purpose = {"_target_", "train_csv", "tokenizer", "shuffle_seed", "token_cache_dir", "eval_batch_size", "sample"}
    assert set(listed) - on_purpose <= set(defaults)
    differ = {k: (v, defaults[k]) for k, v in listed.items() if k not in on_purpose and v != defaults[k]}
    assert differ == {}
    assert set(defaults) - set(listed) == set()  # every setting is listed


def test_truncation_is_a_validated_setting_used_for_every_split():
    from genre_lab.data.tokens import tokenize

    with pytest.raises(GenreLabError, match=r"data.truncation='end' must be head"):
        make_dm(truncation="end")
    dm = make_dm(max_length=16, truncation="tail", token_cache_dir=None)
    dm.setup("fit")
    assert dm.hparams.truncation == "tail"  # saved as a hyper-parameter: the checkpoint's data settings hold it
    for stage in ("train", "val"):
        split = dm.data.splits[stage]
        texts = [split.table.texts[i] for i in split.rows]
        expected = tokenize(dm.data.tokenizer, texts, 16, "tail")
        assert (split.dataset.input_ids.take(range(len(texts))).flat == expected.flat).all()
        assert (expected.flat != tokenize(dm.data.tokenizer, texts, 16, "head").flat).any()  # the texts are long


def test_multi_label_data_is_split_by_iterative_stratification_unless_asked_otherwise(multilabel_csv):
    import numpy as np
    import pytest

    from genre_lab.errors import GenreLabError

    def split(method: str) -> tuple:
        dm = make_dm(train_csv=str(multilabel_csv), label_column="genres", multi_label=True, split=method)
        dm.setup("fit")
        targets = dm.data.label_space.encode(dm.data.train_table.labels)
        val = dm.data.splits["val"].rows
        gap = np.abs(targets[val].sum(axis=0) / targets.sum(axis=0) - 0.2)
        return dm, sorted(val.tolist()), gap

    auto, auto_val, auto_gap = split("auto")
    assert auto.data.split_method == "iterative" and len(auto_val) == 80  # exact: 20 % of 400
    iterative, iterative_val, _ = split("iterative")
    assert iterative_val == auto_val  # seeded: the same rows
    old, old_val, _ = split("combination")  # (balance on real data: tests/data/test_sampling.py)
    assert len(old_val) == 80 and old_val != auto_val and auto_gap.max() < 0.02
    assert make_dm().data.split_method == "combination"  # single-label data: per-genre strata, exact per genre
    with pytest.raises(GenreLabError, match="data.split"):
        make_dm(split="random")


def test_a_teacher_gives_soft_targets_to_training_batches_only():
    from genre_lab.model.teacher import TfidfTeacher

    dm = make_dm(teacher=TfidfTeacher(folds=3))
    dm.setup("fit")
    train = next(iter(dm.train_dataloader()))
    assert train["teacher"].shape == train["labels"].shape
    torch.testing.assert_close(train["teacher"].sum(1), torch.ones(len(train["labels"])))
    assert "teacher" not in next(iter(dm.val_dataloader()))
    assert "teacher" not in dm.hparams  # eval and predict rebuild the data from these, without fitting it again


def test_global_batch_is_split_by_the_trainer_lightning_sets_up_with():
    """``setup`` (which Lightning calls) derives the per-device batch from the trainer: 64 = 16 x 2 x 2; the model
    is built before, from the data alone, so nothing rewrites a setting after it."""
    from types import SimpleNamespace

    dm = make_dm(global_batch_size=64)
    dm.trainer = SimpleNamespace(world_size=2, accumulate_grad_batches=2)
    dm.setup("fit")
    assert dm.batch_size == 16 and dm.hparams.batch_size == 8  # the setting as configured is kept
    assert next(iter(dm.train_dataloader()))["input_ids"].shape[0] == 16
    odd = make_dm(global_batch_size=60)
    odd.trainer = SimpleNamespace(world_size=2, accumulate_grad_batches=4)
    with pytest.raises(GenreLabError, match=r"global_batch_size=60 is not divisible by 2 device\(s\) x 4 "):
        odd.setup("fit")

