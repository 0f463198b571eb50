"""Streaming verification over WebSocket, both protocols of the server (docs/streaming.md).

- :class:`PcmStream` / :class:`AsyncPcmStream`: ``/ws/v1/stream-verify``, raw PCM as it is spoken; the
  server answers ``ready``, then ``reference`` (first-audio sessions), ``score`` every hop of new speech,
  ``event`` (speech, silence, clipping, too_quiet, window_refused) and, after :meth:`PcmStream.end`,
  the ``summary``.
- :class:`RecordingsSession` / :class:`AsyncRecordingsSession`: ``/ws/stream-verify``, whole recordings;
  the first is the reference, each later one is decided against it.

A refusal (``{"type": "error", ...}``, then a close with 4000 + the HTTP status) raises the exception
class of its code, as HTTP errors do; a close without one raises :class:`~voiceprint_client.errors.StreamClosed`.
The key travels in the ``X-API-Key`` handshake header, never in the URL.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from . import models
from ._http import Audio, audio_part
from .errors import StreamClosed, VoiceprintConnectionError, VoiceprintError, error_from_json

PCM_MESSAGES: dict[str, type[models.Model]] = {
    "ready": models.StreamReady, "reference": models.StreamReference, "score": models.StreamScore,
    "event": models.StreamEvent, "summary": models.StreamSummary,
}
RECORDING_MESSAGES: dict[str, type[models.Model]] = {
    "reference": models.RecordingReference, "result": models.RecordingResult, "reset": models.StreamMessage,
}
DEFAULT_MAX_FRAME_BYTES = 65_536
BYTES_PER_SAMPLE = {"s16le": 2, "f32le": 4}


@dataclass(frozen=True)
class StreamOptions:
    url: str
    api_key: str | None
    timeout: float

    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key} if self.api_key else {}


def websocket_url(base_url: str, path: str) -> str:
    """``http://host:8000`` + ``/ws/...`` -> ``ws://host:8000/ws/...`` (https -> wss)."""
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://"):].rstrip("/") + path
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://"):].rstrip("/") + path
    return base_url.rstrip("/") + path


def parse_message(text: str | bytes, table: dict[str, type[models.Model]]) -> models.Model:
    """One server message as its dataclass; an error message raises its exception."""
    data = json.loads(text)
    if data.get("type") == "error":
        exc = error_from_json(data.get("error") or {})
        # the original protocol goes on after a refused recording: it says whether a reference is set
        exc.fatal = "reference_set" not in data  # type: ignore[attr-defined]
        if "reference_set" in data:
            exc.detail.setdefault("reference_set", data["reference_set"])
        raise exc
    return table.get(str(data.get("type")), models.StreamMessage).from_json(data)


def _closed(exc: ConnectionClosed) -> VoiceprintError:
    code = exc.rcvd.code if exc.rcvd is not None else 1006
    reason = exc.rcvd.reason if exc.rcvd is not None else ""
    return StreamClosed(f"the server closed the stream ({code}{': ' + reason if reason else ''})",
                        detail={"close_code": code, "reason": reason})


def _unreachable(url: str, exc: Exception) -> VoiceprintConnectionError:
    return VoiceprintConnectionError(f"cannot open {url}: {exc}", detail={"url": url})


def _connect(options: StreamOptions, **extra: Any) -> ClientConnection:
    """The open connection. Entered as a context manager (websockets 17 deprecates using ``connect()``'s result
    directly); the stream's ``close()`` is what leaving it would do."""
    try:
        return connect(options.url, additional_headers=options.headers(), open_timeout=options.timeout,
                       **extra).__enter__()
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise _unreachable(options.url, exc) from exc


def _start_message(*, speaker_id: str | None, sample_rate: int, encoding: str, reference_speech_s: float | None,
                   asnorm: bool | None) -> str:
    if encoding not in BYTES_PER_SAMPLE:
        raise ValueError(f"encoding must be one of {', '.join(BYTES_PER_SAMPLE)}")
    start: dict[str, Any] = {"type": "start", "sample_rate": int(sample_rate), "encoding": encoding}
    for name, value in (("speaker_id", speaker_id), ("reference_speech_s", reference_speech_s), ("asnorm", asnorm)):
        if value is not None:
            start[name] = str(value) if name == "speaker_id" else value
    return json.dumps(start)


def _frames(pcm: bytes, frame_bytes: int) -> Iterator[bytes]:
    for start in range(0, len(pcm), frame_bytes):
        yield pcm[start:start + frame_bytes]


