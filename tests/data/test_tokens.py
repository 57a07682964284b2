import numpy as np
import pytest
import torch

from genre_lab.backbones import load_tokenizer
from genre_lab.data import tokens as tokens_module
from genre_lab.data.token_rows import head_and_tail
from genre_lab.data.tokens import TokenIds, make_collator, tokenize, tokenize_flagging_truncation
from genre_lab.errors import GenreLabError

ROWS = [[101, 7, 8, 102], [101, 102], [101, 5, 6, 7, 8, 9, 102]]


def test_token_ids_round_trip_take_and_concat():
    ids = TokenIds.from_lists(ROWS)
    assert len(ids) == 3 and [list(r) for r in ids] == ROWS
    assert ids.lengths.tolist() == [4, 2, 7] and ids.flat.dtype == np.int32
    picked = ids.take([2, 0, 2])
    assert [list(r) for r in picked] == [ROWS[2], ROWS[0], ROWS[2]]
    joined = TokenIds.concat([ids, TokenIds.from_lists(ROWS[:1])])
    assert [list(r) for r in joined] == [*ROWS, ROWS[0]]


def test_tokenize_matches_the_tokenizer_call_and_truncates():
    tokenizer = load_tokenizer("tiny")
    texts = ["A dark castle on a hill.", "two lovers " * 40, "x"]
    ids = tokenize(tokenizer, texts, max_length=16)
    expected = tokenizer(texts, truncation=True, max_length=16)["input_ids"]
    assert [list(map(int, r)) for r in ids] == expected
    assert ids.lengths.max() == 16
    assert tokenizer.truncation_side and tokenizer("x")["input_ids"] == expected[2]  # caller's tokenizer untouched


@pytest.mark.parametrize("truncation", ["head", "head+tail"])
def test_tokenizing_in_chunks_gives_the_ids_and_cuts_of_one_call(monkeypatch, truncation):
    tokenizer = load_tokenizer("tiny")
    texts = [f"movie {i} " + "a ghost story " * (i % 9) for i in range(23)]
    whole, whole_cut = tokenize_flagging_truncation(tokenizer, texts, 16, truncation)
    monkeypatch.setattr(tokens_module, "CHUNK_ROWS", 5)
    chunked, chunked_cut = tokenize_flagging_truncation(tokenizer, texts, 16, truncation, progress=True)
    assert np.array_equal(chunked.flat, whole.flat) and np.array_equal(chunked.offsets, whole.offsets)
    assert np.array_equal(chunked_cut, whole_cut) and whole_cut.any() and not whole_cut.all()
    assert len(TokenIds.concat([])) == 0 and len(tokenize(tokenizer, [], 16)) == 0


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
    tokenizer = load_tokenizer("tiny")
    tokenizer.pad_token = None
    with pytest.raises(GenreLabError, match="no pad token"):
        make_collator(tokenizer)


LONG = "a dark castle on a hill where two lovers meet every night until the storm " * 3


@pytest.mark.parametrize("truncation", ["head", "tail", "head+tail"])
def test_truncation_keeps_the_expected_slices_with_special_tokens_in_place(truncation):
    tokenizer = load_tokenizer("tiny")
    full = tokenizer(LONG)["input_ids"]
    cls, body, sep = full[0], full[1:-1], full[-1]
    assert (cls, sep) == (tokenizer.cls_token_id, tokenizer.sep_token_id) and len(body) > 30
    budget = 16 - 2
    kept = {"head": body[:budget], "tail": body[-budget:], "head+tail": body[:4] + body[-10:]}[truncation]
    ids, cut = tokenize_flagging_truncation(tokenizer, [LONG, "a dark castle"], 16, truncation)
    assert list(map(int, ids[0])) == [cls, *kept, sep]
    assert list(map(int, ids[1])) == tokenizer("a dark castle")["input_ids"]  # short texts are never cut
    assert cut.tolist() == [True, False]
    assert list(map(int, tokenize(tokenizer, [LONG], 16, truncation)[0])) == [cls, *kept, sep]


def test_tail_is_the_tokenizers_left_truncation():
    tokenizer = load_tokenizer("tiny")
    tokenizer.truncation_side = "left"
    assert [list(map(int, r)) for r in tokenize(tokenizer, [LONG, "x"], 12, "tail")] == \
        tokenizer([LONG, "x"], truncation=True, max_length=12)["input_ids"]


def test_head_and_tail_keeps_the_papers_128_and_382_of_512():
    ids = [101, *range(1000, 2000), 102]
    special = [1] + [0] * 1000 + [1]
    kept = head_and_tail(ids, special, 512)
    assert kept == [101, *range(1000, 1128), *range(2000 - 382, 2000), 102]


def test_unknown_truncation_is_a_clear_error():
    with pytest.raises(GenreLabError, match=r"data.truncation='middle' must be head .*, tail .* or head\+tail"):
        tokenize(load_tokenizer("tiny"), ["x"], 16, "middle")
