import numpy as np
import pytest
import torch

from genre_lab.backbones import load_tokenizer
from genre_lab.data.tokens import TokenIds, make_collator, tokenize

ROWS = [[101, 7, 8, 102], [101, 102], [101, 5, 6, 7, 8, 9, 102]]


def test_token_ids_round_trip_take_and_save(tmp_path):
    ids = TokenIds.from_lists(ROWS)
    assert len(ids) == 3 and [list(r) for r in ids] == ROWS
    assert ids.lengths.tolist() == [4, 2, 7] and ids.flat.dtype == np.int32
    picked = ids.take([2, 0, 2])
    assert [list(r) for r in picked] == [ROWS[2], ROWS[0], ROWS[2]]
    ids.save(tmp_path / "ids.npz")
    loaded = TokenIds.load(tmp_path / "ids.npz")
    assert [list(r) for r in loaded] == ROWS


def test_tokenize_matches_the_tokenizer_call_and_truncates():
    tokenizer = load_tokenizer("tiny")
    texts = ["A dark castle on a hill.", "two lovers " * 40, "x"]
    ids = tokenize(tokenizer, texts, max_length=16)
    expected = tokenizer(texts, truncation=True, max_length=16)["input_ids"]
    assert [list(map(int, r)) for r in ids] == expected
    assert ids.lengths.max() == 16
    assert tokenizer.truncation_side and tokenizer("x")["input_ids"] == expected[2]  # caller's tokenizer untouched


def test_pad_collator_pads_right_with_mask_labels_and_multiple():
    tokenizer = load_tokenizer("tiny")
    ids = TokenIds.from_lists(ROWS)
    items = [{"input_ids": ids[i], "labels": np.eye(3, dtype=np.float32)[i]} for i in range(3)]
    batch = make_collator(tokenizer)(items)
    assert batch["input_ids"].shape == (3, 7) and batch["input_ids"].dtype == torch.long
    assert batch["attention_mask"].sum(dim=1).tolist() == [4, 2, 7]
    assert (batch["input_ids"][1, 2:] == tokenizer.pad_token_id).all()
    assert torch.equal(batch["labels"], torch.eye(3))
    assert make_collator(tokenizer, pad_multiple=8)(items)["input_ids"].shape == (3, 8)
    assert make_collator(tokenizer, pad_to=128)(items)["input_ids"].shape == (3, 128)


def test_tokenizer_without_pad_token_is_a_clear_error():
    from genre_lab.errors import GenreLabError

    tokenizer = load_tokenizer("tiny")
    tokenizer.pad_token = None
    with pytest.raises(GenreLabError, match="no pad token"):
        make_collator(tokenizer)
