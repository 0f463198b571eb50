"""Give a worker's freed heap back to the system after a large request.

A worker that decoded a minute of audio (the upload, its float copies, features and the network's
buffers: hundreds of MB) frees it all, but glibc keeps the freed pages in its arenas: the red team
saw a worker's resident memory go from 733 to 1,217 MB after large uploads and stay there.
``malloc_trim(0)`` hands the free pages of every arena back; it costs a few milliseconds and is
called only after a request whose body was over ``VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES``
(benchmarks/worker_memory.py measures both ways). On a C library without it, nothing happens.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

logger = logging.getLogger(__name__)


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        return None


def heap_trim() -> bool:
    """Return the free heap pages to the system; True when some were released (False also without glibc)."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


def declared_bytes(content_length: str | None) -> int:
    try:
        return max(int(content_length or 0), 0)
    except ValueError:
        return 0


def trim_after(content_length: str | None, above: int) -> bool:
    """After a request: trim when its declared body was over ``above`` bytes (0: never)."""
    if above <= 0 or declared_bytes(content_length) <= above:
        return False
    released = heap_trim()
    logger.debug("heap trimmed after a %s-byte request (released: %s)", content_length, released)
    return released
