"""The budget of audio seconds per minute of each API key (VOICEPRINT_AUDIO_SECONDS_PER_MINUTE).

The request rate (speakers/api/throttles.py) counts requests, and one request may carry ten
recordings of a minute: what costs the service is the audio it decodes and runs through the
network. So every decoded recording, batch files one by one, whole recordings on the WebSocket and
streamed PCM alike, is charged to the key that sent it (speakers/runtime/payer.py), in seconds of
audio, over a sliding minute (two one-minute counters on Django's cache: process memory, or Redis
shared by every worker). A key that has used its budget is refused (429 ``audio_budget_exceeded``,
Retry-After: when enough of it has slid out of the minute) before its next recording is decoded; the recording that crosses the limit is
still served. Work without a payer (commands, the admin's tools) is not charged; 0 turns it off.
"""
from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from ..exceptions import AudioBudgetExceeded
from ..runtime.payer import current_payer

WINDOW_S = 60
_MS = 1000  # counted in milliseconds: the cache counts in integers


def _name(payer: str, window: int) -> str:
    return f"audio_budget_{payer}_{window}"


def _usage(payer: str, now: float) -> tuple[float, float, float, float]:
    """``(used, this window's, last window's, fraction of this window gone)``, seconds of audio.

    A sliding minute: this window's seconds plus the last window's share that still falls in the
    minute before ``now`` (a window's end is no free refill, as it would be with one counter per minute).
    """
    window = int(now // WINDOW_S)
    counts = cache.get_many([_name(payer, window), _name(payer, window - 1)])
    current = counts.get(_name(payer, window), 0) / _MS
    previous = counts.get(_name(payer, window - 1), 0) / _MS
    gone = (now % WINDOW_S) / WINDOW_S
    return current + previous * (1.0 - gone), current, previous, gone


def audio_budget_used(*, payer: str) -> float:
    """Seconds of audio charged to ``payer`` in the last minute."""
    return _usage(payer, time.time())[0]


def audio_budget_check(*, payer: str | None = None) -> None:
    """Refuse (429 audio_budget_exceeded) while the payer (default: the current one) has used its budget."""
    payer = payer or current_payer()
    budget = settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE
    if payer is None or budget <= 0:
        return
    used, current, previous, gone = _usage(payer, time.time())
    if used < budget:
        return
    if current >= budget:  # after this window, once its share of the sliding minute drops below the budget
        wait = (1.0 - gone) + (1.0 - budget / current)
    else:  # in this window, once the last window's share does
        wait = (1.0 - (budget - current) / previous) - gone
    wait = max(0.1, wait * WINDOW_S)
    raise AudioBudgetExceeded(
        f"This API key has sent {used:.0f} s of audio in the last minute; its budget is {budget} s per minute. "
        f"Try again in {wait:.0f} s.",
        audio_seconds_per_minute=budget, used_s=round(used, 1), retry_after_s=round(wait, 1))


def audio_budget_charge(*, seconds: float, payer: str | None = None) -> None:
    """Charge ``seconds`` of decoded audio to the payer (default: the current one) in this window."""
    payer = payer or current_payer()
    if payer is None or settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE <= 0 or seconds <= 0:
        return
    now = time.time()
    window = int(now // WINDOW_S)
    name = _name(payer, window)
    amount = int(round(seconds * _MS))
    timeout = max(1, int((window + 2) * WINDOW_S - now) + 1)  # it counts in the next window's minute too
    if cache.add(name, amount, timeout):
        return
    try:
        cache.incr(name, amount)
    except ValueError:  # expired between add and incr
        cache.add(name, amount, timeout)


def audio_budget_spend(*, seconds: float) -> None:
    """Audio that arrived already decoded (streamed PCM) pays like a decoded recording: refused once the budget
    is spent, else charged."""
    audio_budget_check()
    audio_budget_charge(seconds=seconds)
