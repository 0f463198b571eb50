"""Streaming verification: the rules of one live session, apart from the socket that carries it.

Two protocols (docs/streaming.md):

* :class:`StreamSession` (``/ws/v1/stream-verify``): raw PCM chunks of any size; a rolling score
  over the newest ``window`` of net speech each time ``hop`` of new speech has arrived, against an
  enrolled speaker's voiceprint or the first seconds of speech of the stream itself.
* :class:`RecordingsSession` (``/ws/stream-verify``, the original protocol): each binary message is
  a whole recording; the first is the reference, each later one is compared with it.

A session is plain state: it parses what arrived, applies the limits, and says which window is
due for scoring; the consumer (speakers/api/streaming.py) does the I/O and runs
:func:`stream_window_process` / :func:`recording_process` in a worker thread. Every decision is
:func:`~speakers.services.decisions.pair_decide`, the one 1:1 rule; every embedding goes through
the process's one inference owner. At most one window of a session is being scored at a time; when
speech arrives faster than it is scored, the next score covers the newest window (hops coalesce),
so a fast client cannot queue work for the inference thread.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference import EmbeddingResult, InferenceError
from inference.config import VadConfig
from inference.streaming import ENCODINGS, SpeechStream, StreamEvent, pcm_to_samples

from ..audit import Actor, audit_record
from ..exceptions import (
    ApplicationError,
    StreamFrameInvalid,
    StreamMessageInvalid,
    StreamMessageTooLarge,
    StreamSessionsExhausted,
    StreamTooLong,
    StreamTooSlow,
)
from ..models import AuditAction, Speaker, Tenant
from ..runtime import inference_owner
from ..selectors import speaker_get
from .decisions import PairDecision, Reference, pair_decide, recording_reference, speaker_reference
from .lockout import verification_lock_check, verification_outcome_record
from .recordings import Purpose, Recording, recording_embed
from .replay import replay_check, window_heard
from .timing import elapsed_ms

PROTOCOL = "voiceprint.stream.v1"
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8_000, 48_000
MAX_REFERENCE_SPEECH_S = 8.0
REFERENCE_SPEAKER, REFERENCE_FIRST_AUDIO = "speaker", "first_audio"


@dataclass(frozen=True)
class StreamLimits:
    """The settings a session runs under (``VOICEPRINT_STREAM_*``)."""

    window_s: float
    hop_s: float
    min_speech_s: float
    reference_speech_s: float
    silence_event_s: float
    max_clipping_ratio: float
    min_speech_level_dbfs: float
    max_frame_bytes: int
    max_audio_s: float
    max_session_s: float
    idle_timeout_s: float
    max_messages_per_s: int
    max_speed: float
    burst_s: float
    max_recordings: int
    max_recording_bytes: int
    min_audio_s: float = 0.0
    min_audio_interval_s: float = 10.0

    @classmethod
    def from_settings(cls) -> StreamLimits:
        return cls(
            window_s=settings.VOICEPRINT_STREAM_WINDOW_S, hop_s=settings.VOICEPRINT_STREAM_HOP_S,
            min_speech_s=settings.VOICEPRINT_STREAM_MIN_SPEECH_S,
            reference_speech_s=settings.VOICEPRINT_STREAM_REFERENCE_SPEECH_S,
            silence_event_s=settings.VOICEPRINT_STREAM_SILENCE_EVENT_S,
            max_clipping_ratio=settings.VOICEPRINT_MAX_CLIPPING_RATIO,
            min_speech_level_dbfs=settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS,
            max_frame_bytes=settings.VOICEPRINT_STREAM_MAX_FRAME_BYTES,
            max_audio_s=settings.VOICEPRINT_STREAM_MAX_AUDIO_S, max_session_s=settings.VOICEPRINT_STREAM_MAX_SESSION_S,
            idle_timeout_s=settings.VOICEPRINT_STREAM_IDLE_TIMEOUT_S,
            max_messages_per_s=settings.VOICEPRINT_STREAM_MAX_MESSAGES_PER_S,
            max_speed=settings.VOICEPRINT_STREAM_MAX_SPEED, burst_s=settings.VOICEPRINT_STREAM_BURST_S,
            max_recordings=settings.VOICEPRINT_STREAM_MAX_RECORDINGS,
            max_recording_bytes=settings.VOICEPRINT_MAX_UPLOAD_BYTES,
            min_audio_s=settings.VOICEPRINT_STREAM_MIN_AUDIO_S,
            min_audio_interval_s=settings.VOICEPRINT_STREAM_MIN_AUDIO_INTERVAL_S,
        )


# --- the start message -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamStart:
    """What the client asked for in its start message (or the defaults, when it sent audio first)."""

    speaker_id: str | None = None
    sample_rate: int = 16_000
    encoding: str = "s16le"
    asnorm: bool | None = None
    reference_speech_s: float | None = None

    @property
    def reference_kind(self) -> str:
        return REFERENCE_SPEAKER if self.speaker_id else REFERENCE_FIRST_AUDIO


_START_FIELDS = {"type", "speaker_id", "sample_rate", "encoding", "asnorm", "reference_speech_s"}


def stream_start_parse(message: Any, limits: StreamLimits) -> StreamStart:
    """Validate a start message (a decoded JSON object). Raises StreamMessageInvalid naming the field."""
    if not isinstance(message, dict):
        raise StreamMessageInvalid("The first text message must be a JSON object.")
    if message.get("type", "start") != "start":
        raise StreamMessageInvalid('The first text message must be {"type": "start", ...}.', field="type")
    unknown = sorted(set(message) - _START_FIELDS)
    if unknown:
        raise StreamMessageInvalid(f"Unknown field(s) in the start message: {', '.join(unknown)}.", fields=unknown)
    speaker_id = message.get("speaker_id")
    if speaker_id is not None:
        try:
            speaker_id = str(uuid.UUID(str(speaker_id)))
        except ValueError:
            raise StreamMessageInvalid("speaker_id must be a speaker's UUID.", field="speaker_id") from None
    rate = message.get("sample_rate", 16_000)
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise StreamMessageInvalid(f"sample_rate must be an integer from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE}.",
                                   field="sample_rate")
    encoding = message.get("encoding", "s16le")
    if encoding not in ENCODINGS:
        raise StreamMessageInvalid(f"encoding must be one of {', '.join(ENCODINGS)}.", field="encoding")
    asnorm = message.get("asnorm")
    if asnorm is not None and not isinstance(asnorm, bool):
        raise StreamMessageInvalid("asnorm must be true, false or null.", field="asnorm")
    reference_speech_s = message.get("reference_speech_s")
    if reference_speech_s is not None:
        if speaker_id is not None:
            raise StreamMessageInvalid("reference_speech_s is for sessions without speaker_id.",
                                       field="reference_speech_s")
        low = max(limits.min_speech_s, 1.0)
        if isinstance(reference_speech_s, bool) or not isinstance(reference_speech_s, (int, float)) or \
                not low <= reference_speech_s <= MAX_REFERENCE_SPEECH_S:
            raise StreamMessageInvalid(f"reference_speech_s must be a number from {low:g} to {MAX_REFERENCE_SPEECH_S:g}.",
                                       field="reference_speech_s")
        reference_speech_s = float(reference_speech_s)
    return StreamStart(speaker_id=speaker_id, sample_rate=rate, encoding=encoding, asnorm=asnorm,
                       reference_speech_s=reference_speech_s)


class AudioRate:
    """The least audio a session must bring: ``min_audio_s`` in every ``min_audio_interval_s`` (0: no minimum).

    An open session holds a slot (per key and per process); a client that sends a sample now and
    then keeps the idle timer happy without using it. Intervals follow one another from the
    session's start; an interval that ends while the server is working for the session (loading
    the speaker, embedding a recording, reading slowly for back-pressure) is not held against the
    client: a new one begins.
    """

    def __init__(self, limits: StreamLimits, *, now: float) -> None:
        self.min_audio_s, self.interval_s = limits.min_audio_s, limits.min_audio_interval_s
        self._started, self._audio_at_start = now, 0.0

    def check(self, *, now: float, audio_s: float, busy: bool) -> None:
        """``audio_s``: the session's audio so far. Raises StreamTooSlow when an interval ended with too little."""
        if self.min_audio_s <= 0 or now - self._started < self.interval_s:
            return
        brought = audio_s - self._audio_at_start
        if not busy and brought + 1e-9 < self.min_audio_s:
            raise StreamTooSlow(f"A session must bring at least {self.min_audio_s:g} s of audio every "
                                f"{self.interval_s:g} s; {brought:.3g} s arrived.", min_audio_s=self.min_audio_s,
                                interval_s=self.interval_s, audio_s=round(brought, 4))
        self._started, self._audio_at_start = now, audio_s


