import numpy as np
import pytest

from genre_lab.errors import GenreLabError
from genre_lab.model.baseline import TfidfLogReg
from genre_lab.model.teacher import TfidfTeacher

GENRES = ["comedy", "drama", "horror"]


def random_label_rows(n: int = 120, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Texts made of words unique to each row, labels drawn at random: nothing to learn, everything to memorise."""
    rng = np.random.default_rng(seed)
    texts = [f"w{i}a w{i}b w{i}c shared words here" for i in range(n)]
    return texts, np.eye(len(GENRES), dtype=np.float32)[rng.integers(0, len(GENRES), n)]


def test_soft_targets_are_out_of_fold_not_memorised_labels():
    """Fitted on a row, the baseline repeats its (random) label; scored out of fold it cannot: what makes the
    teacher's targets soft."""
    texts, targets = random_label_rows()
    in_sample = TfidfLogReg(GENRES, False, min_df=1).fit(texts, targets).predict_proba(texts)
    assert (in_sample.argmax(1) == targets.argmax(1)).mean() > 0.9
    soft = TfidfTeacher(folds=4, min_df=1).soft_targets(texts, targets, GENRES, multi_label=False)
    assert soft.shape == targets.shape and soft.dtype == np.float32
    np.testing.assert_allclose(soft.sum(1), 1, atol=1e-5)  # softmax rows
    assert (soft.argmax(1) == targets.argmax(1)).mean() < 0.6  # chance is 1/3


def test_soft_targets_follow_the_evidence_and_are_seeded():
    texts = [f"{g} {g} film number {i}" for i in range(30) for g in GENRES]
    targets = np.eye(3, dtype=np.float32)[[i % 3 for i in range(len(texts))]]
    teacher = TfidfTeacher(folds=3, min_df=1, seed=7)
    soft = teacher.soft_targets(texts, targets, GENRES, multi_label=False)
    assert (soft.argmax(1) == targets.argmax(1)).all()
    np.testing.assert_array_equal(soft, teacher.soft_targets(texts, targets, GENRES, multi_label=False))


def test_multi_label_soft_targets_are_per_genre_probabilities():
    texts = [f"{a} {b} story {i}" for i in range(20) for a, b in (("comedy", "drama"), ("horror", "horror"))]
    targets = np.array([[1, 1, 0], [0, 0, 1]] * 20, dtype=np.float32)
    soft = TfidfTeacher(folds=2, min_df=1).soft_targets(texts, targets, GENRES, multi_label=True)
    assert soft.shape == (40, 3) and ((soft >= 0) & (soft <= 1)).all()
    assert ((soft > 0.5) == (targets > 0.5)).all()


@pytest.mark.parametrize(("settings", "message"), [
    ({"folds": 1}, r"data.teacher.folds=1 must be a whole number in \[2, 50\]"),
    ({"C": 0}, r"data.teacher.C=0 must be a number > 0"),
    ({"min_df": 0}, r"data.teacher.min_df=0 must be a whole number"),
    ({"seed": -1}, r"data.teacher.seed=-1 must be a whole number"),
])
def test_bad_teacher_settings_name_the_data_teacher_key(settings, message):
    with pytest.raises(GenreLabError, match=message):
        TfidfTeacher(**settings)
