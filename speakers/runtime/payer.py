"""Who pays for the audio being worked on: the tenant and API key of the request or session.

The budget of audio seconds (speakers/services/audio_budget.py) charges the payer, and the inference
owner queues each forward pass under it (:mod:`.fair_queue`), so one key's long batch cannot hold
another key's short request. It travels as a context variable rather than as an argument through
every service: the HTTP request sets it once authenticated (speakers/api/auth.py) inside the scope
the request guard opens for each request (speakers/api/middleware.py), a WebSocket session sets it
after its handshake (speakers/api/streaming.py), and worker threads inherit it (asgiref copies the
context). Work with no payer (a command, the warm-up) is neither charged nor queued behind anyone.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import ApiKey

_payer: ContextVar[str | None] = ContextVar("voiceprint_payer", default=None)


def payer_of(api_key: ApiKey) -> str:
    """The payer an API key stands for: ``<tenant id>:<key prefix>`` (prefixes are unique; the tenant reads in logs)."""
    return f"{api_key.tenant_id}:{api_key.prefix}"


def current_payer() -> str | None:
    return _payer.get()


def payer_set(payer: str | None) -> None:
    """Name the payer of what runs from here on in this context (inside a :func:`paying` scope)."""
    _payer.set(payer)


@contextmanager
def paying(payer: str | None) -> Iterator[None]:
    """A scope with ``payer``; the previous payer comes back at its end (a server thread serves many requests)."""
    token = _payer.set(payer)
    try:
        yield
    finally:
        _payer.reset(token)