def message_delay(*, messages: int, elapsed_s: float, limits: StreamLimits) -> float:
    """Seconds to wait before reading the next message: at most ``max_messages_per_s`` on average since the
    session opened, with one second's worth as burst. A flood of tiny frames is read this slowly (the client's
    sends block: TCP back-pressure), so it costs the event loop a bounded share whatever the client does."""
    return max(0.0, messages / limits.max_messages_per_s - 1.0 - max(0.0, elapsed_s))


# --- one PCM session ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """Audio due for the network: to become the reference, or to be scored against it."""

    seq: int
    purpose: str  # "reference" | "score"
    samples: np.ndarray
    sample_rate: int
    speech_s: float          # net speech of the stream when the window was taken
    window_speech_s: float   # net speech inside the window
    audio_s: float           # stream time at which the window was taken
    level_dbfs: float
    taken_at: float          # time.monotonic()


class StreamSession:
    """One live PCM stream: framing, speech, windows due, limits, and the messages it answers.

    Not thread-safe: the consumer calls it from its event loop only (the worker thread gets a
    :class:`Window`, never the session).
    """

    # Whether scores need a reference (verification); the live identification scores against the gallery.
    needs_reference = True

    def __init__(self, *, start: StreamStart, limits: StreamLimits, reference: Reference | None = None,
                 now: float | None = None) -> None:
        self.start = start
        self.limits = limits
        self.reference = reference
        self.started_at = time.monotonic() if now is None else now
        self.reference_speech_s = start.reference_speech_s or limits.reference_speech_s
        # Until the reference is taken, keep its speech and a window's more (a message may bring 2 s at once).
        keep = limits.window_s + (0.0 if reference is not None or not self.needs_reference
                                  else self.reference_speech_s + 2.0)
        self.stream = SpeechStream(start.sample_rate, VadConfig(), window_speech_s=limits.window_s, keep_speech_s=keep,
                                   silence_event_s=limits.silence_event_s,
                                   max_clipping_ratio=limits.max_clipping_ratio)
        self._width = ENCODINGS[start.encoding][1]
        self._window_frames_taken_at = -1  # speech frames of the stream when the last window was taken
        self._reference_taken = reference is not None or not self.needs_reference
        self.seq = 0
        self.scores: list[PairDecision] = []
        self.ended = False

    # -- what the client sees first ---------------------------------------------------------

    def ready_message(self, *, speaker: Speaker | None = None) -> dict[str, Any]:
        return {
            "type": "ready", "protocol": PROTOCOL, "reference": self.start.reference_kind,
            "speaker_id": self.start.speaker_id,
            "display_name": speaker.display_name if speaker is not None else None,
            "sample_rate": self.start.sample_rate, "encoding": self.start.encoding,
            "window_s": self.limits.window_s, "hop_s": self.limits.hop_s, "min_speech_s": self.limits.min_speech_s,
            "reference_speech_s": None if self.reference is not None else self.reference_speech_s,
            "limits": {"max_frame_bytes": self.limits.max_frame_bytes, "max_audio_s": self.limits.max_audio_s,
                       "max_session_s": self.limits.max_session_s, "idle_timeout_s": self.limits.idle_timeout_s,
                       "max_messages_per_s": self.limits.max_messages_per_s, "max_speed": self.limits.max_speed,
                       "min_audio_s": self.limits.min_audio_s,
                       "min_audio_interval_s": self.limits.min_audio_interval_s},
        }

    # -- input --------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """A binary message of PCM: check it, find its speech; returns the event messages it caused."""
        if self.ended:
            raise StreamMessageInvalid("Audio after the end message.")
        if len(data) > self.limits.max_frame_bytes:
            raise StreamMessageTooLarge(f"A binary message may hold at most {self.limits.max_frame_bytes} bytes.",
                                        max_bytes=self.limits.max_frame_bytes, bytes=len(data))
        if data[:4] in (b"RIFF", b"fLaC", b"OggS") and self.stream.frames_in == 0:
            raise StreamFrameInvalid("This route takes raw PCM, not an audio file: send the samples without a "
                                     "header, or send whole recordings to /ws/stream-verify.")
        if len(data) % self._width:
            raise StreamFrameInvalid(f"A binary message must hold whole {self.start.encoding} samples "
                                     f"({self._width} bytes each); got {len(data)} bytes.",
                                     bytes=len(data), sample_bytes=self._width)
        try:
            samples = pcm_to_samples(data, self.start.encoding)
        except InferenceError as exc:
            raise StreamFrameInvalid(exc.message, **exc.detail) from exc
        if self.stream.audio_s + samples.size / self.start.sample_rate > self.limits.max_audio_s:
            raise StreamTooLong(f"A session holds at most {self.limits.max_audio_s:g} s of audio.",
                                max_audio_s=self.limits.max_audio_s)
        return [self._event(e) for e in self.stream.feed(samples)]

    def read_delay(self, now: float) -> float:
        """Seconds to wait before reading more: audio may run ahead of real time x max_speed by burst_s only."""
        allowed = self.limits.burst_s + self.limits.max_speed * (now - self.started_at)
        return max(0.0, (self.stream.audio_s - allowed) / self.limits.max_speed)

    def end(self) -> list[dict[str, Any]]:
        """The client's end message: decide the last frames; the final window (if any) is then due."""
        if self.ended:
            raise StreamMessageInvalid("The session has already ended.")
        self.ended = True
        return [self._event(e) for e in self.stream.flush()]

    # -- windows ------------------------------------------------------------------------------

    def due(self) -> Window | None:
        """The window to embed now, if one is due (the newest; skipped hops are not made up).

        The reference (first-audio sessions) once ``reference_speech_s`` of speech has arrived;
        then a score once the window holds ``min_speech_s``, and again after each ``hop_s`` of new
        speech; after the end message, one last score for any speech not scored yet.
        """
        stream, limits = self.stream, self.limits
        frames = stream.speech_frames
        if not self._reference_taken:
            if stream.speech_s + 1e-9 < self.reference_speech_s:
                return None
            self._reference_taken = True
            window = self._take("reference", stream.window(self.reference_speech_s, oldest=True))
            stream.drop_oldest(self.reference_speech_s)  # scores never include the reference's own speech
            return window
        if self.reference is None and self.needs_reference:
            return None  # the reference is being embedded
        if stream.window_speech_s + 1e-9 < limits.min_speech_s or frames == self._window_frames_taken_at:
            return None
        new_speech_s = (frames - max(self._window_frames_taken_at, 0)) * stream.frame_s
        first = self._window_frames_taken_at < 0
        if not (first or self.ended or new_speech_s + 1e-9 >= limits.hop_s):
            return None
        return self._take("score", stream.window())

    def _take(self, purpose: str, samples: np.ndarray) -> Window:
        self.seq += 1
        if purpose == "score":
            self._window_frames_taken_at = self.stream.speech_frames
        return Window(seq=self.seq, purpose=purpose, samples=samples, sample_rate=self.start.sample_rate,
                      speech_s=round(self.stream.speech_s, 3), window_speech_s=round(self.stream.window_speech_s, 3),
                      audio_s=round(self.stream.audio_s, 3), level_dbfs=round(self.stream.window_level_dbfs(), 1),
                      taken_at=time.monotonic())

    # -- results ------------------------------------------------------------------------------

    def reference_set(self, window: Window, result: EmbeddingResult) -> list[dict[str, Any]]:
        self.reference = recording_reference(result)
        return [{"type": "reference", "seq": window.seq, "speech_s": round(float(result.speech_s), 3),
                 "audio_s": window.audio_s}]

    def reference_refused(self, window: Window, error: InferenceError | ApplicationError) -> list[dict[str, Any]]:
        """The reference window could not be embedded: try again with the next speech."""
        self._reference_taken = False
        return [self._refusal(window, error)]

    def scored(self, window: Window, decision: PairDecision) -> list[dict[str, Any]]:
        self.scores.append(decision)
        fields = dataclasses.asdict(decision)
        fields.pop("policy_source", None)
        message = {"type": "score", "seq": window.seq, "similarity": decision.raw_score, **fields,
                   "speech_s": window.speech_s, "window_speech_s": window.window_speech_s,
                   "audio_s": window.audio_s, "speech_level_dbfs": window.level_dbfs,
                   "latency_ms": round((time.monotonic() - window.taken_at) * 1000.0, 1)}
        out = [message]
        if window.level_dbfs < self.limits.min_speech_level_dbfs:
            out.append({"type": "event", "event": "too_quiet", "at_s": window.audio_s, "value": window.level_dbfs,
                        "min_speech_level_dbfs": self.limits.min_speech_level_dbfs})
        return out

    def score_refused(self, window: Window, error: InferenceError | ApplicationError) -> list[dict[str, Any]]:
        return [self._refusal(window, error)]

    def summary_message(self) -> dict[str, Any]:
        last = self.scores[-1] if self.scores else None
        return {"type": "summary", "scores": len(self.scores),
                "accepted_scores": sum(d.accepted for d in self.scores),
                "final": None if last is None else {"similarity": last.raw_score, **{
                    k: v for k, v in dataclasses.asdict(last).items() if k != "policy_source"}},
                "speech_s": round(self.stream.speech_s, 3), "audio_s": round(self.stream.audio_s, 3),
                "duration_s": round(time.monotonic() - self.started_at, 3)}

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _event(event: StreamEvent) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "event", "event": event.kind, "at_s": event.at_s}
        if event.value is not None:
            message["value"] = event.value
        return message

    @staticmethod
    def _refusal(window: Window, error: InferenceError | ApplicationError) -> dict[str, Any]:
        return {"type": "event", "event": "window_refused", "seq": window.seq, "purpose": window.purpose,
                "at_s": window.audio_s, "error": {"code": error.code, "message": error.message,
                                                  "detail": dict(error.detail)}}


