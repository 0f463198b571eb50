"""The retired in-process index, kept as ``benchmarks/index_scale.py``'s baseline (never used by the service).

The service searches through :mod:`inference.vector_index` (``VectorIndex`` is that protocol's name);
this is the FAISS wrapper it used before, keyed by int64 ids:


``IndexIDMap2(IndexFlatIP)``: brute force, so results are exact, with the caller's int64
ids, so removing a voiceprint removes exactly that vector. The index lives in memory only;
it is derived state that its owner rebuilds from the database, never saved to disk.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

import faiss
import numpy as np

from inference.scoring import l2_normalise


class BaselineFlatIndex:
    """A thread-safe map ``id -> unit vector`` with top-k cosine search.

    Parameters
    ----------
    dim : int
        Embedding size (192 for ECAPA-TDNN).
    """

    def __init__(self, dim: int = 192) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ids: set[int] = set()
        self._lock = threading.RLock()

    # --- validation ---------------------------------------------------------------------

    def _as_ids(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        array = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        if array.ndim != 1:
            raise ValueError(f"ids must be 1-D, got shape {array.shape}")
        if len(set(array.tolist())) != len(array):
            raise ValueError("ids must be unique")
        return np.ascontiguousarray(array)

    def _as_vectors(self, vectors: np.ndarray, count: int) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.shape != (count, self.dim):
            raise ValueError(f"vectors must have shape ({count}, {self.dim}), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError("vectors contain NaN or infinite values")
        return np.ascontiguousarray(l2_normalise(array))

    # --- mutation ---------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add new vectors. ``ids``: ``(N,)`` int64, none present yet; ``vectors``: ``(N, dim)``."""
        id_array = self._as_ids(ids)
        vec_array = self._as_vectors(vectors, len(id_array))
        with self._lock:
            present = self._ids.intersection(id_array.tolist())
            if present:
                raise KeyError(f"ids already in the index: {sorted(present)[:5]}")
            if len(id_array):
                self._index.add_with_ids(vec_array, id_array)
                self._ids.update(id_array.tolist())

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Remove these ids (absent ones are ignored). Returns how many were removed."""
        id_array = self._as_ids(ids)
        with self._lock:
            present = np.array([i for i in id_array.tolist() if i in self._ids], dtype=np.int64)
            if not len(present):
                return 0
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(present)))
            self._ids.difference_update(present.tolist())
            return removed

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace: each id ends up with exactly the given vector."""
        id_array = self._as_ids(ids)
        vec_array = self._as_vectors(vectors, len(id_array))
        with self._lock:
            self.remove(id_array)
            self.add(id_array, vec_array)

    def clear(self) -> None:
        with self._lock:
            self._index.reset()
            self._ids.clear()

    # --- queries ------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest ids by cosine, best first: ``[(id, score), ...]``, score in [-1, 1]."""
        if k < 1:
            raise ValueError("k must be >= 1")
        query = self._as_vectors(vector, 1)
        with self._lock:
            k = min(k, len(self._ids))
            if k == 0:
                return []
            scores, ids = self._index.search(query, k)
        return [(int(i), float(np.clip(s, -1.0, 1.0)))
                for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i != -1]

    def vector(self, key: int) -> np.ndarray:
        """The stored unit vector of ``key``: ``(dim,)`` float32. Raises KeyError if absent."""
        with self._lock:
            if key not in self._ids:
                raise KeyError(key)
            return self._index.reconstruct(int(key))

    def ids(self) -> frozenset[int]:
        with self._lock:
            return frozenset(self._ids)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def __contains__(self, item: object) -> bool:
        with self._lock:
            return item in self._ids
