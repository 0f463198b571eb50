"""The retired baseline index (benchmarks/baseline_index.py): exact top-k cosine search with exact removal, safe under threads."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from benchmarks.baseline_index import BaselineFlatIndex
from inference.scoring import cosine, l2_normalise


def _vectors(count: int, seed: int = 0) -> np.ndarray:
    return l2_normalise(np.random.default_rng(seed).standard_normal((count, 192)).astype(np.float32))


def test_search_returns_the_exact_cosine_top_k_best_first():
    vectors = _vectors(50)
    index = BaselineFlatIndex()
    index.add(np.arange(100, 150, dtype=np.int64), vectors)
    query = l2_normalise(vectors[7] + 0.3 * _vectors(1, seed=1)[0])
    hits = index.search(query, 5)
    expected = sorted(((100 + i, cosine(query, v)) for i, v in enumerate(vectors)), key=lambda h: -h[1])[:5]
    assert [i for i, _ in hits] == [i for i, _ in expected]
    assert [s for _, s in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
    assert hits[0][0] == 107


def test_a_vector_scores_one_against_itself():
    vectors = _vectors(3)
    index = BaselineFlatIndex()
    index.add(np.array([1, 2, 3]), vectors * 4.0)  # not unit length: normalised on the way in
    assert index.search(vectors[1], 1)[0] == (2, pytest.approx(1.0, abs=1e-5))


def test_remove_deletes_exactly_the_given_ids():
    index = BaselineFlatIndex()
    vectors = _vectors(4)
    index.add(np.array([10, 20, 30, 40]), vectors)
    assert index.remove([20, 99]) == 1
    assert len(index) == 3 and 20 not in index and 10 in index
    assert 20 not in [i for i, _ in index.search(vectors[1], 4)]


def test_upsert_replaces_a_vector_and_add_refuses_a_duplicate_id():
    index = BaselineFlatIndex()
    first, second = _vectors(2)
    index.add(np.array([5]), first[None])
    with pytest.raises(KeyError):
        index.add(np.array([5]), second[None])
    index.upsert(np.array([5]), second[None])
    assert len(index) == 1
    assert index.search(second, 1)[0][1] == pytest.approx(1.0, abs=1e-5)


def test_search_on_an_empty_index_finds_nothing_and_k_is_capped():
    index = BaselineFlatIndex()
    assert index.search(_vectors(1)[0], 3) == []
    index.add(np.array([1]), _vectors(1))
    assert len(index.search(_vectors(1)[0], 10)) == 1


def test_it_refuses_bad_shapes_and_values():
    index = BaselineFlatIndex()
    with pytest.raises(ValueError):
        index.add(np.array([1]), np.zeros((1, 10), dtype=np.float32))
    with pytest.raises(ValueError):
        index.add(np.array([1, 1]), _vectors(2))
    with pytest.raises(ValueError):
        index.add(np.array([1]), np.full((1, 192), np.nan, dtype=np.float32))


def test_concurrent_adds_removes_and_searches_leave_a_consistent_index():
    index = BaselineFlatIndex()
    vectors = _vectors(200)

    def work(i: int) -> None:
        index.add(np.array([i]), vectors[i][None])
        index.search(vectors[i], 3)
        if i % 2:
            index.remove([i])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(200)))
    assert len(index) == 100 and index.ids() == frozenset(range(0, 200, 2))
