"""Approximate search: FAISS inverted lists (IVF-Flat), for large N.

The vectors are partitioned into ``nlist`` cells around k-means centroids, learnt from the
first batch loaded (in practice the rebuild from the database); a search scores the query
against the ``nprobe`` nearest cells only. Stored vectors stay exact float32, so a candidate's
score is its true cosine: only whether a far-away cell is probed is approximate.

Chosen over HNSW (see notes/scaling.md): IVF removes a vector in O(1) through a hash
table of ids (FAISS HNSW cannot remove at all), builds about 10x faster (24 s at 300k on two
shared cores, against HNSW's 61 s at 100k), and met recall@1 >= 0.99 on clustered ECAPA-like
vectors.

The centroids are fixed once learnt. When the index has grown well past the data it learnt
from, :attr:`IVFIndex.stale` turns true and the owner should rebuild it.
"""
from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence

import faiss
import numpy as np

from .base import DIM, Hit, ReadWriteLock, as_key, as_keys, as_unit_vectors, check_k, hits, to_uuids
from .flat import set_search_threads
from .keys import KeyTable

# Cells and probes, measured by benchmarks/index_scale.py (notes/scaling.md): sqrt(N) cells
# keep the k-means (paid by every worker at start-up) to seconds; probing 1/8 of them (at
# least 32) kept recall@1 >= 0.99 against exact search on real-like clustered vectors from
# 300k up (4 sqrt(N) cells need only 2% probes but took 6x longer to learn at 300k).
_POINTS_PER_CENTROID = 39  # FAISS's own minimum for a meaningful k-means
_TRAIN_POINTS_PER_CENTROID = 64
NPROBE_FRACTION = 1 / 8
MIN_NPROBE = 32


