"""The rules of a streaming session (speakers.services.streaming), without a socket or the network:
the start message, framing and limits, when a window is due (reference, first score, hops that
coalesce), and the messages a decision becomes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from apitools import calibrated_verdict

from inference import AudioQuality, EmbeddingResult
from inference.prepare import model_version
from inference.quality_calibration import SideQuality
from speakers.exceptions import (
    StreamFrameInvalid,
    StreamMessageInvalid,
    StreamMessageTooLarge,
    StreamTooLong,
)
from speakers.services.decisions import PairDecision, Reference
from speakers.services.streaming import (
    StreamLimits,
    StreamSession,
    StreamStart,
    message_delay,
    stream_start_parse,
    stream_window_process,
)

LIMITS = StreamLimits(window_s=3.0, hop_s=0.5, min_speech_s=1.0, reference_speech_s=3.0, silence_event_s=1.0,
                      max_clipping_ratio=0.05, min_speech_level_dbfs=-48.0, max_frame_bytes=64 * 1024,
                      max_audio_s=60.0, max_session_s=900.0, idle_timeout_s=10.0, max_messages_per_s=200,
                      max_speed=20.0, burst_s=10.0, max_recordings=10, max_recording_bytes=1 << 20)


@pytest.fixture(autouse=True)
def _real_engine():
    """These tests need neither the model nor the database (overrides the API tests' autouse fixture)."""


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()


def _feed(session: StreamSession, samples: np.ndarray, chunk_s: float = 0.1) -> list[dict]:
    step = int(chunk_s * session.start.sample_rate)
    events = []
    for start in range(0, samples.size, step):
        events += session.feed(_pcm(samples[start:start + step]))
    return events


def _result(vector: np.ndarray | None = None, speech_s: float = 3.0) -> EmbeddingResult:
    vector = np.ones(192, dtype=np.float32) / np.sqrt(192) if vector is None else vector
    return EmbeddingResult(vector=vector, model_version=model_version(), duration_s=speech_s, speech_s=speech_s,
                           quality=AudioQuality(clipping_ratio=0.0, snr_db=30.0, speech_ratio=1.0,
                                                speech_level_dbfs=-20.0))


def _decision(raw: float) -> PairDecision:
    return PairDecision(score=raw, raw_score=raw, threshold=0.45, accepted=raw >= 0.45, score_normalisation="none",
                        policy_source="settings", model_version=model_version())


def _speech(speech, *names: str) -> np.ndarray:
    return np.concatenate([speech.samples(n) for n in names])


# --- the start message -------------------------------------------------------------------------------

def test_a_start_message_takes_its_defaults():
    start = stream_start_parse({"type": "start"}, LIMITS)
    assert start == StreamStart() and start.reference_kind == "first_audio"
    start = stream_start_parse({"speaker_id": "0b6f8a5e-54f5-4b34-9d1e-6a8f1a3c2b10", "sample_rate": 8000,
                                "encoding": "f32le", "asnorm": True}, LIMITS)
    assert start.reference_kind == "speaker" and start.sample_rate == 8000 and start.encoding == "f32le"


@pytest.mark.parametrize("message, field", [
    ({"type": "stop"}, "type"),
    ({"sample_rate": 4000}, "sample_rate"),
    ({"sample_rate": "16000"}, "sample_rate"),
    ({"encoding": "mp3"}, "encoding"),
    ({"speaker_id": "alice"}, "speaker_id"),
    ({"asnorm": "yes"}, "asnorm"),
    ({"reference_speech_s": 30}, "reference_speech_s"),
    ({"speaker_id": "0b6f8a5e-54f5-4b34-9d1e-6a8f1a3c2b10", "reference_speech_s": 3}, "reference_speech_s"),
])
def test_a_bad_start_message_is_refused_naming_the_field(message, field):
    with pytest.raises(StreamMessageInvalid) as caught:
        stream_start_parse(message, LIMITS)
    assert caught.value.detail["field"] == field


def test_a_start_message_with_an_unknown_field_is_refused():
    with pytest.raises(StreamMessageInvalid) as caught:
        stream_start_parse({"speakerId": "x"}, LIMITS)
    assert caught.value.detail["fields"] == ["speakerId"]
    with pytest.raises(StreamMessageInvalid):
        stream_start_parse(["start"], LIMITS)


# --- framing and limits ------------------------------------------------------------------------------------

def test_binary_messages_must_be_whole_samples_of_raw_pcm_within_the_limits(speech):
    session = StreamSession(start=StreamStart(), limits=LIMITS)
    with pytest.raises(StreamFrameInvalid):
        session.feed(b"\x00\x01\x02")
    with pytest.raises(StreamFrameInvalid, match="not an audio file"):
        session.feed(speech.bytes("a_snt1")[:4000])
    with pytest.raises(StreamMessageTooLarge):
        session.feed(bytes(LIMITS.max_frame_bytes + 2))
    floats = StreamSession(start=StreamStart(encoding="f32le"), limits=LIMITS)
    with pytest.raises(StreamFrameInvalid):
        floats.feed(np.array([0.5, np.inf], dtype="<f4").tobytes())
    assert floats.feed(np.zeros(160, dtype="<f4").tobytes()) == []


def test_a_session_holds_at_most_max_audio_s():
    session = StreamSession(start=StreamStart(), limits=dataclasses.replace(LIMITS, max_audio_s=5.0))
    _feed(session, np.zeros(5 * 16000, dtype=np.float32), chunk_s=1.0)
    with pytest.raises(StreamTooLong):
        session.feed(_pcm(np.zeros(160, dtype=np.float32)))


def test_a_flood_of_messages_and_fast_audio_are_read_more_slowly():
    assert message_delay(messages=200, elapsed_s=0.0, limits=LIMITS) == 0.0
    assert message_delay(messages=2000, elapsed_s=9.5, limits=LIMITS) == 0.0
    # 400 messages at once: the 400th is read 1 s later (200 per second after a burst of 200)
    assert message_delay(messages=400, elapsed_s=0.0, limits=LIMITS) == pytest.approx(1.0)
    session = StreamSession(start=StreamStart(), limits=LIMITS, now=0.0)
    _feed(session, np.zeros(30 * 16000, dtype=np.float32), chunk_s=1.0)
    # 30 s of audio at t=0: 10 s of burst are free, the other 20 s take a second at 20x real time
    assert session.read_delay(0.0) == pytest.approx(1.0)
    assert session.read_delay(1.0) == 0.0


# --- windows due -----------------------------------------------------------------------------------

def test_the_first_speech_becomes_the_reference_and_scores_never_include_it(speech):
    session = StreamSession(start=StreamStart(reference_speech_s=2.0), limits=LIMITS)
    events = _feed(session, _speech(speech, "a_snt1"))
    assert events[0]["event"] == "speech"
    reference = session.due()
    assert reference.purpose == "reference" and reference.seq == 1
    assert 2.0 <= session.stream.speech_s and reference.samples.size / 16000 >= 2.0
    assert session.due() is None  # nothing is scored before the reference is set
    ack = session.reference_set(reference, _result(speech_s=2.0))
    assert ack == [{"type": "reference", "seq": 1, "speech_s": 2.0, "audio_s": reference.audio_s}]
    # speech of the reference is not in any later window
    assert session.stream.window_speech_s < session.stream.speech_s - 1.9


def test_scores_start_at_min_speech_and_follow_each_hop_and_coalesce(speech):
    reference = Reference(vector=np.ones(192, dtype=np.float32) / np.sqrt(192), quality=SideQuality(speech_s=8.0))
    session = StreamSession(start=StreamStart(speaker_id="0b6f8a5e-54f5-4b34-9d1e-6a8f1a3c2b10"), limits=LIMITS,
                            reference=reference)
    samples = _speech(speech, "a_snt4", "a_snt5", "a_snt6")
    taken = []
    step = 1600  # 0.1 s messages, a window taken (and scored at once) whenever one is due
    for start in range(0, samples.size, step):
        session.feed(_pcm(samples[start:start + step]))
        window = session.due()
        if window is not None:
            taken.append(window)
            assert session.due() is None  # one window at a time
    first = taken[0]
    assert first.purpose == "score" and 1.0 <= first.window_speech_s < 1.2
    hops = np.diff([w.speech_s for w in taken])
    assert np.all(hops >= 0.5 - 1e-9) and np.all(hops < 0.7)
    assert max(w.window_speech_s for w in taken) == pytest.approx(3.0)
    # a slow scorer: much speech arrives while a window is out; the next one is the newest, not the backlog
    late = StreamSession(start=session.start, limits=LIMITS, reference=reference)
    _feed(late, samples[: 2 * 16000])
    out = late.due()
    _feed(late, samples[2 * 16000:])
    newest = late.due()
    assert newest.seq == out.seq + 1 and newest.speech_s == pytest.approx(late.stream.speech_s)
    assert late.due() is None


def test_after_the_end_message_the_speech_not_scored_yet_is_scored_once(speech):
    reference = Reference(vector=np.ones(192, dtype=np.float32) / np.sqrt(192), quality=SideQuality(speech_s=8.0))
    session = StreamSession(start=StreamStart(speaker_id="0b6f8a5e-54f5-4b34-9d1e-6a8f1a3c2b10"), limits=LIMITS,
                            reference=reference)
    _feed(session, _speech(speech, "a_snt4"))
    while session.due() is not None:
        pass
    session.end()
    last = session.due()
    assert last is not None and last.speech_s == pytest.approx(session.stream.speech_s)
    assert session.due() is None
    with pytest.raises(StreamMessageInvalid):
        session.feed(b"\x00\x00")


def test_a_decision_becomes_a_score_message_with_the_decision_fields_and_the_cosine(speech):
    session = StreamSession(start=StreamStart(), limits=LIMITS)
    _feed(session, _speech(speech, "a_snt1", "a_snt2"))
    reference_window = session.due()
    session.reference_set(reference_window, _result())
    window = session.due()
    [message] = session.scored(window, _decision(0.62))
    assert message["type"] == "score" and message["seq"] == window.seq
    assert message["similarity"] == message["raw_score"] == 0.62 and message["score"] == 0.62
    assert message["threshold"] == 0.45 and message["accepted"] is True and message["score_normalisation"] == "none"
    assert message["speech_s"] == window.speech_s and message["window_speech_s"] == window.window_speech_s
    assert "policy_source" not in message and message["latency_ms"] >= 0
    summary = session.summary_message()
    assert summary["scores"] == 1 and summary["final"]["accepted"] is True and summary["final"]["similarity"] == 0.62


def test_a_quiet_window_is_scored_and_announced(speech):
    session = StreamSession(start=StreamStart(reference_speech_s=1.5), limits=LIMITS)
    _feed(session, _speech(speech, "a_snt1", "a_snt2") * 0.1)  # speech about -52 dBFS: heard, but quiet
    session.reference_set(session.due(), _result())
    messages = session.scored(session.due(), _decision(0.3))
    assert [m["type"] for m in messages] == ["score", "event"] and messages[1]["event"] == "too_quiet"


def test_the_worker_embeds_the_window_and_decides_it_with_the_one_rule(speech, settings, db):
    session = StreamSession(start=StreamStart(), limits=LIMITS)
    _feed(session, _speech(speech, "a_snt1", "a_snt2"))
    reference_window = session.due()
    calls = []

    def embed(samples, rate):
        calls.append((samples.size, rate))
        return _result()

    result = stream_window_process(session_reference=None, window=reference_window, asnorm=None, tenant=None, embed=embed)
    session.reference_set(reference_window, result)
    decision = stream_window_process(session_reference=session.reference, window=session.due(), asnorm=False, tenant=None,
                                     embed=embed)
    assert decision.raw_score == pytest.approx(1.0) and decision.accepted is True
    side = SideQuality(speech_s=3.0, snr_db=30.0, bandwidth_hz=_result().quality.bandwidth_hz)
    expected = calibrated_verdict(enroll_vector=_result().vector, enroll_quality=side, probe=_result())
    assert decision.threshold == pytest.approx(expected.threshold) and decision.score == pytest.approx(expected.llr)
    assert [rate for _, rate in calls] == [16000, 16000]
