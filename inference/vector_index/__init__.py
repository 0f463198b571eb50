"""1:N search tiers behind one interface (:class:`VectorIndex`), keyed by the voiceprint owner's UUID.

* :class:`FlatIndex` - exact, in process; O(1) add, update and delete (the default);
* :class:`IVFIndex` - approximate (FAISS IVF-Flat), in process, for large N;
* ``MilvusIndex`` (``inference.vector_index.milvus``) - a shared Milvus collection for many
  workers on many machines; needs pymilvus, so it is imported only when asked for;
* :class:`PartitionedIndex` - one in-process index per partition (the service's tenants).

Every tier is derived state, rebuilt from the database; none of them knows a request or a row.
:func:`open_index` picks one by name, and ``"auto"`` picks by the expected size.
"""
from __future__ import annotations

from typing import Any

from .base import DIM, Hit, VectorIndex
from .flat import FlatIndex, set_search_threads
from .ivf import IVFIndex, default_nlist
from .partitioned import PartitionedIndex

# Below this many vectors exact search is fast enough to keep (notes/scaling.md: exact top-5
# p50 on one thread, machine shared), above it the IVF index answers in a few ms at
# recall@1 >= 0.99 on clustered vectors.
APPROXIMATE_FROM = 300_000

BACKENDS = ("auto", "flat", "ivf", "milvus")


def open_index(backend: str = "auto", *, size_hint: int = 0, dim: int = DIM, **options: Any) -> VectorIndex:
    """A new, empty index.

    Parameters
    ----------
    backend : {"auto", "flat", "ivf", "milvus"}
        ``"auto"``: flat below :data:`APPROXIMATE_FROM` expected vectors, IVF from there on.
    size_hint : int
        The number of vectors about to be loaded (the rebuild's row count): reserves room for
        the keys, decides ``"auto"``, and sizes the IVF's cells (``sqrt(size_hint)``), which
        it learns from its first upsert: that batch must hold at least 39 rows per cell
        (a 50,000-row batch is enough up to 1.6M).
    options :
        Passed to the backend's constructor (``search_threads``, ``nprobe``, ``uri``...).
    """
    if backend == "auto":
        backend = "ivf" if size_hint >= APPROXIMATE_FROM else "flat"
    if backend == "flat":
        return FlatIndex(dim, capacity=size_hint, **options)
    if backend == "ivf":
        if size_hint:  # cells for the size to come, so the first (streamed) batch need not hold it all
            options.setdefault("nlist", default_nlist(size_hint))
        return IVFIndex(dim, capacity=size_hint, **options)
    if backend == "milvus":
        from .milvus import MilvusIndex

        return MilvusIndex(dim=dim, **options)
    raise ValueError(f"unknown index backend {backend!r}; expected one of {', '.join(BACKENDS)}")


__all__ = ["APPROXIMATE_FROM", "BACKENDS", "DIM", "FlatIndex", "Hit", "IVFIndex", "PartitionedIndex", "VectorIndex",
           "open_index", "set_search_threads"]
