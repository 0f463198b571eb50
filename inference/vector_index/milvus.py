"""A search tier on Milvus (pymilvus), shared by every worker on every machine.

One collection holds ``key`` (the UUID as 32 hex characters, the primary key) and ``vector``
(192 float32, inner product on unit vectors = cosine); a partitioned collection (the service's: one
partition per tenant) also ``partition`` (a UUID as 32 hex characters), and a search of one partition
filters on it. It is a plain scalar field, not Milvus's partition key (which would let a server read
only that partition's segments): milvus-lite fails filtered searches on a partition key, so that
layout could not be tested here (docs/scaling.md has the cost measured). Milvus stores the vectors **in the
clear** (segments, write-ahead log, object storage): it is a derived, rebuildable tier, and
its storage must be encrypted at rest by its own means (see docs/scaling.md).

``uri`` is a server (``http://host:19530``) or, for tests and one-machine trials, a local
``*.db`` path served by milvus-lite inside this process. pymilvus is an optional dependency:
importing this module without it raises ``ImportError`` with the reason.
"""
from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .base import DIM, BackendUnavailable, Hit, as_key, as_keys, as_unit_vectors, check_k, to_uuids

# MindSpore's generated protobuf modules load only on protobuf's pure-Python implementation, which
# MindSpore selects when it is imported first; pymilvus imported first would load the compiled one
# and MindSpore could not be imported after it in the same process. Choose the same one here.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")

try:
    from pymilvus import DataType, MilvusClient, MilvusException
except ImportError as error:  # pragma: no cover - exercised only without pymilvus
    raise ImportError("the Milvus backend needs pymilvus (and milvus-lite for a local .db uri)") from error

# Index presets by Milvus index type: (index params, search params). HNSW and IVF_FLAT are
# approximate: measure recall on your data (benchmarks/index_scale.py --milvus-index ...).
PRESETS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "FLAT": ({}, {}),
    "HNSW": ({"M": 16, "efConstruction": 200}, {"ef": 64}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 128}),
}

_KEY = "key"
_VECTOR = "vector"
_PARTITION = "partition"
_NO_PARTITION = uuid.UUID(int=0)
_BATCH = 5_000


def _unavailable_on_error(method: Callable) -> Callable:
    """Milvus's own failures (unreachable server, refused operation) as :class:`BackendUnavailable`."""
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except MilvusException as exc:
            raise BackendUnavailable(f"Milvus: {getattr(exc, 'message', exc)}") from exc

    return wrapper


def _hex(keys: np.ndarray) -> list[str]:
    return [u.hex for u in to_uuids(keys)]


