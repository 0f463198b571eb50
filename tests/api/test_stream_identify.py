"""/ws/v1/stream-identify: who among the tenant's enrolled speakers is speaking now, window by window.

In process (the ASGI application and a communicator, as a client's handshake): a long turn of speaker a
(enrolled, a_snt4..6: recordings never enrolled) then a long turn of b (not enrolled), as raw PCM.
"""
from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from apitools import ENROLLED

from speakers.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)

A_TURN, B_TURN = ("a_snt4", "a_snt5", "a_snt6"), ("b_snt1", "b_snt2", "b_snt3", "b_snt4")


def _session(key: str, start: dict | None, pcm: bytes, chunk_s: float = 0.25,
             speed: float | None = 3.0) -> tuple[list[dict], int | None]:
    """Send the start message, the PCM in ``chunk_s`` messages at ``speed`` x real time (None: at once) and the
    end; every message until the close."""
    from asgiref.testing import ApplicationCommunicator

    from voiceprint_project.asgi import application

    async def run() -> tuple[list[dict], int | None]:
        path = "/ws/v1/stream-identify"
        communicator = ApplicationCommunicator(application, {
            "type": "websocket", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "scheme": "ws", "headers": [(b"x-api-key", key.encode()), (b"host", b"localhost")],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "subprotocols": []})
        await communicator.send_input({"type": "websocket.connect"})
        assert (await communicator.receive_output(timeout=60))["type"] == "websocket.accept"
        if start is not None:
            await communicator.send_input({"type": "websocket.receive", "text": json.dumps(start)})
        step = int(chunk_s * 16000) * 2
        for offset in range(0, len(pcm), step):
            await communicator.send_input({"type": "websocket.receive", "bytes": pcm[offset:offset + step]})
            if speed:  # as a live client sends (all at once, the hops coalesce into few windows)
                await asyncio.sleep(chunk_s / speed)
        await communicator.send_input({"type": "websocket.receive", "text": json.dumps({"type": "end"})})
        messages, code = [], None
        while True:
            output = await communicator.receive_output(timeout=120)
            if output["type"] == "websocket.close":
                code = output.get("code")
                break
            messages.append(json.loads(output["text"]))
        await communicator.wait(timeout=10)
        return messages, code

    return asyncio.run(run())


def _pcm(speech, *names: str) -> bytes:
    return b"".join((speech.samples(n) * 32768.0).astype("<i2").tobytes() for n in names)


def test_the_enrolled_speaker_is_named_while_she_speaks_and_nobody_while_a_stranger_does(
        client, create_speaker, enroll, make_key, speech):
    alice = create_speaker(external_id="alice", display_name="Alice")
    assert enroll(alice["id"], *ENROLLED["a"]).status_code == 201
    a_speech = sum(len(speech.samples(n)) for n in A_TURN) / speech.sample_rate

    messages, code = _session(make_key("identify"), {"type": "start"}, _pcm(speech, *A_TURN, *B_TURN))

    assert code == 1000, messages
    assert messages[0]["type"] == "ready" and "speaker_id" not in messages[0]
    windows = [m for m in messages if m["type"] == "speaker"]
    assert len(windows) >= 4, messages
    for m in windows:  # the rule's figures come with every answer
        assert m["gallery"] == 1 and m["margin"] is not None
        assert (m["match"] is None) == (m["no_match_reason"] is not None)
        # one voice searched: too few for the lead rule, every match is the threshold's
        assert m["matched_by"] == (None if m["match"] is None else "threshold")
    # windows of a's speech only (taken before b starts) name her; windows of b's speech only name nobody
    only_a = [m for m in windows if m["speech_s"] <= a_speech - 0.2]
    only_b = [m for m in windows if m["speech_s"] - m["window_speech_s"] >= a_speech + 0.2]
    assert only_a and only_b, windows
    assert all(m["match"] is not None and m["match"]["external_id"] == "alice" for m in only_a), only_a
    assert all(m["match"] is None for m in only_b), only_b
    assert all(m["match"] is None or m["match"]["speaker_id"] == alice["id"] for m in windows)
    summary = messages[-1]
    assert summary["type"] == "summary" and summary["speakers"][0]["speaker_id"] == alice["id"]
    assert summary["windows"] == len(windows)
    event = AuditEvent.objects.get(action="identify")
    assert event.detail["stream"] is True and event.detail["named"] == [alice["id"]]


def test_a_start_message_naming_a_speaker_is_refused_with_the_streaming_close_code(make_key):
    messages, code = _session(make_key("identify"), {"type": "start", "speaker_id": "00000000-0000-0000-0000-000000000001"},
                              b"")
    assert code == 4400 and messages[-1]["error"]["code"] == "invalid_message"


def test_a_session_longer_than_the_streaming_limit_is_closed_as_stream_verify_is(make_key, speech, settings):
    settings.VOICEPRINT_STREAM_MAX_AUDIO_S = 5.0
    messages, code = _session(make_key("identify"), {"type": "start"}, _pcm(speech, *A_TURN), speed=None)
    assert code == 4413 and messages[-1]["error"]["code"] == "session_too_long"
    assert messages[-1]["error"]["detail"]["max_audio_s"] == 5.0


def test_silence_is_identified_as_nobody_and_reported_as_such(make_key):
    quiet = (np.random.default_rng(0).normal(0, 1e-4, 16000 * 3) * 32768).astype("<i2").tobytes()
    messages, code = _session(make_key("identify"), {"type": "start"}, quiet)
    assert code == 1000
    assert not [m for m in messages if m["type"] == "speaker"]
    assert messages[-1]["type"] == "summary" and messages[-1]["windows"] == 0
