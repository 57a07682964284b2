import os
import re
import time

import pytest

from genre_lab import backbones
from genre_lab.backbones import installed_pieces, load_tokenizer, position_limit, resolve_backbone, unpack_pieces
from genre_lab.errors import GenreLabError
from genre_lab.model.backbone import load_classifier


def test_unloadable_backbone_names_the_offline_choices():
    with pytest.raises(GenreLabError) as err:
        load_classifier("no-such-org/no-such-encoder", ["a", "b"])
    assert "model=minilm" in str(err.value) and "model=tiny" in str(err.value)
    with pytest.raises(GenreLabError, match="model=minilm"):
        load_tokenizer("no-such-org/no-such-encoder")


def test_tiny_backbone_is_built_once_and_loads_offline():
    path = resolve_backbone("tiny")
    assert resolve_backbone("tiny") == path
    model = load_classifier("tiny", ["a", "b", "c"], dropout=0.3)
    assert model.config.num_labels == 3 and model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.seq_classif_dropout == 0.3
    tokenizer = load_tokenizer("tiny")
    assert tokenizer.is_fast and tokenizer("a dark castle")["input_ids"][0] == tokenizer.cls_token_id


def test_rebuilding_from_a_saved_config_needs_no_weights():
    model = load_classifier("tiny", ["a", "b"])
    rebuilt = load_classifier("anything-not-loadable", ["a", "b"], config=model.config.to_dict())
    assert type(rebuilt) is type(model)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("model_type", ["roberta", "distilbert"])
def test_position_limit_is_the_longest_input_the_architecture_embeds(model_type):
    """RoBERTa's positions start after its padding index: of 514 position embeddings, 512 hold text."""
    import torch
    from transformers import AutoConfig, AutoModel

    size = {"roberta": dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            max_position_embeddings=514, pad_token_id=1),
            "distilbert": dict(dim=16, hidden_dim=32, n_layers=1, n_heads=2, max_position_embeddings=512)}
    config = AutoConfig.for_model(model_type, vocab_size=50, **size[model_type])
    limit = position_limit(config)
    assert limit == 512
    model = AutoModel.from_config(config).eval()
    with torch.no_grad():
        model(input_ids=torch.full((1, limit), 5))
        with pytest.raises((IndexError, RuntimeError)):  # an embedding lookup past the table
            model(input_ids=torch.full((1, limit + 1), 5))


def test_relative_positions_have_no_length_limit():
    from transformers import AutoConfig

    assert position_limit(AutoConfig.for_model("deberta-v2", position_biased_input=False)) is None


def test_mean_pooling_keeps_the_pretrained_encoder_and_rebuilds_from_its_config():
    import torch
    from transformers import AutoModel

    model = load_classifier("tiny", ["a", "b", "c"], dropout=0.3, objective="ce", pooling="mean")
    pretrained = AutoModel.from_pretrained(resolve_backbone("tiny"))
    for (name, theirs), ours in zip(pretrained.state_dict().items(), model.encoder.state_dict().values(),
                                    strict=True):
        assert torch.equal(theirs, ours), name
    assert model.config.problem_type == "single_label_classification" and model.config.num_labels == 3
    assert model.dropout.p == 0.3
    assert load_classifier("tiny", ["a", "b"], pooling="mean").dropout.p == 0.2  # DistilBERT's seq_classif_dropout
    rebuilt = load_classifier("anything-not-loadable", ["a", "b", "c"], config=model.config.to_dict(), pooling="mean")
    assert rebuilt.state_dict().keys() == model.state_dict().keys() and rebuilt.dropout.p == 0.3