def stream_window_process(*, session_reference: Reference | None, window: Window, asnorm: bool | None,
                          tenant: Tenant | None, replay_of: Speaker | None = None, actor: Actor | None = None,
                          embed: Callable[[np.ndarray, int], EmbeddingResult] | None = None,
                          ) -> EmbeddingResult | PairDecision:
    """In a worker thread: embed ``window`` on the inference owner, and decide it against the reference.

    Returns the embedding for a reference window, the decision for a score window. Raises the
    engine's audio errors (a window with no usable speech) and ApplicationError.
    """
    if replay_of is not None and actor is not None and window.purpose != "reference":
        # the window's audio against the speaker's stored recordings: a replayed one ends the session
        replay_check(heard=window_heard(window.samples, window.sample_rate), speakers=[replay_of], actor=actor,
                     during="stream_verify")
    result = (embed or inference_owner.embed_waveform)(window.samples, window.sample_rate)
    if window.purpose == "reference":
        return result
    assert session_reference is not None
    return pair_decide(reference=session_reference, probe=result, asnorm=asnorm, tenant=tenant)


# --- references and outcomes (database) ---------------------------------------------------------------

def stream_speaker_reference(*, tenant: Tenant, speaker_id: str, actor: Actor) -> tuple[Speaker, Reference]:
    """The tenant's enrolled speaker a session verifies against (404 / 409 / 429 as verify answers them: the
    actor's key or address locked out of the speaker is refused, another caller is not)."""
    speaker = speaker_get(tenant=tenant, speaker_id=speaker_id)
    verification_lock_check(speaker_id=speaker.id, actor=actor)
    return speaker, speaker_reference(speaker)


