"""Request throttles (DRF, on Django's cache: process memory by default, Redis when configured).

* ``ClientRateThrottle``: every request, per client address (``VOICEPRINT_RATE_PER_CLIENT``).
* ``ApiKeyRateThrottle``: per API key (``VOICEPRINT_RATE_PER_KEY``).
* Failed authentications per client address and key tried (``VOICEPRINT_RATE_AUTH_FAILURES``):
  counted by :func:`auth_failure_record`; past the limit :func:`auth_failures_check` refuses the
  next attempts with that key (the right secret included) from that address while the last window
  holds the limit (no stretch of a window's length ever holds more: :data:`AUTH_SLICES`), so guessing
  a key gets nowhere, and other keys from the same address are not affected.

A refusal is DRF's ``Throttled``: 429 ``throttled`` with ``Retry-After``.
"""
from __future__ import annotations

import re
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.exceptions import Throttled
from rest_framework.throttling import SimpleRateThrottle

from ..models import ApiKey
from .clients import client_address


class ClientRateThrottle(SimpleRateThrottle):
    scope = "client"

    def get_rate(self) -> str:
        return settings.VOICEPRINT_RATE_PER_CLIENT

    def get_cache_key(self, request, view) -> str | None:
        address = client_address(request)
        return self.cache_format % {"scope": self.scope, "ident": address} if address else None


class ApiKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def get_rate(self) -> str:
        return settings.VOICEPRINT_RATE_PER_KEY

    def get_cache_key(self, request, view) -> str | None:
        api_key = getattr(request, "auth", None)
        if not isinstance(api_key, ApiKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": api_key.prefix}


# --- failed authentications ----------------------------------------------------------------------
# Counted per client address and per key tried, so that failures throttle the one who fails: a
# guesser of one key's secret is throttled on that key from that address, while every other key from
# the same address (an office behind one NAT) is still served. Buckets, per address:
#   key:<prefix>  a key of a known prefix with a wrong secret, or revoked;
#   unknown       keys of no known prefix, or not shaped like one of ours (random guesses);
#   missing       requests without a key.

MISSING = "missing"
UNKNOWN = "unknown"
_PREFIX = re.compile(r"[0-9A-Za-z_-]{1,16}")


def key_bucket(prefix: str | None) -> str | None:
    """The bucket of a presented key's prefix; None when the prefix cannot be one of ours."""
    return f"key:{prefix}" if prefix and _PREFIX.fullmatch(prefix) else None


# Failed authentications are counted in slices of a window (a tenth of a minute for "30/min"), and a check
# sums the current slice and the AUTH_SLICES before it: every stretch of one window's length lies within
# those, so no stretch of a window's length ever holds more failures than the limit (fixed windows of the
# clock let a guesser make twice the limit across a window's boundary). A throttled key waits until the
# oldest slices holding its failures have passed: at most a window and one slice after its last failure.
AUTH_SLICES = 10


def _auth_window() -> tuple[int, int]:
    count, seconds = SimpleRateThrottle.parse_rate(None, settings.VOICEPRINT_RATE_AUTH_FAILURES)
    return count, seconds


def _now() -> float:
    return time.time()


def _auth_slices(address: str | None, bucket: str) -> tuple[list[str], float, float]:
    """The cache keys of the slices a check sums (oldest first, the current slice last), the slices' width and
    the time the oldest of them stops being summed."""
    _, seconds = _auth_window()
    width = seconds / AUTH_SLICES
    current = int(_now() // width)
    # an address that cannot be read (a Unix socket peer) is one client, not a way around the limit
    stem = f"throttle_auth_failures_{address or '-'}_{bucket}_{seconds}"
    return [f"{stem}_{k}" for k in range(current - AUTH_SLICES, current + 1)], width, (current + 1) * width


def auth_failure_record(address: str | None, bucket: str) -> None:
    """Count one failed authentication from ``address`` in ``bucket`` (in the current slice)."""
    names, width, _ = _auth_slices(address, bucket)
    timeout = max(1, int(width * (AUTH_SLICES + 1)) + 1)  # kept while any check sums it
    if cache.add(names[-1], 1, timeout):
        return
    try:
        cache.incr(names[-1])
    except ValueError:  # expired between add and incr
        cache.add(names[-1], 1, timeout)


def auth_failures_check(address: str | None, bucket: str) -> None:
    """Refuse while ``address`` has failed ``limit`` times in ``bucket`` within the last window (429 throttled)."""
    names, width, first_passes = _auth_slices(address, bucket)
    limit, _ = _auth_window()
    found = cache.get_many(names)
    counts = [int(found.get(name) or 0) for name in names]
    total = sum(counts)
    if total < limit:
        return
    # the wait: until enough of the oldest slices have passed for the sum to fall below the limit
    passes = first_passes
    for count in counts:
        total -= count
        if total < limit:
            break
        passes += width
    raise Throttled(wait=max(1, int(passes - _now()) + 1),
                    detail="Too many failed authentications from this address; try again later.")
