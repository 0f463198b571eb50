"""Every 1:N search tier keeps the same contract: inference.vector_index.VectorIndex.

One parametrised suite: exact flat, FAISS IVF (which is exact while the index is small:
it then probes every cell) and Milvus on milvus-lite. Ground truth is a numpy brute force.
"""
from __future__ import annotations

import random
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from inference.vector_index import APPROXIMATE_FROM, FlatIndex, IVFIndex, VectorIndex, open_index
from inference.vector_index.base import as_keys
from inference.vector_index.keys import KeyTable


def _unit(count: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((count, 192)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _clustered(count: int, seed: int = 0, centres: int = 50, spread: float = 0.09) -> np.ndarray:
    """Rows around a few directions (cosine to their centre ~0.5), as speakers cluster."""
    rng = np.random.default_rng(seed)
    rows = _unit(centres, seed + 1)[rng.integers(0, centres, count)] + spread * rng.standard_normal((count, 192))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _keys(count: int, seed: int = 0) -> list[uuid.UUID]:
    rng = random.Random(seed)
    return [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(count)]


def _exact(keys: list[uuid.UUID], rows: np.ndarray, query: np.ndarray, k: int) -> list[tuple[uuid.UUID, float]]:
    scores = rows @ (query / np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")[:k]
    return [(keys[i], float(scores[i])) for i in order]


def _milvus(tmp_path, request):
    pytest.importorskip("pymilvus", reason="pymilvus is not installed (optional: the Milvus backend)")
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed (it runs the Milvus tests without a server)")
    from milvus_lite.server_manager import server_manager_instance

    from inference.vector_index.milvus import MilvusIndex

    path = str(tmp_path / "milvus.db")
    index = MilvusIndex(path, collection=f"t_{uuid.uuid4().hex[:12]}")

    def stop() -> None:
        index.close()
        server_manager_instance.release_server(path)  # not at exit, after pytest closed its streams

    request.addfinalizer(stop)
    return index


BACKENDS = ["flat", "ivf", "milvus"]


@pytest.fixture(params=BACKENDS)
def make_index(request, tmp_path):
    """A factory of empty indexes of one backend."""
    def make() -> VectorIndex:
        if request.param == "flat":
            return FlatIndex()
        if request.param == "ivf":
            return IVFIndex()
        return _milvus(tmp_path, request)
    make.backend = request.param
    return make


def test_every_backend_keeps_the_protocol(make_index):
    assert isinstance(make_index(), VectorIndex)


def test_search_finds_the_exact_top_k_with_their_cosines_best_first(make_index):
    keys, rows = _keys(600), _clustered(600)
    index = make_index()
    index.upsert(keys, rows)
    for seed in range(5):
        query = rows[seed * 7] + 0.05 * _unit(1, seed=100 + seed)[0]
        hits = index.search(query, 5)
        expected = _exact(keys, rows, query, 5)
        assert [key for key, _ in hits] == [key for key, _ in expected]
        assert [score for _, score in hits] == pytest.approx([score for _, score in expected], abs=1e-5)


def test_search_many_answers_each_query_as_search_does(make_index):
    keys, rows = _keys(300), _unit(300)
    index = make_index()
    index.upsert(keys, rows)
    queries = _unit(4, seed=9)
    assert [[key for key, _ in hits] for hits in index.search_many(queries, 3)] == \
           [[key for key, _ in index.search(query, 3)] for query in queries]


def test_vectors_are_normalised_so_a_vector_scores_one_against_itself(make_index):
    keys, rows = _keys(20), _unit(20)
    index = make_index()
    index.upsert(keys, rows * 7.5)
    key, score = index.search(rows[3], 1)[0]
    assert key == keys[3] and score == pytest.approx(1.0, abs=1e-5)


def test_upsert_replaces_the_vector_of_an_existing_key(make_index):
    keys, rows = _keys(50), _unit(50)
    index = make_index()
    index.upsert(keys, rows)
    fresh = _unit(1, seed=42)
    index.upsert([keys[10]], fresh)
    assert len(index) == 50
    assert index.search(fresh[0], 1)[0] == (keys[10], pytest.approx(1.0, abs=1e-5))
    assert keys[10] not in [key for key, score in index.search(rows[10], 2) if score > 0.99]


def test_remove_removes_exactly_the_given_keys_and_counts_those_present(make_index):
    keys, rows = _keys(40), _unit(40)
    index = make_index()
    index.upsert(keys, rows)
    gone = [keys[0], keys[17], keys[39]]
    assert index.remove(gone + [keys[17], uuid.uuid4()]) == 3
    assert len(index) == 37
    assert all(key not in index for key in gone) and keys[1] in index
    assert set(index.ids()) == set(keys) - set(gone)
    for position in (0, 17, 39):
        assert index.search(rows[position], 37)[0][0] != keys[position]
    remaining = [i for i in range(40) if keys[i] not in gone]
    query = rows[5]
    assert [k for k, _ in index.search(query, 5)] == \
           [k for k, _ in _exact([keys[i] for i in remaining], rows[remaining], query, 5)]


def test_a_removed_key_can_come_back(make_index):
    keys, rows = _keys(10), _unit(10)
    index = make_index()
    index.upsert(keys, rows)
    index.remove(keys)
    assert len(index) == 0 and index.search(rows[0], 3) == []
    index.upsert(keys[:2], rows[5:7])
    assert index.search(rows[6], 1)[0][0] == keys[1]


def test_k_larger_than_the_index_returns_every_vector(make_index):
    keys, rows = _keys(7), _unit(7)
    index = make_index()
    index.upsert(keys, rows)
    hits = index.search(rows[0], 100)
    assert sorted(key for key, _ in hits) == sorted(keys)
    assert [score for _, score in hits] == sorted((score for _, score in hits), reverse=True)


def test_an_empty_index_finds_nothing(make_index):
    index = make_index()
    assert len(index) == 0
    assert index.search(_unit(1)[0], 5) == []
    assert index.search_many(_unit(2), 5) == [[], []]
    assert index.ids() == [] and uuid.uuid4() not in index
    assert index.remove([uuid.uuid4()]) == 0


def test_ids_round_trip_as_uuids_and_bytes(make_index):
    keys = _keys(25)
    index = make_index()
    index.upsert([key.bytes for key in keys[:5]] + keys[5:], _unit(25))
    assert sorted(index.ids()) == sorted(keys)
    assert keys[0] in index and keys[0].bytes in index
    assert "not a key" not in index and 12 not in index


@pytest.mark.parametrize("vectors, reason", [
    (np.zeros((2, 10), np.float32), "wrong dimension"),
    (np.zeros((3, 192), np.float32) + 1, "wrong count"),
    (np.zeros((2, 2, 192), np.float32) + 1, "wrong rank"),
    (np.array([[np.nan] * 192, [1.0] * 192], np.float32), "NaN"),
    (np.array([[np.inf] * 192, [1.0] * 192], np.float32), "infinite"),
    (np.zeros((2, 192), np.float32), "zero vector"),
])
def test_bad_vectors_are_refused_with_value_error_and_change_nothing(make_index, vectors, reason):
    index = make_index()
    index.upsert(_keys(3, seed=5), _unit(3))
    with pytest.raises(ValueError):
        index.upsert(_keys(2), vectors)
    assert len(index) == 3, reason


def test_bad_keys_queries_and_k_are_refused_with_value_error(make_index):
    index = make_index()
    index.upsert(_keys(3), _unit(3))
    key = uuid.uuid4()
    for bad_keys in ([key, key], [12, 13], ["0" * 32, "1" * 32], [b"short", b"also short"]):
        with pytest.raises(ValueError):
            index.upsert(bad_keys, _unit(2))
    with pytest.raises(ValueError):
        index.remove(["not a key"])
    for bad_query in (np.zeros(192), np.full(192, np.nan), np.ones(191)):
        with pytest.raises(ValueError):
            index.search(bad_query, 3)
    for bad_k in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            index.search(_unit(1)[0], bad_k)
    assert len(index) == 3


def test_a_random_sequence_of_changes_matches_a_plain_dict(make_index):
    index = make_index()
    rng = random.Random(3)
    pool = _keys(200, seed=11)
    model: dict[uuid.UUID, np.ndarray] = {}
    steps = 12 if make_index.backend == "milvus" else 60
    for step in range(steps):
        batch = rng.sample(pool, rng.randint(1, 25))
        if step % 3 == 2:
            assert index.remove(batch) == sum(key in model for key in batch)
            for key in batch:
                model.pop(key, None)
        else:
            rows = _unit(len(batch), seed=step)
            index.upsert(batch, rows)
            model.update(zip(batch, rows))
        assert len(index) == len(model)
    keys = list(model)
    rows = np.stack([model[key] for key in keys])
    assert set(index.ids()) == set(keys)
    for query in _unit(5, seed=77):
        assert [k for k, _ in index.search(query, 5)] == [k for k, _ in _exact(keys, rows, query, 5)]


@pytest.mark.parametrize("backend", ["flat", "ivf"])
def test_concurrent_changes_and_searches_leave_a_consistent_index(backend):
    index = FlatIndex() if backend == "flat" else IVFIndex(nlist=4, nprobe=4)
    keys, rows = _keys(400), _unit(400)
    index.upsert(keys[:200], rows[:200])  # the IVF learns its cells from a first batch

    def work(i: int) -> None:
        index.upsert([keys[i]], rows[i][None])
        assert index.search(rows[i], 3)[0][0] in keys
        if i % 2:
            index.remove([keys[i]])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(400)))
    assert set(index.ids()) == {keys[i] for i in range(0, 400, 2)} | {keys[i] for i in range(200)}.difference(
        keys[i] for i in range(1, 400, 2))


def test_the_approximate_index_keeps_recall_on_clustered_vectors():
    keys, rows = _keys(20_000), _clustered(20_000, centres=400, spread=0.08)
    index = IVFIndex()
    index.upsert(keys, rows)
    assert index.nprobe < index.nlist  # really approximate here
    queries = rows[:200] + 0.06 * _unit(200, seed=4)
    found = [hits[0][0] for hits in index.search_many(queries, 1)]
    exact = [_exact(keys, rows, query, 1)[0][0] for query in queries]
    assert np.mean([a == b for a, b in zip(found, exact)]) >= 0.98


def test_the_ivf_refuses_a_first_batch_too_small_for_its_cells():
    with pytest.raises(ValueError):
        IVFIndex(nlist=16).upsert(_keys(4), _unit(4))


def test_open_index_picks_exact_below_the_switch_and_approximate_above():
    assert isinstance(open_index("auto", size_hint=1_000), FlatIndex)
    assert isinstance(open_index("auto", size_hint=APPROXIMATE_FROM), IVFIndex)
    assert isinstance(open_index("flat"), FlatIndex)
    with pytest.raises(ValueError):
        open_index("annoy")


def test_the_key_table_agrees_with_a_dict_through_growth_and_deletes():
    table, model, free = KeyTable(), {}, list(range(20_000))
    rng = random.Random(5)
    pool = _keys(6_000, seed=2)
    for step in range(300):
        batch = rng.sample(pool, rng.randint(1, 60))
        keys = as_keys(batch)
        found = table.find(keys)
        assert [int(slot) for slot in found] == [model.get(key, -1) for key in batch]
        if step % 4 == 3:
            freed = table.delete(keys)
            free.extend(int(slot) for slot in freed if slot >= 0)
            for key in batch:
                model.pop(key, None)
        else:
            new = [key for key in batch if key not in model]
            slots = [free.pop() for _ in new]
            table.insert(as_keys(new), np.asarray(slots, dtype=np.int64))
            model.update(zip(new, slots))
        assert len(table) == len(model)


def test_the_key_table_costs_tens_of_bytes_per_key():
    table = KeyTable()
    table.insert(as_keys(_keys(50_000)), np.arange(50_000))
    assert table.nbytes / 50_000 < 48  # two dicts of uuid.UUID cost ~258 bytes per key


def test_open_index_sizes_the_ivf_cells_for_the_whole_load_not_its_first_batch():
    index = open_index("ivf", size_hint=40_000)
    index.upsert(_keys(8_000), _clustered(8_000))  # the first of several streamed batches
    assert index.nlist == 200


def test_the_flat_index_gives_back_its_vectors_in_the_order_of_its_ids():
    keys, rows = _keys(30), _unit(30)
    index = FlatIndex()
    index.upsert(keys, rows)
    index.remove(keys[3:9])
    position = {key: i for i, key in enumerate(keys)}
    expected = rows[[position[key] for key in index.ids()]]
    assert np.allclose(index.vectors(), expected, atol=1e-6)
