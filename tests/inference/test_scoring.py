"""Scores are raw cosines of L2-normalised vectors, in [-1, 1]; enrollment averages unit vectors."""
from __future__ import annotations

import numpy as np
import pytest

from inference.scoring import average_embeddings, cosine, cosine_matrix, l2_normalise


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(3).standard_normal((50, 192)).astype(np.float32) * 7.0


def test_cosine_stays_in_minus_one_to_one_and_ignores_scale(vectors) -> None:
    scores = [cosine(a, b) for a in vectors[:10] for b in vectors]
    assert all(-1.0 <= s <= 1.0 for s in scores)
    a, b = vectors[0], vectors[1]
    assert cosine(3.0 * a, 0.5 * b) == pytest.approx(cosine(a, b), abs=1e-6)
    assert cosine(a, b) == pytest.approx(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)), abs=1e-6)


def test_a_vector_scores_one_with_itself_and_minus_one_with_its_opposite(vectors) -> None:
    for x in vectors[:10]:
        assert cosine(x, x) == pytest.approx(1.0, abs=1e-6)
        assert cosine(x, -x) == pytest.approx(-1.0, abs=1e-6)


def test_l2_normalise_gives_unit_rows_and_leaves_a_zero_vector_at_zero(vectors) -> None:
    rows = l2_normalise(vectors)
    assert rows.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)
    zero = l2_normalise(np.zeros(192))
    assert np.isfinite(zero).all() and not zero.any()


def test_the_cosine_matrix_holds_every_pairwise_cosine(vectors) -> None:
    matrix = cosine_matrix(vectors[:5], vectors[5:12])
    assert matrix.shape == (5, 7)
    expected = np.array([[cosine(a, b) for b in vectors[5:12]] for a in vectors[:5]])
    np.testing.assert_allclose(matrix, expected, atol=1e-6)


def test_averaging_unit_embeddings_gives_the_normalised_mean(vectors) -> None:
    units = l2_normalise(vectors[:6])
    average = average_embeddings(units)
    assert average.shape == (192,)
    assert np.linalg.norm(average) == pytest.approx(1.0, abs=1e-6)
    mean = units.mean(axis=0)
    np.testing.assert_allclose(average, mean / np.linalg.norm(mean), atol=1e-6)
    # each enrollment counts once whatever its raw norm
    np.testing.assert_allclose(average_embeddings(vectors[:6] * np.arange(1, 7)[:, None]), average, atol=1e-6)


def test_averaging_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        average_embeddings([])
