"""Request throttles (DRF, on Django's cache: process memory by default, Redis when configured).

* ``ClientRateThrottle``: every request, per client address (``VOICEPRINT_RATE_PER_CLIENT``).
* ``ApiKeyRateThrottle``: per API key (``VOICEPRINT_RATE_PER_KEY``).
* Failed authentications per client address and key tried (``VOICEPRINT_RATE_AUTH_FAILURES``):
  counted by :func:`auth_failure_record`; past the limit :func:`auth_failures_check` refuses the
  next attempts with that key (the right secret included) from that address until the window ends,
  so guessing a key gets nowhere, and other keys from the same address are not affected.

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


def _auth_window() -> tuple[int, int]:
    count, seconds = SimpleRateThrottle.parse_rate(None, settings.VOICEPRINT_RATE_AUTH_FAILURES)
    return count, seconds


def _auth_key(address: str | None, bucket: str) -> tuple[str, float]:
    _, seconds = _auth_window()
    window = int(time.time() // seconds)
    # an address that cannot be read (a Unix socket peer) is one client, not a way around the limit
    return f"throttle_auth_failures_{address or '-'}_{bucket}_{window}", (window + 1) * seconds


def auth_failure_record(address: str | None, bucket: str) -> None:
    """Count one failed authentication from ``address`` in ``bucket`` in the current window."""
    name, ends = _auth_key(address, bucket)
    timeout = max(1, int(ends - time.time()) + 1)
    if cache.add(name, 1, timeout):
        return
    try:
        cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.add(name, 1, timeout)


def auth_failures_check(address: str | None, bucket: str) -> None:
    """Refuse while ``address`` has failed too often in ``bucket`` in this window (429 throttled)."""
    name, ends = _auth_key(address, bucket)
    limit, _ = _auth_window()
    if (cache.get(name) or 0) >= limit:
        raise Throttled(wait=max(1, int(ends - time.time()) + 1),
                        detail="Too many failed authentications from this address; try again later.")