def stream_outcome_record(*, session: StreamSession, actor: Actor, speaker: Speaker | None) -> None:
    """At the end of a session that scored: audit it (verify or compare) and count it for the lockout.

    A session is one verification: its last score decides (as the last thing a caller said
    would), so a session of rejected scores counts once towards the lock of the actor's key and address.
    """
    if not session.scores:
        return
    last = session.scores[-1]
    detail = {"stream": True, "scores": len(session.scores), "accepted_scores": sum(d.accepted for d in session.scores),
              "speech_s": round(session.stream.speech_s, 3), "raw_score": last.raw_score,
              "score_normalisation": last.score_normalisation, "policy": last.policy_source}
    decision = "accepted" if last.accepted else "rejected"
    if speaker is None:
        audit_record(actor=actor, action=AuditAction.COMPARE, decision=decision, score=last.score,
                     threshold=last.threshold, detail=detail)
        return
    with transaction.atomic():
        Speaker.objects.filter(pk=speaker.pk).update(last_verified_at=timezone.now())
        audit_record(actor=actor, action=AuditAction.VERIFY, speaker_id=speaker.id, decision=decision,
                     score=last.score, threshold=last.threshold, detail=detail)
    verification_outcome_record(speaker_id=speaker.id, accepted=last.accepted, actor=actor)


