"""A compact two-way map between 16-byte keys and slot numbers, in numpy.

``slot -> key`` is an ``(capacity, 2) uint64`` array; ``key -> slot`` an open-addressing hash
table of ``int32`` slot numbers (linear probing, tombstones) that compares against the first
array, so one million keys cost about 16 MB + 8 MB instead of the ~258 MB of two Python dicts
of ``uuid.UUID``. Lookups, inserts and deletes are vectorised over a batch; one key costs a
few numpy calls (tens of microseconds). Not thread-safe: the owning index locks.
"""
from __future__ import annotations

import numpy as np

_EMPTY = -1
_DELETED = -2
_MIX1 = np.uint64(0x9E3779B97F4A7C15)
_MIX2 = np.uint64(0xBF58476D1CE4E5B9)
_MAX_LOAD = 0.5  # live + tombstones, of the table's size


def _capacity_for(count: int) -> int:
    size = 1024
    while size * _MAX_LOAD < count:
        size *= 2
    return size


class KeyTable:
    """Keys ``(N, 2) uint64`` <-> slots ``0..capacity-1``; slot numbers are chosen by the caller."""

    def __init__(self, capacity: int = 0) -> None:
        # 1/8 headroom: the first adds after a bulk load of ``capacity`` keys copy nothing
        self._keys = np.zeros((max(capacity + capacity // 8, 16), 2), dtype=np.uint64)
        self._table = np.full(_capacity_for(capacity + capacity // 2), _EMPTY, dtype=np.int32)
        self._live = 0
        self._deleted = 0

    def __len__(self) -> int:
        return self._live

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._table.nbytes

    def key_of(self, slots: np.ndarray) -> np.ndarray:
        """The keys stored at ``slots`` (copies)."""
        return self._keys[slots]

    # --- lookups ----------------------------------------------------------------------------

    def _home(self, keys: np.ndarray) -> np.ndarray:
        mixed = (keys[:, 0] ^ (keys[:, 1] * _MIX1)) * _MIX2
        return (mixed >> np.uint64(32)).astype(np.int64) & (len(self._table) - 1)

    def _probe(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(positions, slots)`` of each key in the table, ``-1`` where absent."""
        count = len(keys)
        positions = np.full(count, -1, dtype=np.int64)
        slots = np.full(count, -1, dtype=np.int64)
        if not count:
            return positions, slots
        mask = len(self._table) - 1
        pending = np.arange(count)
        cursor = self._home(keys)
        while pending.size:
            entry = self._table[cursor].astype(np.int64)
            live = entry >= 0
            found = np.zeros(len(pending), dtype=bool)
            found[live] = np.all(self._keys[entry[live]] == keys[pending[live]], axis=1)
            positions[pending[found]] = cursor[found]
            slots[pending[found]] = entry[found]
            going_on = ~found & (entry != _EMPTY)
            pending = pending[going_on]
            cursor = (cursor[going_on] + 1) & mask
        return positions, slots

    def find(self, keys: np.ndarray) -> np.ndarray:
        """The slot of each key, ``-1`` where absent."""
        return self._probe(keys)[1]

    # --- changes ----------------------------------------------------------------------------

    def insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Map keys (absent, unique) to ``slots`` (free)."""
        if not len(keys):
            return
        slots = np.asarray(slots, dtype=np.int64)
        if (self._live + self._deleted + len(keys)) > _MAX_LOAD * len(self._table):
            self._rehash(self._live + len(keys))
        top = int(slots.max()) + 1
        if top > len(self._keys):
            grown = np.zeros((max(top, 2 * len(self._keys)), 2), dtype=np.uint64)
            grown[:len(self._keys)] = self._keys
            self._keys = grown
        self._keys[slots] = keys
        self._place(slots, self._home(keys))
        self._live += len(keys)

    def _place(self, slots: np.ndarray, cursor: np.ndarray) -> None:
        """Write slot numbers at the first free position from each cursor (a batch may collide)."""
        mask = len(self._table) - 1
        while slots.size:
            free = self._table[cursor] < 0
            # of several slots aiming at one free position, the first takes it; the rest retry
            taken = np.zeros(len(slots), dtype=bool)
            _, first = np.unique(cursor[free], return_index=True)
            taken[np.flatnonzero(free)[first]] = True
            reused = int(np.count_nonzero(self._table[cursor[taken]] == _DELETED))
            self._table[cursor[taken]] = slots[taken]
            self._deleted -= reused
            moving = ~free
            cursor = np.where(moving, (cursor + 1) & mask, cursor)[~taken]
            slots = slots[~taken]

    def delete(self, keys: np.ndarray) -> np.ndarray:
        """Forget keys; returns their former slots (``-1`` for absent ones)."""
        positions, slots = self._probe(keys)
        present = positions >= 0
        self._table[positions[present]] = _DELETED
        self._live -= int(np.count_nonzero(present))
        self._deleted += int(np.count_nonzero(present))
        return slots

    def move(self, key: np.ndarray, slot: int) -> None:
        """Point an existing key at another slot (and store the key there)."""
        positions, _ = self._probe(key[None, :])
        if positions[0] < 0:
            raise KeyError("moving a key that is not in the table")
        if slot >= len(self._keys):
            raise IndexError("slot beyond the key array")
        self._table[positions[0]] = slot
        self._keys[slot] = key

    def clear(self) -> None:
        self._table.fill(_EMPTY)
        self._live = self._deleted = 0

    def _rehash(self, wanted: int) -> None:
        live = np.flatnonzero(self._table >= 0)
        slots = self._table[live].astype(np.int64)
        self._table = np.full(_capacity_for(2 * wanted), _EMPTY, dtype=np.int32)
        self._deleted = 0
        if len(slots):
            self._place(slots, self._home(self._keys[slots]))
