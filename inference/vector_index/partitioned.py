"""Partitions of one search space: a search sees only the keys of its own partition.

The service partitions voiceprints by tenant: a probe is compared only with its own tenant's
voiceprints, never ranked against another's. In process this is one :class:`VectorIndex` per
partition (:class:`PartitionedIndex`), each sized for its own rows; a shared Milvus collection keeps
the partition as a field of each row instead (``MilvusIndex(partitioned=True)``). Keys stay unique
across partitions (a voiceprint belongs to one owner), so removing a key needs no partition.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .base import DIM, Hit, VectorIndex, as_unit_vectors


class PartitionedIndex:
    """One in-process index per partition (``open_index(backend, size_hint=...)`` each). Thread-safe.

    Parameters
    ----------
    backend : str
        The in-process backend of every partition (``auto``, ``flat``, ``ivf``).
    size_hints : mapping
        Expected rows per partition (a rebuild's counts): sizes each partition's index.
    options :
        Passed to :func:`~inference.vector_index.open_index` for each partition.
    """

    def __init__(self, backend: str = "auto", *, size_hints: Mapping[uuid.UUID, int] | None = None,
                 dim: int = DIM, **options: Any) -> None:
        self.dim = dim
        self._backend = backend
        self._hints = dict(size_hints or {})
        self._options = options
        self._lock = threading.Lock()
        self._parts: dict[uuid.UUID, VectorIndex] = {}

    def _part(self, partition: uuid.UUID) -> VectorIndex:
        with self._lock:
            index = self._parts.get(partition)
            if index is None:
                from . import open_index

                index = open_index(self._backend, size_hint=self._hints.get(partition, 0), dim=self.dim,
                                   **self._options)
                self._parts[partition] = index
            return index

    def _snapshot(self) -> list[VectorIndex]:
        with self._lock:
            return list(self._parts.values())

    def upsert(self, ids: Sequence[uuid.UUID], vectors: np.ndarray, partitions: Sequence[uuid.UUID]) -> None:
        """Add or replace each key in its partition (``partitions[i]`` is the partition of ``ids[i]``)."""
        if len(partitions) != len(ids):
            raise ValueError(f"{len(ids)} keys but {len(partitions)} partitions")
        rows = as_unit_vectors(vectors, len(ids), self.dim)
        groups: dict[uuid.UUID, list[int]] = {}
        for i, partition in enumerate(partitions):
            groups.setdefault(partition, []).append(i)
        for partition, positions in groups.items():
            self._part(partition).upsert([ids[i] for i in positions], rows[positions])

    def remove(self, ids: Iterable[uuid.UUID]) -> int:
        keys = list(ids)
        return sum(index.remove(keys) for index in self._snapshot())

    def search(self, vector: np.ndarray, k: int, partition: uuid.UUID) -> list[Hit]:
        """The nearest keys of ``partition`` only (none for a partition that holds nothing)."""
        with self._lock:
            index = self._parts.get(partition)
        return index.search(vector, k) if index is not None and len(index) else []

    def size(self, partition: uuid.UUID) -> int:
        with self._lock:
            index = self._parts.get(partition)
        return 0 if index is None else len(index)

    def partitions(self) -> dict[uuid.UUID, int]:
        """Rows per partition."""
        with self._lock:
            return {partition: len(index) for partition, index in self._parts.items()}

    def ids(self) -> list[uuid.UUID]:
        return [key for index in self._snapshot() for key in index.ids()]

    def clear(self) -> None:
        with self._lock:
            self._parts.clear()

    @property
    def structure(self) -> str:
        """The class of the partitions' indexes (``FlatIndex``, ``IVFIndex``), or "" while empty."""
        kinds = sorted({type(index).__name__ for index in self._snapshot()})
        return "+".join(kinds)

    def __len__(self) -> int:
        return sum(len(index) for index in self._snapshot())

    def __contains__(self, key: object) -> bool:
        return any(key in index for index in self._snapshot())
