"""Python client for the voiceprint speaker enrollment service: HTTP routes, streaming, errors, results.

    from voiceprint_client import VoiceprintClient, RecordingRefused

    vp = VoiceprintClient()            # VOICEPRINT_URL (default http://127.0.0.1:8000), VOICEPRINT_API_KEY
    alice = vp.ensure_speaker("alice")
    vp.enroll(alice.id, "a1.wav", "a2.wav", "a3.wav")
    result = vp.verify(alice.id, "probe.wav")
    print(result.accepted, result.score, result.threshold)

The ``voiceprint`` command (``voiceprint --help``) does the same from a shell.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import models
from ._http import Audio, Retry
from .client import AsyncVoiceprintClient, VoiceprintClient
from .codes import *  # noqa: F403 - one exception class per server error code
from .codes import ERRORS
from .errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    RecordingRefused,
    ServerError,
    ServiceUnavailable,
    StreamClosed,
    UnexpectedResponse,
    VoiceprintConnectionError,
    VoiceprintError,
)
from .models import *  # noqa: F403 - the result dataclasses
from .streaming import AsyncPcmStream, AsyncRecordingsSession, PcmStream, RecordingsSession, StreamResult

try:
    __version__ = version("voiceprint-client")
except PackageNotFoundError:  # pragma: no cover - imported from a source tree
    __version__ = "0+unknown"

__all__ = [
    "Audio", "AsyncVoiceprintClient", "VoiceprintClient", "Retry", "ERRORS", "models",
    "AuthenticationFailed", "Conflict", "InvalidRequest", "NotFound", "PayloadTooLarge", "PermissionDenied",
    "RateLimited", "RecordingRefused", "ServerError", "ServiceUnavailable", "StreamClosed", "UnexpectedResponse",
    "VoiceprintConnectionError", "VoiceprintError",
    "AsyncPcmStream", "AsyncRecordingsSession", "PcmStream", "RecordingsSession", "StreamResult",
]
