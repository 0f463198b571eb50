"""Who is calling: the client's address, as the throttles and the audit trail see it.

Behind ``VOICEPRINT_TRUSTED_PROXIES`` proxies (each appending to ``X-Forwarded-For``), the
address is the one the outermost trusted proxy saw; otherwise the peer's own address. A header
a client sets itself is never trusted beyond that count.
"""
from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(request) -> str | None:
    """The client's IP address, or None when it is not a valid address."""
    meta = getattr(request, "META", {})
    return address_of(meta.get("REMOTE_ADDR", ""), meta.get("HTTP_X_FORWARDED_FOR", ""))


def address_of(peer: str, forwarded: str) -> str | None:
    """The client's address from the peer's address and the ``X-Forwarded-For`` header (any protocol)."""
    address = peer
    proxies = settings.VOICEPRINT_TRUSTED_PROXIES
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-min(proxies, len(hops))]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
