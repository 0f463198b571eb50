"""Exact search: every vector scored against the query (FAISS brute-force inner product).

Vectors live in a dense array of rows (no holes, so nothing to filter at search time):

* a new key is appended at the end;
* an existing key's row is overwritten in place;
* a removed key's row is filled with the last row, whose key then points at it.

Each change touches O(1) rows and one hash-table entry, whatever the size. The array is a
list of fixed-size chunks rather than one buffer, so growing never copies what is stored
(only the last, partly filled chunk doubles, up to ``CHUNK_ROWS``); the search scans each
chunk and merges the per-chunk top-k.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence

import faiss
import numpy as np

from .base import DIM, Hit, ReadWriteLock, as_key, as_keys, as_unit_vectors, check_k, hits, to_uuids
from .keys import KeyTable

CHUNK_ROWS = 16_384  # 12.6 MB of float32 at 192-d: a growth step copies at most this much
_FIRST_ROWS = 256


def set_search_threads(threads: int) -> None:
    """OpenMP threads for FAISS calls made by *this* thread (libgomp keeps the setting per thread)."""
    faiss.omp_set_num_threads(threads)


class FlatIndex:
    """Exact top-k cosine search over unit vectors keyed by UUID. Thread-safe.

    Parameters
    ----------
    dim : int
        Vector size (192 for ECAPA-TDNN).
    capacity : int
        Keys to reserve room for in the hash table (avoids rehashing while loading).
    search_threads : int
        OpenMP threads per search. 1 by default: on a server, request threads already keep
        the cores busy, and FAISS threads waiting for a core made a 1M search 3x slower.
    """

    def __init__(self, dim: int = DIM, *, capacity: int = 0, search_threads: int = 1) -> None:
        self.dim = dim
        self.search_threads = search_threads
        self._chunks: list[np.ndarray] = []
        self._count = 0
        self._keys = KeyTable(capacity)
        self._lock = ReadWriteLock()

    # --- storage ------------------------------------------------------------------------------

    def _room(self) -> int:
        return sum(len(chunk) for chunk in self._chunks)

    def _reserve(self, rows: int) -> None:
        while self._room() < rows:
            last = self._chunks[-1] if self._chunks else None
            if last is not None and len(last) < CHUNK_ROWS:
                wanted = rows - (self._room() - len(last))
                grown = np.empty((min(CHUNK_ROWS, max(2 * len(last), wanted)), self.dim), dtype=np.float32)
                grown[:len(last)] = last
                self._chunks[-1] = grown
            else:
                self._chunks.append(np.empty((min(CHUNK_ROWS, max(_FIRST_ROWS, rows - self._room())), self.dim),
                                             dtype=np.float32))

    def _write(self, slots: np.ndarray, rows: np.ndarray) -> None:
        chunk_of, row_of = np.divmod(slots, CHUNK_ROWS)
        for chunk in np.unique(chunk_of):
            mine = chunk_of == chunk
            self._chunks[chunk][row_of[mine]] = rows[mine]

    def _row(self, slot: int) -> np.ndarray:
        return self._chunks[slot // CHUNK_ROWS][slot % CHUNK_ROWS]

    @property
    def nbytes(self) -> int:
        """Memory held: vectors (including reserved rows) and the key maps."""
        return sum(chunk.nbytes for chunk in self._chunks) + self._keys.nbytes

    # --- changes ------------------------------------------------------------------------------

    def upsert(self, ids: Sequence[uuid.UUID], vectors: np.ndarray) -> None:
        keys = as_keys(ids)
        rows = as_unit_vectors(vectors, len(keys), self.dim)
        with self._lock.write():
            slots = self._keys.find(keys)
            present = slots >= 0
            self._write(slots[present], rows[present])
            fresh = ~present
            count = int(np.count_nonzero(fresh))
            if count:
                new_slots = np.arange(self._count, self._count + count, dtype=np.int64)
                self._reserve(self._count + count)
                self._write(new_slots, rows[fresh])
                self._keys.insert(keys[fresh], new_slots)
                self._count += count

    def remove(self, ids: Iterable[uuid.UUID]) -> int:
        keys = as_keys(ids, unique=False)
        with self._lock.write():
            slots = self._keys.delete(np.unique(keys, axis=0) if len(keys) else keys)
            gone = np.sort(slots[slots >= 0])[::-1]
            # Highest slot first: every removed slot above the current one is already gone,
            # so the last row, when it is not the one removed, holds a live key.
            for slot in gone.tolist():
                last = self._count - 1
                if slot != last:
                    self._row(slot)[:] = self._row(last)
                    self._keys.move(self._keys.key_of(last), slot)
                self._count -= 1
            return len(gone)

    def clear(self) -> None:
        with self._lock.write():
            self._chunks = []
            self._count = 0
            self._keys.clear()

    # --- queries ------------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        return self.search_many(as_unit_vectors(vector, 1, self.dim), k)[0]

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        k = check_k(k)
        queries = as_unit_vectors(vectors, None, self.dim)
        with self._lock.read():
            scores, slots = self._scan(queries, k)
            keys = self._keys.key_of(slots)
        return [hits(keys[q], scores[q]) for q in range(len(queries))]

    def _scan(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self._count)
        if k == 0:
            return np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)
        set_search_threads(self.search_threads)
        parts_d, parts_i = [], []
        for number, chunk in enumerate(self._chunks):
            rows = min(len(chunk), self._count - number * CHUNK_ROWS)
            if rows <= 0:
                break
            d, i = faiss.knn(queries, chunk[:rows], min(k, rows), metric=faiss.METRIC_INNER_PRODUCT)
            parts_d.append(d)
            parts_i.append(i + number * CHUNK_ROWS)
        scores, slots = np.hstack(parts_d), np.hstack(parts_i)
        if len(parts_d) > 1:
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            scores, slots = np.take_along_axis(scores, best, 1), np.take_along_axis(slots, best, 1)
        return scores, slots

    def ids(self) -> list[uuid.UUID]:
        with self._lock.read():
            return to_uuids(self._keys.key_of(np.arange(self._count)))

    def vectors(self) -> np.ndarray:
        """A copy of every vector, ``(len, dim)``, in the order of :meth:`ids`."""
        with self._lock.read():
            return np.concatenate(self._chunks or [np.empty((0, self.dim), np.float32)])[:self._count]

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        try:
            raw = as_key(key)
        except ValueError:
            return False
        with self._lock.read():
            return bool(self._keys.find(np.frombuffer(raw, dtype="<u8").reshape(1, 2))[0] >= 0)
