"""The ONNX runtime on an exported tiny run: where only onnxruntime, tokenizers and NumPy can be imported, the same
genres and probabilities as in this process; batching, calibration, squashing and bad input."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genre_lab.errors import GenreLabError
from genre_lab.scoring.calibration_entry import temperatures
from genre_lab.serving.manifest import MANIFEST, Manifest
from genre_lab.serving.onnx_runtime import OnnxGenreModel, squash

pytest.importorskip("onnxruntime")

LONG = "A detective and a ghost share a night shift in an old hospital. " * 20  # well over 128 tokens
MOVIES = [{"synopsis": "A family of robots looks for a home on a cold planet.", "movie_name": "Tin Hearts"},
          {"synopsis": LONG, "movie_name": "Night Shift"},
          {"synopsis": "Two rivals fall in love over one summer.", "movie_name": None}]
# The packages the runtime must do without: a finder ahead of every other refuses them, as if not installed.
BLOCKER = """
    import sys
    BLOCKED = {"torch", "transformers", "pytorch_lightning", "lightning", "omegaconf", "hydra", "pandas", "sklearn"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
"""


def test_the_runtime_runs_where_torch_and_the_training_stack_cannot_be_imported(onnx_folder):
    script = textwrap.dedent(BLOCKER) + textwrap.dedent("""
        import json
        from genre_lab.serving.onnx_runtime import OnnxGenreModel
        for name in sorted(BLOCKED):  # the finder works: each of them fails to import here
            try:
                __import__(name)
            except ImportError:
                continue
            raise SystemExit(f"{name} imported")
        model = OnnxGenreModel(sys.argv[1])
        movies, texts = model.predict(json.loads(sys.argv[2])), model.predict(texts=["raw text, no template"])
        print(json.dumps({"genres": movies.genres + texts.genres, "cut": movies.cut.tolist(),
                          "probs": movies.probabilities.tolist() + texts.probabilities.tolist(),
                          "loaded": sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(onnx_folder), json.dumps(MOVIES)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    there = json.loads(done.stdout.strip().splitlines()[-1])
    assert there["loaded"] == []
    model = OnnxGenreModel(onnx_folder)
    here = [model.predict(MOVIES), model.predict(texts=["raw text, no template"])]
    assert there["genres"] == here[0].genres + here[1].genres
    assert there["cut"] == [False, True, False]
    np.testing.assert_allclose(there["probs"], np.concatenate([r.probabilities for r in here]), atol=1e-6)


def test_a_row_gets_the_same_probabilities_alone_or_padded_in_any_batch(onnx_folder):
    """Dynamic padding and length sorting change nothing: the graph honours the attention mask at every length."""
    model = OnnxGenreModel(onnx_folder)
    texts = model.texts_of(MOVIES) + ["short", "a little longer text than that", ""]
    together = model.probabilities_and_cuts(texts, batch_size=64)[0]
    alone = np.concatenate([model.probabilities_and_cuts([t])[0] for t in texts])
    in_pairs = model.probabilities_and_cuts(texts, batch_size=2)[0]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(together, in_pairs, atol=1e-5)
    assert model.predict([]).probabilities.shape == (0, len(model.genres))


def test_decisions_follow_the_manifests_rule(onnx_folder, trained_run):
    model = OnnxGenreModel(onnx_folder)
    saved = json.loads((trained_run / "metrics.json").read_text())["decoder"]
    assert model.rule.to_dict() == saved
    result = model.predict(MOVIES)
    assert result.probabilities.shape == (3, len(model.genres)) and result.probabilities.dtype == np.float32
    np.testing.assert_array_equal(result.decisions, model.rule.decide(result.probabilities))
    assert result.genres == [[g for g, d in zip(model.genres, row, strict=True) if d] for row in result.decisions]


def test_squash_is_trainings_sigmoid_and_softmax():
    torch = pytest.importorskip("torch")
    from genre_lab.model.module import probabilities

    logits = np.array([[-120.0, -3.0, 0.0, 2.5], [40.0, 1.0, -1.0, 0.25]], dtype=np.float32)
    for objective in ("bce", "ce"):
        expected = probabilities(torch.from_numpy(logits), objective).numpy()
        np.testing.assert_allclose(squash(logits, objective), expected, atol=1e-7)


def test_temperatures_are_one_or_one_per_genre():
    assert temperatures(None, 3, "m") is None
    np.testing.assert_array_equal(temperatures({"method": "temperature", "temperature": [2.0]}, 3, "m"), [2.0])
    assert temperatures({"method": "temperature", "temperature": [1.0, 2.0, 3.0]}, 3, "m") == [1.0, 2.0, 3.0]
    for bad in ({"method": "temperature", "temperature": [1.0, 2.0]}, {"method": "temperature", "temperature": [0]},
                {"method": "isotonic", "temperature": [1.0]}, {"method": "temperature", "temperature": ["x"]},
                [2.0], {"method": "temperature", "temperature": []}):
        with pytest.raises(GenreLabError, match="calibration"):
            temperatures(bad, 3, "m")


def test_movies_need_every_template_column_and_one_kind_of_input(onnx_folder):
    model = OnnxGenreModel(onnx_folder)
    with pytest.raises(GenreLabError, match=r"movie 1: missing \['movie_name'\].*uses \['synopsis', 'movie_name'\]"):
        model.predict([MOVIES[0], {"synopsis": "no title"}])
    with pytest.raises(GenreLabError, match="not a mapping"):
        model.predict(["a raw text where a movie belongs"])
    with pytest.raises(GenreLabError, match="either movies"):
        model.predict(MOVIES, texts=["both"])


def test_a_folder_without_a_readable_manifest_says_what_it_is(onnx_folder, tmp_path):
    with pytest.raises(GenreLabError, match=f"no {MANIFEST}, so not a genre_lab ONNX export"):
        OnnxGenreModel(tmp_path)
    saved = json.loads((onnx_folder / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps({**saved, "format_version": 99}))
    with pytest.raises(GenreLabError, match="format_version 99"):
        Manifest.read(tmp_path)
    (tmp_path / MANIFEST).write_text(json.dumps({k: v for k, v in saved.items() if k != "genres"}))
    with pytest.raises(GenreLabError, match=r"missing \['genres'\]"):
        Manifest.read(tmp_path)
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(GenreLabError, match="not a readable genre_lab export manifest"):
        Manifest.read(tmp_path)


def test_a_graph_changed_after_export_is_refused_by_its_hash(onnx_folder, tmp_path):
    import shutil

    folder = shutil.copytree(onnx_folder, tmp_path / "copy")
    assert OnnxGenreModel(folder).sha256 == Manifest.read(folder).model["sha256"]
    with open(folder / Manifest.read(folder).onnx_file, "ab") as graph:
        graph.write(b"\0")  # one byte more: still loads in onnxruntime, no longer the exported file
    with pytest.raises(GenreLabError, match="sha256 .* records .* changed or damaged after export"):
        OnnxGenreModel(folder)