@pytest.mark.process  # subprocesses: the process suite
def test_the_tiny_backbone_is_the_same_in_every_process(tmp_path):
    """Tests train it in xdist workers and CI sessions: a vocabulary that changed per process changed their figures."""
    import subprocess
    import sys

    build = "import sys; from pathlib import Path; from genre_lab.backbones import build_tiny_backbone; " \
            "build_tiny_backbone(Path(sys.argv[1]))"
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", build, str(tmp_path / name)], check=True, capture_output=True)
    for file in ("tokenizer.json", "model.safetensors", "config.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def split_zip(tmp_path, files: dict[str, str], pieces: int = 3) -> list:
    """A zip of ``files`` cut into ``pieces`` byte ranges, as the mpnet packages ship it."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    paths = []
    for i in range(pieces):
        paths.append(tmp_path / f"enc.zip.{i + 1:03d}")
        paths[-1].write_bytes(data[i * size:(i + 1) * size])
    return paths


def test_the_pieces_of_a_split_zip_are_unpacked_once_as_the_backbone_folder(tmp_path):
    pieces = split_zip(tmp_path, {"enc/config.json": '{"model_type": "mpnet"}', "enc/vocab.txt": "[PAD]\n" * 500})
    target = tmp_path / "cache" / "enc"
    assert unpack_pieces(pieces, "enc", target) == target
    assert (target / "config.json").read_text() == '{"model_type": "mpnet"}'
    assert (target / "vocab.txt").read_text() == "[PAD]\n" * 500
    for piece in pieces:  # the second call reads nothing: the folder is there
        piece.unlink()
    assert unpack_pieces(pieces, "enc", target) == target
    assert sorted(p.name for p in target.parent.iterdir()) == ["enc"]  # no temp folder or joined zip left


@pytest.mark.parametrize(("files", "reason"), [
    (None, "not a zip"),
    ({"other/config.json": "{}"}, "hold no enc/config.json"),
])
def test_pieces_that_do_not_hold_the_backbone_give_one_error_and_leave_nothing(tmp_path, files, reason):
    if files is None:
        pieces = [tmp_path / "enc.zip.001", tmp_path / "enc.zip.002"]
        for piece in pieces:
            piece.write_bytes(b"not a zip at all")
    else:
        pieces = split_zip(tmp_path, files)
    target = tmp_path / "cache" / "enc"
    with pytest.raises(GenreLabError, match=rf"cannot unpack enc from enc\.zip\.001, .*{reason}.*Reinstall"):
        unpack_pieces(pieces, "enc", target)
    assert list(target.parent.iterdir()) == []


def test_mpnet_is_its_hub_name_until_its_pieces_are_installed(monkeypatch):
    monkeypatch.setattr(backbones, "MPNET_PARTS", ("no-such-package-for-genre-lab",))
    assert resolve_backbone("mpnet") == backbones.MPNET_HUB
    assert installed_pieces(("no-such-package-for-genre-lab", "pytest")) is None
    with pytest.raises(GenreLabError, match=r"package pytest holds 0 zip pieces, not one: reinstall"):
        installed_pieces(("pytest",))  # installed, but not a piece of anything


def test_a_backbone_another_job_published_first_is_kept_and_the_loser_leaves_nothing(tmp_path, monkeypatch):
    publish = backbones.publish_folder

    def another_job_wins(built, target, replace):
        target.mkdir()
        (target / "config.json").write_text('{"winner": true}')
        publish(built, target, replace)

    monkeypatch.setattr(backbones, "publish_folder", another_job_wins)
    target = tmp_path / "cache" / "tiny"
    assert backbones.build_tiny_backbone(target) == target
    assert (target / "config.json").read_text() == '{"winner": true}'
    pieces = split_zip(tmp_path, {"enc/config.json": "{}"})
    assert unpack_pieces(pieces, "enc", tmp_path / "cache" / "enc") == tmp_path / "cache" / "enc"
    assert (tmp_path / "cache" / "enc" / "config.json").read_text() == '{"winner": true}'
    assert sorted(p.name for p in target.parent.iterdir()) == ["enc", "tiny"]  # no temp folder left


@pytest.mark.parametrize("builder", ["tiny", "pieces"])
def test_a_backbone_name_taken_by_something_else_is_an_error_and_the_build_leaves_nothing(tmp_path, builder):
    target = tmp_path / "cache" / "enc"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("not a backbone")
    with pytest.raises(GenreLabError) as err:
        if builder == "tiny":
            backbones.build_tiny_backbone(target)
        else:  # the pieces are fine: the error must not send the user to reinstall them
            unpack_pieces(split_zip(tmp_path, {"enc/config.json": "{}"}), "enc", target)
    assert re.fullmatch(r".*/enc holds files but no config\.json, .*: remove that folder and run again", str(err.value))
    assert sorted(p.name for p in target.parent.iterdir()) == ["enc"]
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_a_killed_build_s_temp_folder_is_removed_by_the_next_build_once_stale(tmp_path):
    target = tmp_path / "cache" / "enc"
    target.parent.mkdir()
    killed = target.parent / ".enc.5e5e5e5e"  # what a SIGKILL between join and rename leaves
    (killed / "unzipped").mkdir(parents=True)
    os.utime(killed, (time.time() - backbones.STALE_BUILD_S - 60,) * 2)
    unpack_pieces(split_zip(tmp_path, {"enc/config.json": "{}"}), "enc", target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["enc"]
