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
    address = meta.get("REMOTE_ADDR", "")
    proxies = settings.VOICEPRINT_TRUSTED_PROXIES
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-min(proxies, len(hops))]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
