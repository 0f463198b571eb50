"""Who is calling: the client's address, as the throttles and the audit trail see it.

``X-Forwarded-For`` is believed only when the peer is one of ``VOICEPRINT_TRUSTED_PROXIES``
(addresses or networks): then the header is read from the right, each hop being the address the
proxy before it saw, past every trusted proxy; the first hop that is not a trusted proxy is the
client. Hops a client wrote itself sit to the left of that one and are never reached. Without
trusted proxies the header is ignored (and so is uvicorn's own reading of it, see
voiceprint_project/asgi_server.py).
"""
from __future__ import annotations

import functools
import ipaddress

from django.conf import settings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def client_address(request) -> str | None:
    """The client's IP address, or None when it is not a valid address."""
    meta = getattr(request, "META", {})
    return address_of(meta.get("REMOTE_ADDR", ""), meta.get("HTTP_X_FORWARDED_FOR", ""))


def address_of(peer: str, forwarded: str) -> str | None:
    """The client's address from the peer's address and the ``X-Forwarded-For`` header (any protocol)."""
    address = _ip(peer)
    networks = _networks(tuple(settings.VOICEPRINT_TRUSTED_PROXIES))
    if address is None or not networks or not forwarded or not _trusted(address, networks):
        return str(address) if address is not None else None
    for hop in reversed(forwarded.split(",")):
        seen = _ip(hop)
        if seen is None:  # not an address: written by someone, not by a proxy; the last believed hop stands
            break
        address = seen
        if not _trusted(seen, networks):
            break
    return str(address)


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _trusted(address: IpAddress, networks) -> bool:
    return any(address in network for network in networks)


def _ip(text: str) -> IpAddress | None:
    """An address as a peer or a proxy writes it (``1.2.3.4``, ``1.2.3.4:5678``, ``[2001:db8::1]:443``)."""
    text = (text or "").strip()
    if text.startswith("[") and "]" in text:
        text = text[1:text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
    return address
