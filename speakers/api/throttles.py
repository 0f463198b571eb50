"""Request throttles (DRF, on Django's cache: process memory by default, Redis when configured).

* ``ClientRateThrottle``: every request, per client address (``VOICEPRINT_RATE_PER_CLIENT``).
* ``ApiKeyRateThrottle``: per API key (``VOICEPRINT_RATE_PER_KEY``).
* Failed authentications per client address (``VOICEPRINT_RATE_AUTH_FAILURES``): counted by
  :func:`auth_failure_record`; past the limit :func:`auth_failures_check` refuses the client's
  next attempts, right keys included, until the window ends (guessing keys gets nowhere).

A refusal is DRF's ``Throttled``: 429 ``throttled`` with ``Retry-After``.
"""
from __future__ import annotations

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


def _auth_window() -> tuple[int, int]:
    count, seconds = SimpleRateThrottle.parse_rate(None, settings.VOICEPRINT_RATE_AUTH_FAILURES)
    return count, seconds


def _auth_key(address: str | None) -> tuple[str, int] | None:
    if address is None:
        return None
    _, seconds = _auth_window()
    window = int(time.time() // seconds)
    return f"throttle_auth_failures_{address}_{window}", (window + 1) * seconds


def auth_failure_record(request) -> None:
    """Count one failed authentication of this client in the current window."""
    auth_failure_record_for(client_address(request))


def auth_failure_record_for(address: str | None) -> None:
    """Count one failed authentication from ``address`` (a WebSocket handshake has no DRF request)."""
    key = _auth_key(address)
    if key is None:
        return
    name, ends = key
    timeout = max(1, int(ends - time.time()) + 1)
    if cache.add(name, 1, timeout):
        return
    try:
        cache.incr(name)
    except ValueError:  # expired between add and incr
        cache.add(name, 1, timeout)


def auth_failures_check(request) -> None:
    """Refuse a client that failed to authenticate too often in this window (429 throttled)."""
    auth_failures_check_for(client_address(request))


def auth_failures_check_for(address: str | None) -> None:
    """Refuse ``address`` while it has failed to authenticate too often in this window (429 throttled)."""
    key = _auth_key(address)
    if key is None:
        return
    name, ends = key
    limit, _ = _auth_window()
    if (cache.get(name) or 0) >= limit:
        raise Throttled(wait=max(1, int(ends - time.time()) + 1),
                        detail="Too many failed authentications from this address.")
