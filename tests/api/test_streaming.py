"""Streaming verification over WebSocket against a real ASGI server process and a real WebSocket client.

One ``manage.py runserver --noreload`` (uvicorn; what `make serve` runs) serves this module, with
short limits so refusals are quick; the shared recordings are streamed in real time and faster.
Speakers and keys are written by this process into the test database the server reads. Every
wait is bounded.
"""
from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import soundfile as sf
from apitools import database_url, start_gunicorn, start_runserver, wait_until, wait_until_healthy
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from speakers.models import AuditEvent

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]

LIMITS = {"VOICEPRINT_STREAM_IDLE_TIMEOUT_S": "3", "VOICEPRINT_STREAM_MAX_AUDIO_S": "40",
          "VOICEPRINT_STREAM_MAX_MESSAGES_PER_S": "60", "VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY": "2"}


def _decided(message: dict) -> bool:
    """A decision message is the calibrated score against the threshold for its pair's quality."""
    return message["accepted"] == (message["score"] >= message["threshold"]) and -50 < message["threshold"] < 50


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory, speech):
    """The server, warmed up: one compare waits behind the warm-up's compilations (one inference queue)."""
    from django.db import connection

    from speakers.services import Actor, api_key_create

    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
        _, running_key = api_key_create(name="warm-up", scopes=["verify"], actor=Actor.cli("tests"))
    running = start_runserver("streaming", url, tmp_path_factory.mktemp("streaming"), **LIMITS)
    try:
        wait_until_healthy(running, timeout=180)
        running.api_key = running_key
        warmed = running.request("POST", "/api/v1/compare", timeout=300,
                                 files=[("reference", "a.wav", speech.bytes("a_snt1")),
                                        ("test", "b.wav", speech.bytes("a_snt2"))])
        assert warmed.status == 200, (warmed, running.log_tail(20_000))
        yield running
    finally:
        running.stop()


@dataclass
class Outcome:
    messages: list[dict] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)  # set at the server's first answer
    seconds: float | None = None  # from the connection to the server's close
    close_code: int | None = None
    close_reason: str = ""
    subprotocol: str | None = None

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]

    @property
    def error_code(self) -> str | None:
        errors = self.of("error")
        return errors[-1]["error"]["code"] if errors else None


