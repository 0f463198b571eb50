"""The contract every 1:N search tier keeps, and the input checks they share.

Keys are the voiceprint owner's UUID (16 bytes), not an int64 that a process hands out:
a shared engine (Milvus) is written by many processes on many machines, so a key must mean
the same row everywhere without a second table that maps it. In process the keys are
stored as ``(N, 2) uint64`` arrays (see :mod:`.keys`), 16 bytes each plus a 4-byte hash
slot, instead of two dicts of ``uuid.UUID`` objects (about 258 MB per million).
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import numpy as np

DIM = 192

class BackendUnavailable(RuntimeError):
    """A search tier outside the process (Milvus) cannot be reached, or failed the operation."""


Hit = tuple[uuid.UUID, float]
"""One search result: the key and its cosine with the query, in [-1, 1]."""


@runtime_checkable
class VectorIndex(Protocol):
    """A map ``key -> unit vector`` with top-k cosine search. Thread-safe.

    Vectors are normalised on the way in; scores are raw cosines in [-1, 1], best first.
    Bad input (wrong shape, NaN or infinite values, a zero vector, a duplicate or malformed
    key, ``k < 1``) raises ``ValueError`` and changes nothing.
    """

    dim: int

    def upsert(self, ids: Sequence[uuid.UUID], vectors: np.ndarray) -> None:
        """Add or replace: afterwards each key holds exactly its row of ``vectors`` ``(N, dim)``."""

    def remove(self, ids: Iterable[uuid.UUID]) -> int:
        """Remove these keys (absent ones are ignored); returns how many were present."""

    def search(self, vector: np.ndarray, k: int) -> list[Hit]:
        """The ``min(k, len)`` nearest keys to ``vector`` ``(dim,)`` by cosine, best first."""

    def search_many(self, vectors: np.ndarray, k: int) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors`` ``(Q, dim)``, in one pass."""

    def ids(self) -> list[uuid.UUID]:
        """A snapshot of every key, in no particular order."""

    def clear(self) -> None:
        """Remove everything."""

    def __len__(self) -> int: ...

    def __contains__(self, key: object) -> bool: ...


# --- input checks -------------------------------------------------------------------------


def as_key(key: object) -> bytes:
    """The 16 bytes of one key (a ``uuid.UUID`` or 16 ``bytes``); ``ValueError`` otherwise."""
    if isinstance(key, uuid.UUID):
        return key.bytes
    if isinstance(key, (bytes, bytearray)) and len(key) == 16:
        return bytes(key)
    raise ValueError(f"a key is a uuid.UUID or 16 bytes, got {type(key).__name__}")


def as_keys(ids: Iterable[object], *, unique: bool = True) -> np.ndarray:
    """Keys as a ``(N, 2) uint64`` array (the UUID's 16 bytes, little-endian halves)."""
    raw = b"".join(as_key(key) for key in ids)
    keys = np.frombuffer(raw, dtype="<u8").reshape(-1, 2).copy()
    if unique and _has_duplicates(keys):
        raise ValueError("keys must be unique within one call")
    return keys


def _has_duplicates(keys: np.ndarray) -> bool:
    # Sorting one uint64 column is ~10x faster than np.unique(axis=0); only rows whose first
    # half repeats (none, for random UUIDs) are compared in full.
    if len(keys) < 2:
        return False
    first = np.sort(keys[:, 0])
    repeated = first[1:][first[1:] == first[:-1]]
    if not len(repeated):
        return False
    suspects = keys[np.isin(keys[:, 0], repeated)]
    return len({tuple(row) for row in suspects.tolist()}) != len(suspects)


def to_uuids(keys: np.ndarray) -> list[uuid.UUID]:
    """Inverse of :func:`as_keys`."""
    raw = np.ascontiguousarray(keys, dtype="<u8").tobytes()
    return [uuid.UUID(bytes=raw[i:i + 16]) for i in range(0, len(raw), 16)]


def as_unit_vectors(vectors: np.ndarray, count: int | None, dim: int) -> np.ndarray:
    """``(N, dim)`` float32, C-contiguous, each row scaled to unit length.

    A 1-D input is one row. ``count`` (if given) is the number of rows expected.
    """
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != dim or (count is not None and array.shape[0] != count):
        expected = f"({'N' if count is None else count}, {dim})"
        raise ValueError(f"vectors must have shape {expected}, got {np.shape(vectors)}")
    squares = np.einsum("ij,ij->i", array, array)  # NaN or inf anywhere in a row shows here
    if not np.all(np.isfinite(squares)):
        raise ValueError("vectors contain NaN, infinite or overflowing values")
    if np.any(squares < 1e-24):
        raise ValueError("a zero vector has no direction to compare")
    return np.ascontiguousarray(array / np.sqrt(squares)[:, None], dtype=np.float32)


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def hits(keys: np.ndarray, scores: np.ndarray) -> list[Hit]:
    """``[(uuid, cosine), ...]`` from parallel arrays, scores clipped to [-1, 1]."""
    return list(zip(to_uuids(keys), np.clip(scores, -1.0, 1.0).astype(float).tolist()))


# --- concurrency ---------------------------------------------------------------------------


class ReadWriteLock:
    """Many searches at once, or one writer; a waiting writer goes before new readers.

    FAISS releases the GIL while it scans, so concurrent searches in one process run on
    several cores; writes move rows, so they must not overlap a scan.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()
