"""POST /api/v1/diarize: who spoke when in one recording, each voice named among the caller's tenant's enrolled.

The recording is built from the fixture speakers: a (a_snt4..6, never enrolled recordings) and b
(b_snt1..4), taking turns with pauses of 0.7 s.
"""
from __future__ import annotations

import numpy as np
import pytest
from apitools import ENROLLED, assert_error
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from speakers.audit import Actor
from speakers.models import ApiKey, AuditEvent, VerificationLock
from speakers.services import api_key_create
from speakers.services.tenants import tenant_create

pytestmark = pytest.mark.django_db

TURNS = ("a_snt4", "b_snt1", "a_snt5", "b_snt2", "a_snt6", "b_snt3", "a_snt4", "b_snt4")
PAUSE_S = 0.7
TOLERANCE_S = 0.3  # a change of speaker is placed within this of the true one


@pytest.fixture
def conversation(speech) -> tuple[bytes, list[tuple[float, float, str]]]:
    """The recording and its reference turns ``[(start_s, end_s, "a"|"b")]``."""
    rate = speech.sample_rate
    pieces, truth, t = [], [], 0.0
    for name in TURNS:
        x = speech.samples(name)
        truth.append((t, t + len(x) / rate, name[0]))
        pieces += [x, np.zeros(int(PAUSE_S * rate), dtype=np.float32)]
        t += len(x) / rate + PAUSE_S
    return speech.wav(np.concatenate(pieces)), truth


def _diarize(api, data: bytes, address: str = "127.0.0.1", **fields):
    return api.post("/api/v1/diarize", {"audio": SimpleUploadedFile("talk.wav", data, content_type="audio/wav"),
                                        **fields}, format="multipart", REMOTE_ADDR=address)


def _voice_at(segments: list[dict], t: float) -> str | None:
    return next((s["label"] for s in segments if s["start_s"] <= t < s["end_s"]), None)


def test_the_enrolled_speaker_is_named_and_the_other_is_unknown_1_throughout(client, create_speaker, enroll,
                                                                            conversation, settings):
    settings.VOICEPRINT_MAX_AUDIO_S = 10.0  # a probe's limit: the diarized recording (23 s) has its own
    alice = create_speaker(external_id="alice", display_name="Alice")
    assert enroll(alice["id"], *ENROLLED["a"]).status_code == 201
    data, truth = conversation

    response = _diarize(client, data)

    assert response.status_code == 200, response.json()
    body = response.json()
    segments = body["segments"]
    assert [s["start_s"] for s in segments] == sorted(s["start_s"] for s in segments)
    assert {s["label"] for s in segments} == {"alice", "unknown-1"}
    for start, end, who in truth:  # every turn, away from its edges, is the right voice
        for t in np.arange(start + TOLERANCE_S, end - TOLERANCE_S, 0.1):
            assert _voice_at(segments, t) == ("alice" if who == "a" else "unknown-1"), (t, who, segments)
    for segment in segments:
        if segment["label"] == "alice":
            assert segment["speaker"] == {"id": alice["id"], "external_id": "alice", "display_name": "Alice"}
            assert segment["score"] is not None
        else:
            assert segment["speaker"] is None
    voices = {v["label"]: v for v in body["speakers"]}
    assert set(voices) == {"alice", "unknown-1"}
    assert voices["alice"]["turns"] == 4 and voices["unknown-1"]["turns"] == 4
    spoken_a = sum(e - s for s, e, who in truth if who == "a")
    assert abs(voices["alice"]["speaking_s"] - spoken_a) < 4 * 2 * TOLERANCE_S
    assert voices["alice"]["score"] >= voices["alice"]["threshold"] and voices["alice"]["no_match_reason"] is None
    assert voices["unknown-1"]["no_match_reason"] in ("below_threshold", "ambiguous", "taken")
    assert body["gallery"] == 1 and body["model_version"] and body["margin"] is not None
    event = AuditEvent.objects.get(action="diarize")
    assert event.decision == "match" and event.detail["named"] == [alice["id"]]


def test_an_enrolled_voice_is_never_named_twice_even_when_two_voices_are_asked_for_one_speaker(
        client, create_speaker, enroll, speech):
    alice = create_speaker(external_id="alice")
    assert enroll(alice["id"], *ENROLLED["a"]).status_code == 201
    pause = np.zeros(int(PAUSE_S * speech.sample_rate), dtype=np.float32)
    data = speech.wav(np.concatenate([p for n in ("a_snt4", "a_snt5", "a_snt6") for p in (speech.samples(n), pause)]))

    response = _diarize(client, data, num_speakers=2)

    assert response.status_code == 200, response.json()
    labels = [v["label"] for v in response.json()["speakers"]]
    assert len(labels) == 2 and labels.count("alice") <= 1, labels
    assert all(label == "alice" or label.startswith("unknown-") for label in labels)


def test_another_tenants_speaker_is_never_named(client, create_speaker, enroll, conversation, upload):
    bank = tenant_create(slug="bank", actor=Actor.cli("tests"))
    _, plain = api_key_create(name="bank-app", scopes=("enroll", "identify"), actor=Actor.cli("tests"), tenant=bank)
    other = APIClient()
    other.credentials(HTTP_X_API_KEY=plain)
    bob = other.post("/api/v1/speakers", {"external_id": "bob"}, format="json").json()
    assert other.post(f"/api/v1/speakers/{bob['id']}/enrollments", {"audio": [upload(n) for n in ENROLLED["b"]]},
                      format="multipart").status_code == 201

    response = _diarize(client, conversation[0])  # the default tenant has nobody enrolled

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["gallery"] == 0
    assert {s["label"] for s in body["segments"]} == {"unknown-1", "unknown-2"}
    assert all(s["speaker"] is None for s in body["segments"])
    assert {v["no_match_reason"] for v in body["speakers"]} == {"no_candidates"}
    # and in bank's own tenant, Bob is named
    assert "bob" in {s["label"] for s in _diarize(other, conversation[0]).json()["segments"]}


