"""WebSocket consumers (Django Channels) of streaming verification and live identification: the handshake, I/O and timers only.

Thin like the HTTP views: authenticate the handshake (the ``X-API-Key`` header, or from a browser
the ``voiceprint.key.<KEY>`` subprotocol beside ``voiceprint.v1``: a key never travels in the URL),
parse messages, hand them to speakers/services/streaming.py, send its answers. Database work and
embeddings run in worker threads (the embedding itself on the process's one inference thread), so
the event loop only frames messages and finds speech.

A refusal is one message ``{"type": "error", "error": {"code", "message", "detail"}}`` (the API's
error shape and codes) followed by a close whose code is 4000 + the HTTP status of that error code
(4401 invalid_api_key, 4403 insufficient_scope, 4408 idle_timeout or audio_too_slow, 4413 message_too_large, ...): see
docs/streaming.md. The connection is accepted first, so that browsers see the code too.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import DatabaseSyncToAsync
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from inference import InferenceError, ModelError

from ..audit import Actor, audit_refusal
from ..exceptions import (
    AudioClipped,
    AudioTooNoisy,
    AudioTooQuiet,
    InsufficientSpeech,
    StreamIdle,
    StreamMessageInvalid,
    StreamTooLong,
    StreamTooSlow,
)
from ..models import ApiKey, ApiKeyScope
from ..runtime.payer import payer_of, payer_set
from ..services.audio_budget import audio_budget_spend
from ..services.live_identify import (
    IdentifySession,
    stream_identify_record,
    stream_identify_start,
    stream_identify_window,
)
from ..services.streaming import (
    AudioRate,
    RecordingsSession,
    StreamLimits,
    StreamSession,
    StreamStart,
    message_delay,
    recording_process,
    session_slots,
    stream_outcome_record,
    stream_speaker_reference,
    stream_start_parse,
    stream_window_process,
)
from .auth import api_key_for_handshake
from .clients import address_of
from .errors import describe_error
from .parsers import json_depth

logger = logging.getLogger(__name__)

SUBPROTOCOL = "voiceprint.v1"
KEY_SUBPROTOCOL = "voiceprint.key."
# A client that does not read its messages for this long is dropped (the ASGI server's pings end it too).
SEND_TIMEOUT_S = 10.0
# A recording refused on the original protocol is answered with an error message; the session goes on.
RECORDING_REFUSALS = (AudioClipped, AudioTooNoisy, AudioTooQuiet, InsufficientSpeech)
# Streamed audio is charged to the key's budget in steps of at least this many seconds (one cache write each).
STREAM_CHARGE_S = 1.0


def in_worker(fn, /, **kwargs):
    """Run ``fn(**kwargs)`` in a worker thread with its own database connection (closed when stale)."""
    return DatabaseSyncToAsync(fn, thread_sensitive=False)(**kwargs)


def handshake_headers(scope: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]},{text}" if key in headers else text
    return headers


def handshake_key(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The API key of the handshake: the X-API-Key header, else a ``voiceprint.key.<KEY>`` subprotocol."""
    if headers.get("x-api-key"):
        return headers["x-api-key"]
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL):]
    return None


def is_window_refusal(exc: BaseException) -> bool:
    """Audio the engine could not use (no speech in this window, ...): reported, the session goes on."""
    return isinstance(exc, InferenceError) and not isinstance(exc, ModelError)