class MilvusIndex:
    """Top-k cosine search in a Milvus collection keyed by UUID.

    Parameters
    ----------
    uri : str
        ``http://host:port`` of a Milvus server, or a local ``.db`` path (milvus-lite).
    collection : str
        Collection name; created if missing, refused if it exists with another dimension.
    dim : int
        Vector size.
    token : str
        ``user:password`` or an API token, for a server with authentication.
    index_type, index_params, search_params :
        Milvus index, e.g. ``"FLAT"`` (exact), ``"HNSW"`` with ``{"M": 16, "efConstruction": 200}``
        and search ``{"ef": 64}``, ``"IVF_FLAT"`` with ``{"nlist": 1024}`` and ``{"nprobe": 32}``.
    flush_after_rows : int
        Seal (flush) the collection after an upsert at least this large, so a bulk load is
        searched from indexed segments rather than from the growing buffer.
    partitioned : bool
        Rows carry a partition (upsert's ``partitions``) and a search may be limited to one.
    """

    def __init__(self, uri: str, *, collection: str = "voiceprints", dim: int = DIM, token: str = "",
                 index_type: str = "FLAT", index_params: dict[str, Any] | None = None,
                 search_params: dict[str, Any] | None = None, flush_after_rows: int = 10_000,
                 timeout_s: float = 10.0, partitioned: bool = False) -> None:
        self.dim = dim
        self.collection = collection
        self.partitioned = partitioned
        self._index_type = index_type
        self._index_params = dict(index_params or {})
        self._search_params = {"metric_type": "IP", "params": dict(search_params or {})}
        self.flush_after_rows = flush_after_rows
        self._connect(uri, token, timeout_s)
        self._ensure_collection()

    @_unavailable_on_error
    def _connect(self, uri: str, token: str, timeout_s: float) -> None:
        self._client = (MilvusClient(uri=uri, token=token, timeout=timeout_s) if token
                        else MilvusClient(uri=uri, timeout=timeout_s))

    # --- collection -----------------------------------------------------------------------------

    @_unavailable_on_error
    def _ensure_collection(self) -> None:
        client = self._client
        if client.has_collection(self.collection):
            fields = {f["name"]: f for f in client.describe_collection(self.collection)["fields"]}
            found = int(fields.get(_VECTOR, {}).get("params", {}).get("dim", -1))
            if found != self.dim or _KEY not in fields or (_PARTITION in fields) != self.partitioned:
                raise ValueError(f"collection {self.collection!r} exists with another layout "
                                 f"(vector dim {found}, expected {self.dim}; partitioned: {_PARTITION in fields})")
            client.load_collection(self.collection)
            return
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_KEY, DataType.VARCHAR, is_primary=True, max_length=32)
        if self.partitioned:
            schema.add_field(_PARTITION, DataType.VARCHAR, max_length=32)
        schema.add_field(_VECTOR, DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        index.add_index(field_name=_VECTOR, index_type=self._index_type, metric_type="IP",
                        params=self._index_params)
        # Strong: a search sees every write acknowledged before it, as the database does.
        client.create_collection(self.collection, schema=schema, index_params=index,
                                 consistency_level="Strong")

    @_unavailable_on_error
    def flush(self) -> None:
        """Seal buffered writes into indexed segments (after a bulk load)."""
        self._client.flush(self.collection)

    def close(self) -> None:
        self._client.close()

    # --- changes ----------------------------------------------------------------------------

    @_unavailable_on_error
    def upsert(self, ids: Sequence[uuid.UUID], vectors: np.ndarray,
               partitions: Sequence[uuid.UUID] | None = None) -> None:
        keys = as_keys(ids)
        rows = as_unit_vectors(vectors, len(keys), self.dim)
        names = _hex(keys)
        if self.partitioned:
            parts = [p.hex for p in (partitions if partitions is not None else [_NO_PARTITION] * len(names))]
            if len(parts) != len(names):
                raise ValueError(f"{len(names)} keys but {len(parts)} partitions")
            records = [{_KEY: n, _PARTITION: p, _VECTOR: r} for n, p, r in zip(names, parts, rows)]
        else:
            records = [{_KEY: n, _VECTOR: r} for n, r in zip(names, rows)]
        for start in range(0, len(records), _BATCH):
            self._client.upsert(self.collection, records[start:start + _BATCH])
        if len(names) >= self.flush_after_rows:
            self.flush()

    @_unavailable_on_error
    def remove(self, ids: Iterable[uuid.UUID]) -> int:
        keys = as_keys(ids, unique=False)
        names = sorted(set(_hex(keys)))
        present = self._present(names)
        if present:
            self._client.delete(self.collection, ids=present)
        return len(present)

    @_unavailable_on_error
    def clear(self) -> None:
        self._client.drop_collection(self.collection)
        self._ensure_collection()

    # --- queries ----------------------------------------------------------------------------

    def search(self, vector: np.ndarray, k: int, partition: uuid.UUID | None = None) -> list[Hit]:
        return self.search_many(as_unit_vectors(vector, 1, self.dim), k, partition)[0]

    @_unavailable_on_error
    def search_many(self, vectors: np.ndarray, k: int, partition: uuid.UUID | None = None) -> list[list[Hit]]:
        k = check_k(k)
        queries = as_unit_vectors(vectors, None, self.dim)
        results = self._client.search(self.collection, data=list(queries), limit=k, anns_field=_VECTOR,
                                      search_params=self._search_params, output_fields=[_KEY],
                                      filter=self._filter(partition))
        return [[(uuid.UUID(hex=hit["entity"][_KEY]), float(np.clip(hit["distance"], -1.0, 1.0)))
                 for hit in result] for result in results]

    @_unavailable_on_error
    def vectors(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, np.ndarray]:
        """The stored (unit) vector of each of these keys that is present."""
        names = sorted(set(_hex(as_keys(ids, unique=False))))
        found: dict[uuid.UUID, np.ndarray] = {}
        for start in range(0, len(names), _BATCH):
            for row in self._client.get(self.collection, ids=names[start:start + _BATCH],
                                        output_fields=[_KEY, _VECTOR]):
                found[uuid.UUID(hex=row[_KEY])] = np.asarray(row[_VECTOR], dtype=np.float32)
        return found

    @_unavailable_on_error
    def _present(self, names: list[str]) -> list[str]:
        found: list[str] = []
        for start in range(0, len(names), _BATCH):
            rows = self._client.get(self.collection, ids=names[start:start + _BATCH], output_fields=[_KEY])
            found.extend(row[_KEY] for row in rows)
        return found

    @_unavailable_on_error
    def ids(self) -> list[uuid.UUID]:
        iterator = self._client.query_iterator(self.collection, batch_size=10_000, filter="",
                                               output_fields=[_KEY])
        keys: list[uuid.UUID] = []
        try:
            while batch := iterator.next():
                keys.extend(uuid.UUID(hex=row[_KEY]) for row in batch)
        finally:
            iterator.close()
        return keys

    def _filter(self, partition: uuid.UUID | None) -> str:
        if partition is None:
            return ""
        if not self.partitioned:
            raise ValueError(f"collection {self.collection!r} is not partitioned")
        return f'{_PARTITION} == "{uuid.UUID(str(partition)).hex}"'

    @_unavailable_on_error
    def size(self, partition: uuid.UUID | None = None) -> int:
        """Rows in the collection, or in one partition."""
        rows = self._client.query(self.collection, filter=self._filter(partition), output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def __len__(self) -> int:
        return self.size()

    def __contains__(self, key: object) -> bool:
        try:
            name = uuid.UUID(bytes=as_key(key)).hex
        except ValueError:
            return False
        return bool(self._present([name]))