@dataclass
class StreamResult:
    """A whole PCM session: every message in order, and the summary."""

    ready: models.StreamReady
    messages: list[models.Model] = field(default_factory=list)
    summary: models.StreamSummary | None = None

    @property
    def scores(self) -> list[models.StreamScore]:
        return [m for m in self.messages if isinstance(m, models.StreamScore)]

    @property
    def events(self) -> list[models.StreamEvent]:
        return [m for m in self.messages if isinstance(m, models.StreamEvent)]


# --- /ws/v1/stream-verify, blocking --------------------------------------------------------------------------

class PcmStream:
    """An open ``/ws/v1/stream-verify`` session: :meth:`send` PCM, read messages, :meth:`end` for the summary.

        with client.stream_verify(speaker_id) as stream:
            for chunk in microphone_chunks():          # bytes of 16-bit little-endian mono samples
                stream.send(chunk)
                for message in stream.poll():          # what arrived meanwhile (scores, events)
                    print(message)
            summary = stream.end()
    """

    def __init__(self, connection: ClientConnection, ready: models.StreamReady, timeout: float) -> None:
        self._ws = connection
        self.ready = ready
        self.result = StreamResult(ready=ready, messages=[ready])
        self.timeout = timeout
        self._frame_bytes = int((ready.limits or {}).get("max_frame_bytes") or DEFAULT_MAX_FRAME_BYTES)
        self._frame_bytes -= self._frame_bytes % BYTES_PER_SAMPLE.get(ready.encoding, 4)

    @classmethod
    def open(cls, options: StreamOptions, **start: Any) -> PcmStream:
        message = _start_message(**start)
        connection = _connect(options)
        try:
            connection.send(message)
            ready = cls._read(connection, options.timeout)
        except BaseException:
            connection.close()
            raise
        if not isinstance(ready, models.StreamReady):
            connection.close()
            raise StreamClosed(f"the server answered {ready.raw!r} instead of ready")
        return cls(connection, ready, options.timeout)

    @staticmethod
    def _read(connection: ClientConnection, timeout: float | None) -> models.Model:
        try:
            return parse_message(connection.recv(timeout=timeout), PCM_MESSAGES)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    def send(self, pcm: bytes | bytearray | memoryview) -> None:
        """Send samples (whole samples, any amount: larger buffers are split into the server's frame size)."""
        try:
            for frame in _frames(bytes(pcm), self._frame_bytes):
                self._ws.send(frame)
        except ConnectionClosed:
            self._raise_pending()

    def _raise_pending(self) -> None:
        """The connection closed while sending: raise the server's reason (its error message, else the close)."""
        while True:
            try:
                self._keep(self._read(self._ws, 1.0))
            except TimeoutError:
                raise StreamClosed("the server closed the stream") from None

    def _keep(self, message: models.Model) -> models.Model:
        self.result.messages.append(message)
        if isinstance(message, models.StreamSummary):
            self.result.summary = message
        return message

    def recv(self, timeout: float | None = None) -> models.Model:
        """The next message (waits up to ``timeout`` s, None: forever; TimeoutError when none came)."""
        return self._keep(self._read(self._ws, timeout))

    def poll(self) -> list[models.Model]:
        """Every message that has arrived, without waiting."""
        arrived = []
        while True:
            try:
                arrived.append(self.recv(timeout=0))
            except TimeoutError:
                return arrived

    def end(self, timeout: float | None = None) -> models.StreamSummary:
        """Say the audio is over; the server scores what is left and sends the summary (then closes)."""
        try:
            self._ws.send(json.dumps({"type": "end"}))
        except ConnectionClosed:
            self._raise_pending()
        while self.result.summary is None:
            self.recv(timeout=timeout if timeout is not None else self.timeout)
        self.close()
        return self.result.summary

    def __iter__(self) -> Iterator[models.Model]:
        """Messages as they arrive, until the summary."""
        while self.result.summary is None:
            yield self.recv()

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> PcmStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- /ws/stream-verify, blocking ---------------------------------------------------------------------------

