"""Quality gates: which embedded recordings are refused, and why (one rule for the service and the reports).

The engine refuses what carries no voice (``no_speech``, ``audio_degenerate``...); these gates
refuse what the calibrated decision cannot use reliably at the operating point. The limits are
the caller's (the service reads them from its settings); :func:`gate_refusal` names the first
gate a recording fails, in order, so the cause is named before its symptom (a quiet recording
also holds little detectable speech).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateLimits:
    """Limits for one purpose (enrollment or probe)."""

    max_clipping_ratio: float
    min_speech_level_dbfs: float
    min_snr_db: float
    min_speech_s: float


@dataclass(frozen=True)
class GateRefusal:
    """The first gate a recording fails: a stable code and the figures that explain it."""

    code: str  # audio_clipped, audio_too_quiet, audio_too_noisy, insufficient_speech
    value: float
    limit: float


def gate_refusal(*, clipping_ratio: float, speech_level_dbfs: float, snr_db: float, speech_s: float,
                 limits: GateLimits) -> GateRefusal | None:
    """The first gate these quality figures fail, or None when the recording passes them all."""
    if clipping_ratio > limits.max_clipping_ratio:
        return GateRefusal("audio_clipped", clipping_ratio, limits.max_clipping_ratio)
    if speech_level_dbfs < limits.min_speech_level_dbfs:
        return GateRefusal("audio_too_quiet", speech_level_dbfs, limits.min_speech_level_dbfs)
    if snr_db < limits.min_snr_db:
        return GateRefusal("audio_too_noisy", snr_db, limits.min_snr_db)
    if speech_s < limits.min_speech_s:
        return GateRefusal("insufficient_speech", speech_s, limits.min_speech_s)
    return None