def _ws_url(server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def _pcm(speech, *names: str) -> bytes:
    return b"".join((speech.samples(n) * 32768.0).astype("<i2").tobytes() for n in names)


def stream(server, path: str, *, key: str | None, start: dict | None = None, audio: bytes = b"",
           chunk_s: float = 0.1, speed: float | None = 1.0, end: bool = True, subprotocols=None,
           extra: list | None = None, timeout: float = 120.0, outcome: Outcome | None = None) -> Outcome:
    """Stream ``audio`` (16 kHz s16le) in ``chunk_s`` messages at ``speed`` x real time (None: as fast as
    possible) while reading every answer until the server closes."""
    headers = {"X-API-Key": key} if key else {}
    outcome = outcome if outcome is not None else Outcome()
    connected = time.monotonic()
    with connect(_ws_url(server, path), additional_headers=headers, subprotocols=subprotocols,
                 open_timeout=30, close_timeout=10, max_size=2 ** 22) as ws:
        outcome.subprotocol = ws.subprotocol

        def send() -> None:
            try:
                if start is not None:
                    ws.send(json.dumps(start))
                step = int(chunk_s * 16000) * 2
                for offset in range(0, len(audio), step):
                    ws.send(audio[offset:offset + step])
                    if speed:
                        time.sleep(chunk_s / speed)
                for message in extra or []:
                    ws.send(message)
                if end:
                    ws.send(json.dumps({"type": "end"}))
            except ConnectionClosed:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                outcome.messages.append(json.loads(ws.recv(timeout=deadline - time.monotonic())))
                outcome.opened.set()
        except ConnectionClosed as closed:
            outcome.seconds = time.monotonic() - connected
            outcome.close_code = closed.rcvd.code if closed.rcvd else None
            outcome.close_reason = closed.rcvd.reason if closed.rcvd else ""
        sender.join(timeout=10)
    return outcome


# --- the rolling score ---------------------------------------------------------------------------------

def test_the_rolling_score_of_the_enrolled_speaker_crosses_the_threshold_in_real_time(server, enrolled, make_key,
                                                                                       speech):
    outcome = stream(server, "/ws/v1/stream-verify", key=make_key("verify"), start={"speaker_id": enrolled["a"]},
                     audio=_pcm(speech, "a_snt4", "a_snt5"), speed=1.0)
    assert outcome.close_code == 1000, (outcome, server.log_tail())
    ready = outcome.messages[0]
    assert ready["type"] == "ready" and ready["reference"] == "speaker" and ready["display_name"] == "Alice"
    assert ready["window_s"] == 3.0 and ready["hop_s"] == 0.5
    scores = outcome.of("score")
    assert len(scores) >= 2, outcome.messages  # every 0.5 s of speech, fewer when the machine is slow (hops coalesce)
    assert any(s["accepted"] for s in scores) and all(_decided(s) for s in scores)
    assert all(s["score_normalisation"] == "none" and s["similarity"] == s["raw_score"] for s in scores)
    assert all(s["window_speech_s"] <= 3.0 + 1e-6 for s in scores)
    assert scores[0]["window_speech_s"] >= 1.0 and scores[0]["speech_s"] < 2.0  # as soon as enough speech arrived
    speech_s = [s["speech_s"] for s in scores]
    assert speech_s == sorted(speech_s) and outcome.of("event")[0]["event"] == "speech"
    summary = outcome.of("summary")[0]
    assert summary["scores"] == len(scores) and summary["speech_s"] >= speech_s[-1]


def test_an_impostors_rolling_score_never_crosses_faster_than_real_time(server, enrolled, make_key, speech):
    outcome = stream(server, "/ws/v1/stream-verify", key=make_key("verify"), start={"speaker_id": enrolled["a"]},
                     audio=_pcm(speech, "b_snt5", "b_snt6", "b_snt1"), speed=4.0)
    assert outcome.close_code == 1000, (outcome, server.log_tail())
    scores = outcome.of("score")
    assert scores and not any(s["accepted"] for s in scores) and all(_decided(s) for s in scores)


def test_the_first_speech_of_the_stream_can_be_the_reference(server, make_key, speech):
    key = make_key("verify")
    same = stream(server, "/ws/v1/stream-verify", key=key, start={"reference_speech_s": 2.5},
                  audio=_pcm(speech, "a_snt1", "a_snt2", "a_snt3"), speed=4.0)
    assert same.close_code == 1000, (same, server.log_tail())
    assert len(same.of("reference")) == 1 and same.messages[0]["reference"] == "first_audio"
    assert any(s["accepted"] for s in same.of("score"))
    other = stream(server, "/ws/v1/stream-verify", key=key, start={"reference_speech_s": 2.5},
                   audio=_pcm(speech, "a_snt1", "b_snt2", "b_snt3"), speed=4.0)
    # the windows that hold only b's speech (the server finds speech as SpeechStream does here) never cross
    from inference.streaming import SpeechStream

    a_part = SpeechStream(16000)
    a_part.feed(speech.samples("a_snt1"))
    pure_b = [s for s in other.of("score") if s["speech_s"] - s["window_speech_s"] > a_part.speech_s + 0.1]
    assert pure_b and not any(s["accepted"] for s in pure_b), other.messages


def test_a_browser_authenticates_with_the_key_subprotocol_and_audio_may_come_first(server, make_key, speech):
    key = make_key("verify")
    outcome = stream(server, "/ws/v1/stream-verify", key=None, subprotocols=["voiceprint.v1", f"voiceprint.key.{key}"],
                     audio=_pcm(speech, "a_snt1", "a_snt2"), chunk_s=0.5, speed=None)
    assert outcome.subprotocol == "voiceprint.v1"  # the key is never echoed
    assert outcome.close_code == 1000 and outcome.messages[0]["type"] == "ready"
    assert outcome.messages[0]["sample_rate"] == 16000 and outcome.of("reference")


def test_silence_is_reported_as_an_event(server, make_key, speech):
    silence = np.zeros(int(1.6 * 16000), dtype="<i2").tobytes()
    outcome = stream(server, "/ws/v1/stream-verify", key=make_key("verify"), start={},
                     audio=silence + _pcm(speech, "a_snt1"), chunk_s=0.5, speed=None)
    events = [e["event"] for e in outcome.of("event")]
    assert events[:2] == ["silence", "speech"], outcome.messages


# --- refusals: one error message, then a coded close ---------------------------------------------------

def _refused(outcome: Outcome, close_code: int, code: str) -> None:
    assert outcome.close_code == close_code and outcome.close_reason == code, outcome
    assert outcome.error_code == code
    error = outcome.of("error")[-1]["error"]
    assert set(error) == {"code", "message", "detail"} and error["message"]


def test_a_handshake_without_a_key_or_with_a_wrong_one_is_closed_4401(server):
    _refused(stream(server, "/ws/v1/stream-verify", key=None, start={}), 4401, "missing_api_key")
    _refused(stream(server, "/ws/v1/stream-verify", key="vp_0000.notakey", start={}), 4401, "invalid_api_key")
    _refused(stream(server, "/ws/stream-verify", key=None), 4401, "missing_api_key")


def test_a_key_without_the_verify_scope_is_closed_4403(server, make_key):
    _refused(stream(server, "/ws/v1/stream-verify", key=make_key("enroll", "identify"), start={}),
             4403, "insufficient_scope")


@pytest.mark.parametrize("messages, close_code, code", [
    (["not json"], 4400, "invalid_message"),
    ([json.dumps({"sample_rate": 1000})], 4400, "invalid_message"),
    ([json.dumps({}), b"\x00\x01\x02"], 4400, "invalid_audio_frame"),
    ([json.dumps({}), bytes(64 * 1024 + 2)], 4413, "message_too_large"),
    ([json.dumps({}), json.dumps({"type": "pause"})], 4400, "invalid_message"),
    ([json.dumps({"speaker_id": "0b6f8a5e-54f5-4b34-9d1e-6a8f1a3c2b10"})], 4404, "speaker_not_found"),
    (["[" * 100_000], 4400, "invalid_message"),  # nested past the parser's recursion limit (was 4500)
    ([json.dumps({}), '{"a": ' * 50_000], 4400, "invalid_message"),  # after the start message too
])
def test_bad_messages_get_coded_closes(server, make_key, messages, close_code, code):
    _refused(stream(server, "/ws/v1/stream-verify", key=make_key("verify"), extra=messages, end=False),
             close_code, code)


def test_deep_nesting_on_the_original_protocol_is_an_invalid_message(server, make_key):
    _refused(stream(server, "/ws/stream-verify", key=make_key("verify"), extra=["[" * 100_000], end=False),
             4400, "invalid_message")


def test_a_wav_file_sent_as_pcm_is_refused(server, make_key, speech):
    _refused(stream(server, "/ws/v1/stream-verify", key=make_key("verify"), extra=[speech.bytes("a_snt1")[:8000]],
                    end=False), 4400, "invalid_audio_frame")


def test_an_idle_client_is_closed_4408(server, make_key):
    started = time.monotonic()
    _refused(stream(server, "/ws/v1/stream-verify", key=make_key("verify"), start={}, end=False),
             4408, "idle_timeout")
    assert time.monotonic() - started < 15


def test_a_flood_of_tiny_frames_is_read_at_the_message_rate_while_others_are_served(server, make_key):
    frames = [json.dumps({})] + [b"\x00\x00"] * 240  # 240 one-sample messages at once; 60 per second are read
    flooded = Outcome()
    flood = threading.Thread(target=stream, args=(server, "/ws/v1/stream-verify"),
                             kwargs={"key": make_key("verify"), "extra": frames, "end": True, "outcome": flooded},
                             daemon=True)
    flood.start()
    wait_until(flooded.opened.is_set, message="the flooding session's ready message")
    health = server.request("GET", "/api/v1/health", timeout=10)  # the server answers meanwhile
    assert health.status == 200
    outcome = stream(server, "/ws/v1/stream-verify", key=make_key("verify"), extra=[json.dumps({})])
    assert outcome.close_code == 1000  # another session is served meanwhile
    flood.join(timeout=30)
    assert flooded.close_code == 1000, flooded
    # what is measured is the server's reading rate: 240 messages at 60 per second take at least 3 s
    assert flooded.seconds >= 240 / 60 - 1


def test_a_session_holds_at_most_max_audio_s(server, make_key):
    silence = bytes(41 * 16000 * 2)  # 41 s of audio in 1 s messages; the server allows 40
    _refused(stream(server, "/ws/v1/stream-verify", key=make_key("verify"), start={}, audio=silence, chunk_s=1.0,
                    speed=None, end=False), 4413, "session_too_long")


def test_a_key_may_hold_only_so_many_sessions_at_once(server, make_key):
    key = make_key("verify")
    url = _ws_url(server, "/ws/v1/stream-verify")
    with connect(url, additional_headers={"X-API-Key": key}) as one, \
            connect(url, additional_headers={"X-API-Key": key}) as two:
        for ws in (one, two):
            ws.send(json.dumps({}))
            assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        _refused(stream(server, "/ws/v1/stream-verify", key=key, start={}), 4429, "too_many_sessions")
    # closed sessions free their slots (as soon as the server has seen the two closes)
    wait_until(lambda: stream(server, "/ws/v1/stream-verify", key=key, start={}).close_code == 1000,
               message="a new session once the two were closed")


def test_an_unknown_websocket_path_is_closed_4404_and_audited_before_the_close(server, make_key):
    _refused(stream(server, "/ws/v1/nothing-here", key=make_key("verify")), 4404, "not_found")
    # the refusal is on record by the time the client hears of it: nothing is still writing
    assert AuditEvent.objects.filter(action="refusal", decision="not_found").count() == 1


# --- the original protocol: whole recordings --------------------------------------------------------------

def _encoded(speech, name: str, format: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, speech.samples(name), 16000, format=format, subtype=subtype)
    return buffer.getvalue()


def test_the_original_protocol_takes_whole_recordings_in_any_format(server, make_key, speech):
    silent = speech.wav(np.zeros(2 * 16000, dtype=np.float32))
    recordings = [speech.bytes("a_snt1"), _encoded(speech, "a_snt2", "FLAC", "PCM_16"),
                  _encoded(speech, "b_snt2", "OGG", "VORBIS"), silent, speech.bytes("a_snt3")]
    outcome = stream(server, "/ws/stream-verify", key=make_key("verify"), extra=recordings, end=False,
                     timeout=60)
    kinds = [m["type"] for m in outcome.messages]
    assert kinds == ["reference", "result", "result", "error", "result", "error"], (outcome, server.log_tail())
    assert outcome.messages[0]["status"] == "reference_set"
    same, other, _, again = (outcome.messages[i] for i in (1, 2, 3, 4))
    assert same["verification_result"] is True and same["accepted"] is True and _decided(same)
    assert other["verification_result"] is False and _decided(other)
    assert same["similarity"] == same["raw_score"] > other["similarity"] and again["accepted"] is True
    assert outcome.messages[3]["error"]["code"] == "no_speech"
    _refused(outcome, 4408, "idle_timeout")  # the client stopped sending


# --- the production server ---------------------------------------------------------------------------------

def test_gunicorn_with_uvicorn_workers_serves_http_and_the_websocket_routes(make_key, speech, tmp_path):
    from django.db import connection

    running = start_gunicorn("gunicorn-asgi", database_url(connection.settings_dict), tmp_path, asgi=True)
    try:
        wait_until_healthy(running, timeout=180)
        outcome = stream(running, "/ws/v1/stream-verify", key=make_key("verify"), start={"reference_speech_s": 2.0},
                         audio=_pcm(speech, "a_snt1", "a_snt2"), speed=None)
        assert outcome.close_code == 1000, (outcome, running.log_tail())
        assert outcome.of("reference") and outcome.of("score")
        running.api_key = make_key("verify")
        compared = running.request("POST", "/api/v1/compare", files=[("reference", "a.wav", speech.bytes("a_snt1")),
                                                                     ("test", "b.wav", speech.bytes("a_snt2"))])
        assert compared.status == 200 and compared.body["accepted"] is True
    finally:
        running.stop()