class RecordingsSession:
    """An open ``/ws/stream-verify`` session: the first recording sent is the reference.

        with client.recordings_session() as session:
            session.send("enrolled.wav")            # RecordingReference
            result = session.send("caller.wav")     # RecordingResult: accepted, score, threshold
    """

    def __init__(self, connection: ClientConnection, timeout: float) -> None:
        self._ws = connection
        self.timeout = timeout

    @classmethod
    def open(cls, options: StreamOptions) -> RecordingsSession:
        return cls(_connect(options, max_size=None), options.timeout)

    def _exchange(self, payload: str | bytes) -> models.Model:
        try:
            self._ws.send(payload)
            return parse_message(self._ws.recv(timeout=self.timeout), RECORDING_MESSAGES)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    def send(self, audio: Audio) -> models.RecordingReference | models.RecordingResult:
        """The reference (first, or after :meth:`reset`) or a recording to decide; a refused one raises its error
        (the session goes on: ``exc.fatal`` is False)."""
        _, (_, data, _) = audio_part("audio", audio)
        return self._exchange(data)  # type: ignore[return-value]

    def reset(self) -> None:
        """Forget the reference: the next recording is the new one."""
        self._exchange(json.dumps({"type": "reset"}))

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> RecordingsSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the same for asyncio ------------------------------------------------------------------------------------

class AsyncPcmStream:
    """:class:`PcmStream` for asyncio (``await stream.send(...)``, ``async for message in stream``)."""

    def __init__(self, connection: AsyncConnection, ready: models.StreamReady, timeout: float) -> None:
        self._ws = connection
        self.ready = ready
        self.result = StreamResult(ready=ready, messages=[ready])
        self.timeout = timeout
        self._frame_bytes = int((ready.limits or {}).get("max_frame_bytes") or DEFAULT_MAX_FRAME_BYTES)
        self._frame_bytes -= self._frame_bytes % BYTES_PER_SAMPLE.get(ready.encoding, 4)

    @classmethod
    async def open(cls, options: StreamOptions, **start: Any) -> AsyncPcmStream:
        message = _start_message(**start)
        try:
            connection = await async_connect(options.url, additional_headers=options.headers(),
                                             open_timeout=options.timeout)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise _unreachable(options.url, exc) from exc
        try:
            await connection.send(message)
            ready = await cls._read(connection, options.timeout)
        except BaseException:
            await connection.close()
            raise
        if not isinstance(ready, models.StreamReady):
            await connection.close()
            raise StreamClosed(f"the server answered {ready.raw!r} instead of ready")
        return cls(connection, ready, options.timeout)

    @staticmethod
    async def _read(connection: AsyncConnection, timeout: float | None) -> models.Model:
        try:
            return parse_message(await asyncio.wait_for(connection.recv(), timeout), PCM_MESSAGES)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def send(self, pcm: bytes | bytearray | memoryview) -> None:
        try:
            for frame in _frames(bytes(pcm), self._frame_bytes):
                await self._ws.send(frame)
        except ConnectionClosed:
            while True:
                try:
                    self._keep(await self._read(self._ws, 1.0))
                except TimeoutError:
                    raise StreamClosed("the server closed the stream") from None

    def _keep(self, message: models.Model) -> models.Model:
        self.result.messages.append(message)
        if isinstance(message, models.StreamSummary):
            self.result.summary = message
        return message

    async def recv(self, timeout: float | None = None) -> models.Model:
        return self._keep(await self._read(self._ws, timeout))

    async def end(self, timeout: float | None = None) -> models.StreamSummary:
        await self._ws.send(json.dumps({"type": "end"}))
        while self.result.summary is None:
            await self.recv(timeout=timeout if timeout is not None else self.timeout)
        await self.close()
        return self.result.summary

    async def __aiter__(self) -> AsyncIterator[models.Model]:
        while self.result.summary is None:
            yield await self.recv()

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> AsyncPcmStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncRecordingsSession:
    """:class:`RecordingsSession` for asyncio."""

    def __init__(self, connection: AsyncConnection, timeout: float) -> None:
        self._ws = connection
        self.timeout = timeout

    @classmethod
    async def open(cls, options: StreamOptions) -> AsyncRecordingsSession:
        try:
            connection = await async_connect(options.url, additional_headers=options.headers(),
                                             open_timeout=options.timeout, max_size=None)
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise _unreachable(options.url, exc) from exc
        return cls(connection, options.timeout)

    async def _exchange(self, payload: str | bytes) -> models.Model:
        try:
            await self._ws.send(payload)
            return parse_message(await asyncio.wait_for(self._ws.recv(), self.timeout), RECORDING_MESSAGES)
        except ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def send(self, audio: Audio) -> models.RecordingReference | models.RecordingResult:
        _, (_, data, _) = audio_part("audio", audio)
        return await self._exchange(data)  # type: ignore[return-value]

    async def reset(self) -> None:
        await self._exchange(json.dumps({"type": "reset"}))

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> AsyncRecordingsSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
