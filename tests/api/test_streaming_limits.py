"""Streaming slots are not held for free (issue 18, item 6): a session must bring a minimum of audio per interval,
and one API key holds at most so many sessions. In process: the consumers driven through the ASGI interface
(asgiref's communicator; channels.testing needs daphne), no server, no scoring (the audio is silence)."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.routing import URLRouter

from speakers.api.routing import websocket_urlpatterns
from speakers.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

PCM_ROUTE, RECORDINGS_ROUTE = "/ws/v1/stream-verify", "/ws/stream-verify"
SILENCE_100_MS = bytes(1600 * 2)  # 0.1 s of 16 kHz s16le


@pytest.fixture(autouse=True)
def _short_interval(settings) -> None:
    """At least 0.3 s of audio in every 0.6 s (the defaults: 3 s in every 10 s)."""
    settings.VOICEPRINT_STREAM_MIN_AUDIO_S = 0.3
    settings.VOICEPRINT_STREAM_MIN_AUDIO_INTERVAL_S = 0.6


class Socket:
    """One WebSocket connection to the app: send messages, read every answer up to the server's close."""

    def __init__(self, path: str, key: str, address: str = "192.0.2.10") -> None:
        scope = {"type": "websocket", "path": path, "raw_path": path.encode(), "query_string": b"",
                 "headers": [(b"x-api-key", key.encode())], "subprotocols": [], "client": (address, 50000)}
        self.app = ApplicationCommunicator(URLRouter(websocket_urlpatterns), scope)
        self.messages: list[dict] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self.seconds: float | None = None  # from the connection to the server's close

    async def open(self) -> None:
        self.opened_at = time.monotonic()
        await self.app.send_input({"type": "websocket.connect"})
        assert (await self.app.receive_output(30))["type"] == "websocket.accept"

    async def send(self, message: bytes | dict) -> None:
        if isinstance(message, bytes):
            await self.app.send_input({"type": "websocket.receive", "bytes": message})
        else:
            await self.app.send_input({"type": "websocket.receive", "text": json.dumps(message)})

    async def read_until_closed(self, timeout: float = 30.0) -> None:
        while True:
            event = await self.app.receive_output(timeout)
            if event["type"] == "websocket.close":
                self.close_code, self.close_reason = event.get("code"), event.get("reason", "")
                self.seconds = time.monotonic() - self.opened_at
                await self.leave(self.close_code)
                return
            self.messages.append(json.loads(event["text"]))

    async def read_one(self, timeout: float = 30.0) -> dict:
        event = await self.app.receive_output(timeout)
        assert event["type"] == "websocket.send", event
        message = json.loads(event["text"])
        self.messages.append(message)
        return message

    async def leave(self, code: int = 1000) -> None:
        await self.app.send_input({"type": "websocket.disconnect", "code": code})
        await self.app.wait(10)


async def _trickle(socket: Socket, message: bytes | dict, every_s: float, count: int) -> None:
    for _ in range(count):
        await socket.send(message)
        await asyncio.sleep(every_s)


def _session(path: str, key: str, *, first: list, trickle: bytes | dict, every_s: float, count: int,
             last: list | None = None) -> Socket:
    """Open a session, send ``first``, then ``trickle`` every ``every_s`` ``count`` times, then ``last``; read
    every answer up to the close."""

    async def run() -> Socket:
        socket = Socket(path, key)
        await socket.open()

        async def sender() -> None:
            for message in first:
                await socket.send(message)
            await _trickle(socket, trickle, every_s, count)
            for message in last or []:
                await socket.send(message)

        sending = asyncio.ensure_future(sender())
        await socket.read_until_closed()
        sending.cancel()
        return socket

    return asyncio.run(run())


def _refused(socket: Socket, close_code: int, code: str) -> dict:
    assert (socket.close_code, socket.close_reason) == (close_code, code), socket.messages
    error = socket.messages[-1]
    assert error["type"] == "error" and error["error"]["code"] == code
    return error["error"]


def test_a_session_that_trickles_two_bytes_at_a_time_is_closed_for_too_little_audio(make_key):
    # the slot-holding attack: a sample now and then keeps the idle timer happy, but brings no audio
    socket = _session(PCM_ROUTE, make_key("verify"), first=[{}], trickle=b"\x00\x00", every_s=0.1, count=100)
    error = _refused(socket, 4408, "audio_too_slow")
    assert error["detail"] == {"min_audio_s": 0.3, "interval_s": 0.6, "audio_s": pytest.approx(0.0004, abs=1e-3)}
    refusal = AuditEvent.objects.get(action="refusal", decision="audio_too_slow")
    assert refusal.detail["status"] == 4408 and refusal.detail["method"] == "WEBSOCKET"


def test_a_flood_of_tiny_messages_read_slowly_brings_no_more_audio_and_is_closed_too(make_key, settings):
    # reading slowly (back-pressure) is not work done for the client: it does not excuse a lack of audio
    settings.VOICEPRINT_STREAM_MAX_MESSAGES_PER_S = 20
    socket = _session(PCM_ROUTE, make_key("verify"), first=[{}, *[b"\x00\x00"] * 300], trickle=b"\x00\x00",
                      every_s=0.1, count=10)
    _refused(socket, 4408, "audio_too_slow")
    assert socket.seconds < 300 / 20 / 2  # closed long before the 300 messages were read at 20 per second


def test_a_session_streaming_in_real_time_is_never_closed_for_its_rate(make_key):
    # 2 s of silence in real time (more than three intervals), then the end: a summary and a normal close
    socket = _session(PCM_ROUTE, make_key("verify"), first=[{}], trickle=SILENCE_100_MS, every_s=0.1, count=20,
                      last=[{"type": "end"}])
    assert socket.close_code == 1000, socket.messages
    assert socket.messages[-1]["type"] == "summary" and socket.messages[-1]["audio_s"] == pytest.approx(2.0)


def test_the_original_protocol_is_closed_when_only_resets_arrive(make_key):
    socket = _session(RECORDINGS_ROUTE, make_key("verify"), first=[], trickle={"type": "reset"}, every_s=0.1,
                      count=100)
    _refused(socket, 4408, "audio_too_slow")


def test_the_rate_can_be_switched_off(make_key, settings):
    settings.VOICEPRINT_STREAM_MIN_AUDIO_S = 0.0
    socket = _session(PCM_ROUTE, make_key("verify"), first=[{}], trickle=b"\x00\x00", every_s=0.1, count=15,
                      last=[{"type": "end"}])
    assert socket.close_code == 1000, socket.messages


def test_a_key_at_its_session_limit_takes_no_slot_of_another_key(make_key, settings):
    settings.VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY = 2
    busy, other = make_key("verify"), make_key("verify")

    async def run() -> tuple[Socket, Socket]:
        held = []
        for _ in range(2):
            socket = Socket(PCM_ROUTE, busy)
            await socket.open()
            await socket.send({})
            assert (await socket.read_one())["type"] == "ready"
            held.append(socket)
        refused = Socket(PCM_ROUTE, busy)
        await refused.open()
        await refused.read_until_closed()
        served = Socket(PCM_ROUTE, other)
        await served.open()
        await served.send({})
        assert (await served.read_one())["type"] == "ready"
        for socket in (*held, served):
            await socket.leave()
        return refused, served

    refused, _ = asyncio.run(run())
    error = _refused(refused, 4429, "too_many_sessions")
    assert error["detail"] == {"max_sessions_per_key": 2}