def default_nlist(count: int) -> int:
    """Cells for ``count`` vectors: ``sqrt(count)``, but at least 39 training points per cell."""
    return max(1, min(round(math.sqrt(count)), count // _POINTS_PER_CENTROID))


def default_nprobe(nlist: int) -> int:
    return min(nlist, max(MIN_NPROBE, math.ceil(nlist * NPROBE_FRACTION)))


class IVFIndex:
    """Approximate top-k cosine search (FAISS ``IndexIVFFlat``) over UUID-keyed unit vectors.

    Parameters
    ----------
    dim : int
        Vector size.
    nlist, nprobe : int or None
        Cells, and cells probed per search; ``None`` picks them from the size of the first
        batch (:func:`default_nlist`, :func:`default_nprobe`). ``nprobe == nlist`` is exact.
    capacity : int
        Keys to reserve room for.
    search_threads : int
        OpenMP threads per search (see :class:`.FlatIndex`).
    seed : int
        Seed of the k-means, so a rebuild from the same rows gives the same cells.
    """

    def __init__(self, dim: int = DIM, *, nlist: int | None = None, nprobe: int | None = None,
                 capacity: int = 0, search_threads: int = 1, seed: int = 1234) -> None:
        self.dim = dim
        self.search_threads = search_threads
        self._nlist_wanted = nlist
        self._nprobe_wanted = nprobe
        self._seed = seed
        self._index: faiss.IndexIVFFlat | None = None
        self._quantizer: faiss.IndexFlatIP | None = None
        self._trained_on = 0
        self._keys = KeyTable(capacity)
        self._free: list[int] = []
        self._next_slot = 0
        self._lock = ReadWriteLock()

    @property
    def nlist(self) -> int:
        return 0 if self._index is None else int(self._index.nlist)

    @property
    def nprobe(self) -> int:
        return 0 if self._index is None else int(self._index.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self._index is None:
            raise ValueError("the index has no cells yet")
        with self._lock.write():
            self._index.nprobe = max(1, min(int(value), self.nlist))

    @property
    def stale(self) -> bool:
        """True once the index holds over 4x the vectors its cells were learnt from."""
        return self._index is not None and len(self) > 4 * max(self._trained_on, 1)

    @property
    def nbytes(self) -> int:
        """Approximate memory: vectors and ids in the lists, centroids, the id hash map, keys."""
        if self._index is None:
            return self._keys.nbytes
        # FAISS's id -> (list, offset) hash map: ~48 bytes per entry in libstdc++
        return (len(self) * (self.dim * 4 + 8 + 48) + self.nlist * self.dim * 4 + self._keys.nbytes)

    # --- changes ------------------------------------------------------------------------------

    def _train(self, rows: np.ndarray) -> None:
        nlist = self._nlist_wanted or default_nlist(len(rows))
        if len(rows) < nlist:
            raise ValueError(f"the first batch ({len(rows)} vectors) is too small to learn {nlist} cells")
        self._quantizer = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIVFFlat(self._quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = self._seed
        sample = rows
        if len(rows) > _TRAIN_POINTS_PER_CENTROID * nlist:
            pick = np.random.default_rng(self._seed).choice(len(rows), _TRAIN_POINTS_PER_CENTROID * nlist,
                                                            replace=False)
            sample = rows[np.sort(pick)]
        set_search_threads(faiss.omp_get_max_threads())  # a build is not a request: use every core
        index.train(sample)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.nprobe = self._nprobe_wanted or default_nprobe(nlist)
        self._index = index
        self._trained_on = len(rows)

    def _allocate(self, count: int) -> np.ndarray:
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = np.arange(self._next_slot, self._next_slot + count - len(reused), dtype=np.int64)
        self._next_slot += len(fresh)
        return np.concatenate([np.asarray(reused, dtype=np.int64), fresh])

    def upsert(self, ids: Sequence[uuid.UUID], vectors: np.ndarray) -> None:
        keys = as_keys(ids)
        rows = as_unit_vectors(vectors, len(keys), self.dim)
        if not len(keys):
            return
        with self._lock.write():
            if self._index is None:
                self._train(rows)
            slots = self._keys.find(keys)
            present = slots >= 0
            if present.any():
                self._index.remove_ids(faiss.IDSelectorArray(slots[present]))
            fresh = ~present
            slots[fresh] = self._allocate(int(np.count_nonzero(fresh)))
            self._keys.insert(keys[fresh], slots[fresh])
            set_search_threads(faiss.omp_get_max_threads() if len(rows) > 10_000 else 1)
            self._index.add_with_ids(rows, slots)

    def remove(self, ids: Iterable[uuid.UUID]) -> int:
        keys = as_keys(ids, unique=False)
        with self._lock.write():
            slots = self._keys.delete(np.unique(keys, axis=0) if len(keys) else keys)
            gone = slots[slots >= 0]
            if len(gone):
                self._index.remove_ids(faiss.IDSelectorArray(gone))
                self._free.extend(gone.tolist())
            return len(gone)

    def clear(self) -> None:
        """Remove everything, including the learnt cells (the next batch learns new ones)."""
        with self._lock.write():
            self._index = self._quantizer = None
            self._keys.clear()
            self._free.clear()
            self._next_slot = self._trained_on = 0

    # --- queries ------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        return self.search_many(as_unit_vectors(vector, 1, self.dim), k)[0]

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        k = check_k(k)
        queries = as_unit_vectors(vectors, None, self.dim)
        with self._lock.read():
            k = min(k, len(self._keys))
            if k == 0:
                return [[] for _ in range(len(queries))]
            set_search_threads(self.search_threads)
            scores, slots = self._index.search(queries, k)
            found = slots >= 0  # fewer than k in the probed cells: FAISS pads with -1
            keys = self._keys.key_of(np.where(found, slots, 0))
        return [hits(keys[q][found[q]], scores[q][found[q]]) for q in range(len(queries))]

    def ids(self) -> list[uuid.UUID]:
        with self._lock.read():
            if self._index is None:
                return []
            live = self._keys.find(self._keys.key_of(np.arange(self._next_slot)))
            used = np.flatnonzero(live == np.arange(self._next_slot))
            return to_uuids(self._keys.key_of(used))

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        try:
            raw = as_key(key)
        except ValueError:
            return False
        with self._lock.read():
            return bool(self._keys.find(np.frombuffer(raw, dtype="<u8").reshape(1, 2))[0] >= 0)