# --- the original protocol: whole recordings -----------------------------------------------------------

class RecordingsSession:
    """``/ws/stream-verify``: the first recording is the reference, each later one is compared with it."""

    def __init__(self, *, limits: StreamLimits) -> None:
        self.limits = limits
        self.reference: Reference | None = None
        self.recordings = 0
        self.audio_s = 0.0  # of the recordings the engine used (the audio rate counts these)

    def check(self, data: bytes) -> Recording:
        if len(data) > self.limits.max_recording_bytes:
            raise StreamMessageTooLarge(f"A recording may be at most {self.limits.max_recording_bytes} bytes.",
                                        max_bytes=self.limits.max_recording_bytes, bytes=len(data))
        if self.recordings >= self.limits.max_recordings:
            raise StreamTooLong(f"A session takes at most {self.limits.max_recordings} recordings.",
                                max_recordings=self.limits.max_recordings)
        self.recordings += 1
        return Recording(filename=f"message-{self.recordings}", data=data)


def recording_process(*, session: RecordingsSession, recording: Recording, actor: Actor) -> dict[str, Any]:
    """In a worker thread: set the reference, or compare with it (raw cosine, as the original). The answer."""
    started = time.perf_counter()
    result = recording_embed(recording=recording, purpose=Purpose.PROBE)
    session.audio_s += float(result.duration_s)
    if session.reference is None:
        session.reference = recording_reference(result)
        return {"type": "reference", "status": "reference_set", "speech_s": round(float(result.speech_s), 3),
                "duration_s": round(float(result.duration_s), 3), "processing_time_ms": elapsed_ms(started)}
    decision = pair_decide(reference=session.reference, probe=result, asnorm=False, tenant=actor.tenant)
    audit_record(actor=actor, action=AuditAction.COMPARE, decision="accepted" if decision.accepted else "rejected",
                 score=decision.score, threshold=decision.threshold,
                 detail={"stream": True, "raw_score": decision.raw_score,
                         "score_normalisation": decision.score_normalisation, "policy": decision.policy_source})
    fields = {k: v for k, v in dataclasses.asdict(decision).items() if k != "policy_source"}
    return {"type": "result", "similarity": decision.raw_score, "verification_result": decision.accepted, **fields,
            "speech_s": round(float(result.speech_s), 3), "processing_time_ms": elapsed_ms(started)}


# --- how many sessions are open (per worker process) ---------------------------------------------------

class SessionSlots:
    """Open sessions of this process, in all and per API key; a forked child starts with none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, int] = {}

    def acquire(self, key: str) -> None:
        with self._lock:
            total = sum(self._by_key.values())
            if total >= settings.VOICEPRINT_STREAM_MAX_SESSIONS:
                raise StreamSessionsExhausted("This server holds as many streaming sessions as it can; try again "
                                              "later.", max_sessions=settings.VOICEPRINT_STREAM_MAX_SESSIONS)
            if self._by_key.get(key, 0) >= settings.VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY:
                raise StreamSessionsExhausted(
                    "This API key has as many streaming sessions open as it may; close one first.",
                    max_sessions_per_key=settings.VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY)
            self._by_key[key] = self._by_key.get(key, 0) + 1

    def release(self, key: str) -> None:
        with self._lock:
            left = self._by_key.get(key, 0) - 1
            if left > 0:
                self._by_key[key] = left
            else:
                self._by_key.pop(key, None)

    def open_sessions(self) -> int:
        with self._lock:
            return sum(self._by_key.values())


session_slots = SessionSlots()
