from collections import Counter

import pytest

from genre_lab.data.datamodule import GenreDataModule
from genre_lab.errors import GenreLabError
from tests.conftest import SAMPLE_CSV


def make_dm(**kwargs) -> GenreDataModule:
    args = {"train_csv": str(SAMPLE_CSV), "tokenizer": "tiny", "batch_size": 8, "seed": 0}
    return GenreDataModule(**{**args, **kwargs})


def test_split_sizes_labels_and_stratification():
    dm = make_dm()
    dm.setup("fit")
    assert len(dm.label_space) == 10 and not dm.label_space.multi_label
    assert len(dm.splits["train"].rows) == 320 and len(dm.splits["val"].rows) == 80
    val_genres = Counter(dm.train_table.labels[i][0] for i in dm.splits["val"].rows)
    assert set(val_genres.values()) == {8}  # 20% of 40 per genre
    assert not set(dm.splits["train"].ids) & set(dm.splits["val"].ids)


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
    train = dm.splits["train"].dataset
    assert max(len(x) for x in train.input_ids) == 16
    dm.setup("validate")  # Lightning calls setup per stage: the work is not redone
    assert dm.splits["train"].dataset is train


def test_per_class_sampling_in_the_datamodule():
    dm = make_dm(sample={"per_class": 10, "frac": None})
    dm.setup("fit")
    rows = list(dm.splits["train"].rows) + list(dm.splits["val"].rows)
    assert Counter(dm.train_table.labels[i][0] for i in rows) == {g: 10 for g in dm.label_space.names}


def test_explicit_val_and_unlabelled_test(tmp_path, sample_frame):
    sample_frame.iloc[:300].to_csv(tmp_path / "train.csv", index=False)
    sample_frame.iloc[300:].to_csv(tmp_path / "val.csv", index=False)
    sample_frame.iloc[300:].drop(columns="genre").to_csv(tmp_path / "test.csv", index=False)
    dm = make_dm(train_csv=str(tmp_path / "train.csv"), val_csv=str(tmp_path / "val.csv"),
                 test_csv=str(tmp_path / "test.csv"))
    dm.setup("fit")
    assert len(dm.splits["train"].rows) == 300 and len(dm.splits["val"].rows) == 100
    assert not dm.has_test_labels and len(dm.splits["test"].rows) == 100


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
    assert dm.label_space.multi_label
    targets = dm.splits["train"].dataset.targets
    assert set(targets.sum(axis=1).tolist()) == {1.0, 2.0}
    assert len(dm.splits["val"].rows) == 80