class _Consumer(AsyncWebsocketConsumer):
    """Authentication, limits that hold for every route, timers, the one error shape and coded closes."""

    required_scopes = {ApiKeyScope.VERIFY}
    closed = False
    busy = False  # the server is working for the client, or reading slowly: the idle timer waits
    reading_slowly = False  # back-pressure: not work done for the client (the audio rate does not wait)
    api_key: ApiKey | None = None
    slot: str | None = None
    address: str | None = None
    _watchdog: asyncio.Task | None = None

    async def dispatch(self, message):
        # Channels closes stale database connections before every message; this consumer never touches the
        # database on the event loop (worker threads do, with their own connections), so a flood of audio
        # frames costs no thread hop each.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message) -> None:
        self.limits = StreamLimits.from_settings()
        self.opened_at = self.last_message = time.monotonic()
        self.messages = 0
        self.audio_rate = AudioRate(self.limits, now=self.opened_at)
        self._send_lock = asyncio.Lock()
        headers = handshake_headers(self.scope)
        client = self.scope.get("client") or ("", 0)
        self.address = address_of(client[0] or "", headers.get("x-forwarded-for", ""))
        offered = self.scope.get("subprotocols") or []
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        presented = handshake_key(self.scope, headers)
        try:
            self.api_key = await in_worker(api_key_for_handshake, plain=presented, address=self.address,
                                           scopes=self.required_scopes)
            session_slots.acquire(self.api_key.prefix)
            self.slot = self.api_key.prefix
        except Exception as exc:  # noqa: BLE001 - every refusal is answered in the one error shape
            await self.refuse(exc, presented_key=presented)
            return
        self.actor = Actor.from_api_key(self.api_key, client_address=self.address)
        # this connection's task (and the worker threads it starts) decode and embed for this key
        payer_set(payer_of(self.api_key))
        self._watchdog = asyncio.create_task(self._watch())
        await self.opened()

    async def websocket_receive(self, message) -> None:
        if self.closed or self.api_key is None:
            return
        self.last_message = time.monotonic()
        try:
            self.messages += 1
            if message.get("bytes") is not None:
                await self.on_bytes(message["bytes"])
            else:
                await self.on_text(message.get("text") or "")
        except Exception as exc:  # noqa: BLE001
            await self.refuse(exc)
            return
        await self.read_slowly(message_delay(messages=self.messages, elapsed_s=time.monotonic() - self.opened_at,
                                             limits=self.limits))

    async def websocket_disconnect(self, message) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        try:
            await self.closing()
        finally:
            if self.slot is not None:
                session_slots.release(self.slot)
                self.slot = None
        raise StopConsumer()

    # -- for the routes ---------------------------------------------------------------------

    async def opened(self) -> None:
        """The handshake is authenticated."""

    async def closing(self) -> None:
        """The connection is gone (either side closed it)."""

    async def on_bytes(self, data: bytes) -> None:
        raise StreamMessageInvalid("This route takes no binary messages.")

    def audio_received_s(self) -> float:
        """Seconds of audio the session has brought so far (what the minimum audio rate counts)."""
        return 0.0

    async def on_text(self, text: str) -> None:
        raise StreamMessageInvalid("This route takes no text messages.")

    # -- shared -------------------------------------------------------------------------------

    @staticmethod
    def parse_json(text: str) -> Any:
        """A text message as JSON; nesting deeper than ``VOICEPRINT_MAX_JSON_DEPTH`` is refused unparsed (Python's
        parser recurses once per level: 100,000 ``[`` used to end the session with 4500)."""
        limit = settings.VOICEPRINT_MAX_JSON_DEPTH
        try:
            if json_depth(text.encode("utf-8", "surrogatepass")) > limit:
                raise StreamMessageInvalid(f"Text messages may be nested at most {limit} levels deep.",
                                           max_json_depth=limit)
            return json.loads(text)
        except (ValueError, RecursionError):
            raise StreamMessageInvalid("Text messages must be JSON.") from None

    async def read_slowly(self, delay: float) -> None:
        """Back-pressure: read the next message ``delay`` seconds later (the idle timer waits too)."""
        if delay > 0 and not self.closed:
            self.busy = self.reading_slowly = True
            await asyncio.sleep(delay)
            self.busy = self.reading_slowly = False
            self.last_message = time.monotonic()

    async def send_json(self, content: dict[str, Any], close: bool = False) -> None:
        """Send one JSON message; a client that stops reading is dropped after SEND_TIMEOUT_S."""
        if self.closed and not close:
            return
        try:
            async with self._send_lock:
                await asyncio.wait_for(self.send(text_data=json.dumps(content)), SEND_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - gone or not reading: nothing more can be said to it
            self.closed = True

    async def finish(self) -> None:
        """Close normally (1000)."""
        if not self.closed:
            self.closed = True
            await self.close(code=1000)

    async def refuse(self, exc: BaseException, *, presented_key: str | None = None) -> None:
        """Answer ``exc`` in the one error shape and close with 4000 + its HTTP status."""
        if self.closed:
            return
        status, code, message, detail = describe_error(exc)
        self.closed = True
        if 400 <= status < 500 and code not in {"idle_timeout"}:
            # Recorded before the client hears of it (as an HTTP refusal is audited before its response),
            # so nothing is still writing once the close arrives. Shielded: a client that leaves now
            # cancels the task running here, not the audit.
            await asyncio.shield(in_worker(self._audit_refusal, status=status, code=code, detail=detail,
                                           presented_key=presented_key))
        await self.send_json({"type": "error", "error": {"code": code, "message": message, "detail": detail}},
                             close=True)
        try:
            await self.close(code=4000 + status, reason=code[:120])
        except Exception:  # noqa: BLE001 - already gone
            pass

    def _audit_refusal(self, *, status: int, code: str, detail: dict[str, Any], presented_key: str | None) -> None:
        actor = Actor.from_api_key(self.api_key, client_address=self.address) if self.api_key else \
            Actor.anonymous(client_address=self.address)
        audit_refusal(actor=actor, code=code, status=status, recorded_status=4000 + status, method="WEBSOCKET",
                      path=self.scope.get("path", ""), detail=detail, presented_key=presented_key)

    async def _watch(self) -> None:
        """Idle timeout, the longest session and the least audio, checked a few times per second."""
        tick = min(0.25, self.limits.idle_timeout_s / 4, self.limits.min_audio_interval_s / 4)
        while not self.closed:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - self.opened_at > self.limits.max_session_s:
                await self.refuse(StreamTooLong(f"A session lasts at most {self.limits.max_session_s:g} s.",
                                                max_session_s=self.limits.max_session_s))
            elif not self.busy and now - self.last_message > self.limits.idle_timeout_s:
                await self.refuse(StreamIdle(idle_timeout_s=self.limits.idle_timeout_s))
            else:
                try:
                    self.audio_rate.check(now=now, audio_s=self.audio_received_s(),
                                          busy=self.busy and not self.reading_slowly)
                except StreamTooSlow as exc:
                    await self.refuse(exc)


class StreamVerifyConsumer(_Consumer):
    """``/ws/v1/stream-verify``: raw PCM in, rolling scores out (docs/streaming.md)."""

    async def opened(self) -> None:
        self.session: StreamSession | None = None
        self.speaker = None
        self.scoring: asyncio.Task | None = None
        self.recorded = False
        self.paid_s = 0.0

    async def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if self.session is None:
            await self._start(stream_start_parse(message, self.limits))
        elif isinstance(message, dict) and message == {"type": "end"}:
            await self._end()
        else:
            raise StreamMessageInvalid('After the start message, the only text message is {"type": "end"}.')

    async def on_bytes(self, data: bytes) -> None:
        if self.session is None:
            await self._start(StreamStart())  # audio first: 16 kHz s16le, the first speech is the reference
        session = self.session
        for event in session.feed(data):
            await self.send_json(event)
        await self._pay(session.stream.audio_s)
        self._kick()
        # faster than max_speed x real time: read more slowly (back-pressure, not an error)
        await self.read_slowly(session.read_delay(time.monotonic()))

    async def _pay(self, audio_s: float) -> None:
        """Charge the streamed audio to the key's budget, a second or more at a time (refused once it is spent)."""
        unpaid = audio_s - self.paid_s
        if unpaid >= STREAM_CHARGE_S:
            self.paid_s = audio_s
            await in_worker(audio_budget_spend, seconds=unpaid)

    async def _start(self, start: StreamStart) -> None:
        reference = None
        if start.speaker_id is not None:
            self.busy = True
            self.speaker, reference = await in_worker(stream_speaker_reference, tenant=self.api_key.tenant,
                                                      speaker_id=start.speaker_id, actor=self.actor)
            self.busy = False
        self.session = StreamSession(start=start, limits=self.limits, reference=reference)
        await self.send_json(self.session.ready_message(speaker=self.speaker))

    def audio_received_s(self) -> float:
        session = getattr(self, "session", None)
        return session.stream.audio_s if session is not None else 0.0

    def _kick(self) -> None:
        """Start scoring the window that is due, unless one is being scored (hops coalesce)."""
        if self.closed or self.session is None or (self.scoring is not None and not self.scoring.done()):
            return
        window = self.session.due()
        if window is not None:
            self.scoring = asyncio.create_task(self._process(window))

    async def _process(self, window) -> None:
        session = self.session
        try:
            outcome = await in_worker(stream_window_process, session_reference=session.reference, window=window,
                                      asnorm=session.start.asnorm, tenant=self.api_key.tenant,
                                      replay_of=self.speaker, actor=self.actor)
        except Exception as exc:  # noqa: BLE001
            if not is_window_refusal(exc):
                await self.refuse(exc)
                return
            messages = (session.reference_refused if window.purpose == "reference" else session.score_refused)(
                window, exc)
        else:
            messages = (session.reference_set if window.purpose == "reference" else session.scored)(window, outcome)
        for message in messages:
            await self.send_json(message)
        self._kick()

    async def _end(self) -> None:
        self.busy = True
        for event in self.session.end():
            await self.send_json(event)
        while not self.closed:
            task = self.scoring
            if task is not None and not task.done():
                await asyncio.wait([task])
                continue
            self._kick()
            if self.scoring is task:
                break
        await self._record()
        await self.send_json(self.session.summary_message())
        await self.finish()

    async def closing(self) -> None:
        if getattr(self, "scoring", None) is not None:
            self.scoring.cancel()
        await self._record()

    async def _record(self) -> None:
        if getattr(self, "session", None) is None or self.recorded:
            return
        self.recorded = True
        await in_worker(stream_outcome_record, session=self.session, actor=self.actor, speaker=self.speaker)


class StreamIdentifyConsumer(StreamVerifyConsumer):
    """``/ws/v1/stream-identify``: raw PCM in, who is speaking now (among the tenant's enrolled) out.

    stream-verify's protocol, limits and close codes; no reference: each window is identified.
    """

    required_scopes = {ApiKeyScope.IDENTIFY}

    async def on_text(self, text: str) -> None:
        message = self.parse_json(text)
        if self.session is None:
            await self._start(stream_identify_start(message, self.limits))
        elif isinstance(message, dict) and message == {"type": "end"}:
            await self._end()
        else:
            raise StreamMessageInvalid('After the start message, the only text message is {"type": "end"}.')

    async def _start(self, start: StreamStart) -> None:
        self.session = IdentifySession(start=start, limits=self.limits)
        await self.send_json(self.session.ready_message())

    async def _process(self, window) -> None:
        session = self.session
        try:
            answer = await in_worker(stream_identify_window, window=window, actor=self.actor,
                                     asnorm=session.start.asnorm)
        except Exception as exc:  # noqa: BLE001
            if not is_window_refusal(exc):
                await self.refuse(exc)
                return
            messages = session.score_refused(window, exc)
        else:
            messages = session.identified_window(window, answer)
        for message in messages:
            await self.send_json(message)
        self._kick()

    async def _record(self) -> None:
        if getattr(self, "session", None) is None or self.recorded:
            return
        self.recorded = True
        await in_worker(stream_identify_record, session=self.session, actor=self.actor)


class RecordingsVerifyConsumer(_Consumer):
    """``/ws/stream-verify``, the original protocol: whole recordings; the first is the reference."""

    async def opened(self) -> None:
        self.session = RecordingsSession(limits=self.limits)

    def audio_received_s(self) -> float:
        session = getattr(self, "session", None)
        return session.audio_s if session is not None else 0.0

    async def on_bytes(self, data: bytes) -> None:
        recording = self.session.check(data)
        self.busy = True
        try:
            answer = await in_worker(recording_process, session=self.session, recording=recording, actor=self.actor)
        except Exception as exc:  # noqa: BLE001
            if not (is_window_refusal(exc) or isinstance(exc, RECORDING_REFUSALS)):
                raise
            _, code, message, detail = describe_error(exc)
            answer = {"type": "error", "error": {"code": code, "message": message, "detail": detail},
                      "reference_set": self.session.reference is not None}
        finally:
            self.busy = False
            self.last_message = time.monotonic()
        await self.send_json(answer)

    async def on_text(self, text: str) -> None:
        try:
            message = self.parse_json(text)
        except StreamMessageInvalid:
            message = None
        if message != {"type": "reset"}:
            raise StreamMessageInvalid('Send recordings as binary messages; the only text message is {"type": "reset"}.')
        self.session.reference = None
        await self.send_json({"type": "reset"})


class NotFoundConsumer(_Consumer):
    """Any other WebSocket path: 4404 not_found (after the handshake, so that browsers see the code)."""

    async def websocket_connect(self, message) -> None:
        self._send_lock = asyncio.Lock()
        await self.accept()
        from django.http import Http404

        await self.refuse(Http404())