def test_a_speaker_the_callers_key_is_locked_out_of_is_never_named(client, make_key, upload, enrolled,
                                                                    conversation, settings):
    settings.VOICEPRINT_VERIFY_LOCKOUT_AFTER = 3
    attacker = APIClient()
    attacker.credentials(HTTP_X_API_KEY=make_key(name="attacker"))
    for _ in range(3):  # three rejected guesses at Alice lock this key out of her (as in test_verification_locks)
        guess = attacker.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("b_snt5")},
                              format="multipart", REMOTE_ADDR="203.0.113.7")
        assert guess.status_code == 200 and guess.json()["accepted"] is False, guess.json()
    assert VerificationLock.objects.filter(speaker_id=enrolled["a"], api_key__name="attacker").exists()
    data, truth = conversation
    alice_at = (truth[0][0] + truth[0][1]) / 2

    # from another address: the key's lock alone leaves Alice out, as identify does
    response = _diarize(attacker, data, address="198.51.100.20")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert "ext-a" not in {s["label"] for s in body["segments"]}
    assert all(s["speaker"] is None or s["speaker"]["id"] != enrolled["a"] for s in body["segments"])
    voices = {v["label"]: v for v in body["speakers"]}
    alices_voice = voices[_voice_at(body["segments"], alice_at)]
    assert alices_voice["speaker"] is None and alices_voice["label"].startswith("unknown-")
    # no score of hers is given: the voice's best candidate is someone else, who does not pass
    assert alices_voice["no_match_reason"] == "below_threshold"
    assert alices_voice["score"] < alices_voice["threshold"]
    assert "ext-b" in voices  # the speakers the key is not locked out of are named as before
    event = AuditEvent.objects.filter(action="diarize", api_key=ApiKey.objects.get(name="attacker")).get()
    assert enrolled["a"] not in event.detail["named"]
    # another key (the genuine caller's) still hears Alice
    assert "ext-a" in {s["label"] for s in _diarize(client, data).json()["segments"]}


def test_a_recording_longer_than_the_diarization_limit_is_refused(client, conversation, settings):
    settings.VOICEPRINT_DIARIZE_MAX_S = 10.0
    error = assert_error(_diarize(client, conversation[0]), 413, "audio_too_long")
    assert error["detail"]["max_duration_s"] == 10.0 and error["detail"]["field"] == "audio"


def test_a_recording_without_speech_is_refused(client, speech):
    quiet = np.random.default_rng(0).normal(0, 1e-4, 5 * speech.sample_rate).astype(np.float32)
    assert_error(_diarize(client, speech.wav(quiet)), 422, "no_speech")


def test_more_speakers_than_allowed_is_a_validation_error(client, conversation, settings):
    settings.VOICEPRINT_DIARIZE_MAX_SPEAKERS = 3
    error = assert_error(_diarize(client, conversation[0], max_speakers=4), 400, "validation_error")
    assert "max_speakers" in error["detail"]


def test_a_key_without_the_identify_scope_is_refused(anon_client, make_key, conversation):
    anon_client.credentials(HTTP_X_API_KEY=make_key("verify", "enroll"))
    assert_error(_diarize(anon_client, conversation[0]), 403, "insufficient_scope")


def test_a_conversation_pays_its_seconds_of_audio_from_the_keys_budget(client, conversation, settings):
    settings.VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = 20  # the 23 s conversation crosses it: served, then refused
    data, _ = conversation
    assert _diarize(client, data).status_code == 200
    response = _diarize(client, data)
    assert_error(response, 429, "audio_budget_exceeded")
    assert response["Retry-After"]


@pytest.mark.parametrize("windows", ["campplus", "ecapa"])
def test_the_windows_go_through_the_configured_networks_batched_graph_on_the_inference_thread(
    client, create_speaker, enroll, conversation, monkeypatch, settings, windows
):
    from inference.campplus_model import CampplusModel
    from inference.embedder import Embedder
    from speakers.runtime import inference_owner

    settings.VOICEPRINT_DIARIZE_WINDOWS = windows
    alice = create_speaker(external_id="alice", display_name="Alice")
    assert enroll(alice["id"], *ENROLLED["a"]).status_code == 201
    embedder = inference_owner.get_embedder()
    calls: dict[str, list[int]] = {"ecapa": [], "campplus": []}

    def counting(cls, name):
        run = cls.embed_windows

        def counted(self, batch):
            calls[name].append(len(batch))
            return run(self, batch)
        monkeypatch.setattr(cls, "embed_windows", counted)

    counting(Embedder, "ecapa")
    counting(CampplusModel, "campplus")
    data, truth = conversation
    response = _diarize(client, data)
    assert response.status_code == 200, response.json()
    # every window of the 23 s recording, in batches (one queue job each), through the configured network only
    assert calls[windows] and sum(calls[windows]) >= 20
    assert not calls["ecapa" if windows == "campplus" else "campplus"]
    network = embedder if windows == "ecapa" else inference_owner._owner.get().windows_model
    assert network._windows_network is not None
    # either way ECAPA names the voices: alice by name, the other voice unknown
    segments = response.json()["segments"]
    for start, end, who in truth:
        assert _voice_at(segments, (start + end) / 2) == ("alice" if who == "a" else "unknown-1")
