"""Verify (1:1), identify (1:N, open set), compare, the classic verify-speaker endpoint and batch-verify."""
from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
from apitools import assert_error, calibrated_verdict, voiceprint_side
from django.test import override_settings

from speakers import crypto
from speakers.models import AuditEvent, Enrollment, Speaker
from speakers.search.index import voiceprint_index

pytestmark = pytest.mark.django_db


def verify(client, upload, speaker_id: str, name: str):
    return client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(name)}, format="multipart")


def identify(client, upload, name: str, **fields):
    return client.post("/api/v1/identify", {"audio": upload(name), **fields}, format="multipart")


# --- verify --------------------------------------------------------------------------------------

@pytest.mark.parametrize("probe", ["a_snt4", "a_snt5", "a_snt6"])
def test_a_speaker_is_accepted_on_a_new_recording_of_their_own_voice(client, upload, enrolled, embedder, speech,
                                                                     probe):
    response = verify(client, upload, enrolled["a"], probe)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"speaker_id", "score", "raw_score", "score_normalisation", "threshold", "accepted",
                         "explanation", "model_version", "processing_time_ms", "watchlist_match"}
    assert body["explanation"].startswith("Accepted: the score ")
    assert body["watchlist_match"] is None  # nobody is on the fraud watchlist
    assert body["speaker_id"] == enrolled["a"]
    assert body["accepted"] is True
    # the score is the calibrated log-likelihood ratio of the raw cosine, for the quality of both sides
    vector, quality = voiceprint_side(enrolled["a"])
    result = embedder.embed(speech.bytes(probe))
    expected = calibrated_verdict(enroll_vector=vector, enroll_quality=quality, probe=result)
    assert body["score_normalisation"] == "none"
    assert body["raw_score"] == pytest.approx(float(vector @ result.vector), abs=5e-4)  # three decimals
    assert body["score"] == pytest.approx(expected.llr, abs=5e-4)
    assert body["threshold"] == pytest.approx(expected.threshold, abs=5e-4)
    assert body["score"] >= body["threshold"]
    assert body["model_version"] == embedder.model_version


@pytest.mark.parametrize("probe", ["b_snt4", "b_snt5", "b_snt6"])
def test_another_voice_is_rejected(client, upload, enrolled, probe):
    body = verify(client, upload, enrolled["a"], probe).json()
    assert body["accepted"] is False
    assert body["score"] < body["threshold"] and -1.0 <= body["raw_score"] < 0.3


def test_a_verification_is_audited_with_its_decision_and_score_and_updates_last_verified(client, upload, enrolled):
    body = verify(client, upload, enrolled["b"], "b_snt5").json()
    event = AuditEvent.objects.get(action="verify", speaker_id=enrolled["b"])
    # the audit keeps the exact figures, the answer shows three decimals
    assert (event.decision, event.score, event.threshold) == ("accepted", pytest.approx(body["score"], abs=5e-4),
                                                              pytest.approx(body["threshold"], abs=5e-4))
    assert event.actor == "api:tests" and event.api_key is not None
    assert Speaker.objects.get(pk=enrolled["b"]).last_verified_at is not None


def test_processing_time_is_measured(client, upload, enrolled):
    started = time.perf_counter()
    body = verify(client, upload, enrolled["a"], "a_snt4").json()
    wall_ms = (time.perf_counter() - started) * 1000
    assert 0 < body["processing_time_ms"] <= wall_ms
    second = verify(client, upload, enrolled["a"], "a_snt5").json()
    assert second["processing_time_ms"] != body["processing_time_ms"]


def test_verifying_an_unknown_speaker_is_404(client, upload):
    assert_error(verify(client, upload, str(uuid.uuid4()), "a_snt1"), 404, "speaker_not_found")


def test_verifying_a_speaker_without_enrollments_is_409(client, upload, create_speaker):
    assert_error(verify(client, upload, create_speaker()["id"], "a_snt1"), 409, "speaker_not_enrolled")


def test_a_voiceprint_from_another_model_version_is_never_compared(client, upload, enrolled):
    speaker = Speaker.objects.get(pk=enrolled["a"])
    vector = crypto.vector_decrypt(key_id=speaker.voiceprint_key_id, ciphertext=speaker.voiceprint_ciphertext,
                                   context=speaker.crypto_context())
    speaker.voiceprint_model_version = "older-model@00000000"
    from speakers.tenancy import tenant_data_key

    sealed = crypto.vector_encrypt(vector, context=speaker.crypto_context(), key=tenant_data_key(speaker.tenant_id))
    speaker.voiceprint_ciphertext, speaker.voiceprint_key_id = sealed.ciphertext, sealed.key_id
    speaker.save()
    Enrollment.objects.filter(speaker=speaker).update(model_version="older-model@00000000")  # made by that model too

    error = assert_error(verify(client, upload, enrolled["a"], "a_snt4"), 409, "model_version_mismatch")
    assert "re-enroll" in error["message"]
    assert error["detail"]["voiceprint_model_version"] == "older-model@00000000"
    # identify ignores it too (only current-version voiceprints are indexed) ...
    identified = identify(client, upload, "a_snt4").json()
    assert enrolled["a"] not in [c["speaker_id"] for c in identified["candidates"]]
    # ... and re-enrolling makes the speaker verifiable again
    response = client.post(f"/api/v1/speakers/{enrolled['a']}/enrollments",
                           {"audio": [upload("a_snt1"), upload("a_snt2"), upload("a_snt3")]}, format="multipart")
    assert response.status_code == 201
    assert verify(client, upload, enrolled["a"], "a_snt4").json()["accepted"] is True


def test_a_probe_with_too_little_speech_is_refused(client, upload, enrolled):
    with override_settings(VOICEPRINT_PROBE_MIN_SPEECH_S=5.0):
        error = assert_error(verify(client, upload, enrolled["a"], "a_snt4"), 422, "insufficient_speech")
    assert error["detail"]["field"] == "audio"


def test_a_bad_probe_is_refused_with_its_code(client, upload, enrolled):
    response = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload(b"nope", "x.wav")},
                           format="multipart")
    assert response.status_code == 422
    assert response.json()["error"]["code"] in ("audio_not_audio", "audio_decode_error")


def test_verify_needs_a_valid_speaker_id(client, upload):
    error = assert_error(client.post("/api/v1/verify", {"speaker_id": "zzz", "audio": upload("a_snt1")},
                                     format="multipart"), 400, "validation_error")
    assert "speaker_id" in error["detail"]


# --- identify ------------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["a", "b"])
def test_identify_names_the_right_speaker(client, upload, enrolled, label):
    response = identify(client, upload, f"{label}_snt5")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"candidates", "match", "threshold", "margin", "runner_up_score", "no_match_reason",
                         "matched_by", "lead", "lead_required", "score_normalisation", "model_version",
                         "processing_time_ms"}
    assert body["match"]["speaker_id"] == enrolled[label]
    assert body["no_match_reason"] is None and body["matched_by"] == "threshold"
    assert body["lead_required"] is None  # two voices searched: too few for the lead rule
    assert body["match"]["score"] >= body["threshold"]
    assert body["match"]["score"] - body["runner_up_score"] >= body["margin"] >= 0.0
    assert body["match"]["external_id"] == f"ext-{label}"
    assert body["match"]["display_name"] == {"a": "Alice", "b": "Bob"}[label]
    assert body["candidates"][0] == body["match"]
    assert [c["score"] for c in body["candidates"]] == sorted((c["score"] for c in body["candidates"]), reverse=True)
    assert body["processing_time_ms"] > 0
    assert Speaker.objects.get(pk=enrolled[label]).last_identified_at is not None


def test_an_unknown_voice_is_nobody_not_the_nearest_stranger(client, upload, create_speaker, enroll):
    only_a = create_speaker(external_id="a")
    assert enroll(only_a["id"], "a_snt1", "a_snt2", "a_snt3").status_code == 201
    body = identify(client, upload, "b_snt4").json()
    assert body["match"] is None
    assert [c["speaker_id"] for c in body["candidates"]] == [only_a["id"]]
    assert body["candidates"][0]["score"] < body["threshold"]
    assert body["no_match_reason"] == "below_threshold" and body["runner_up_score"] is None
    event = AuditEvent.objects.get(action="identify")
    assert event.decision == "no_match" and event.speaker_id is None


def test_identify_on_an_empty_database_matches_nobody(client, upload):
    body = identify(client, upload, "a_snt1").json()
    assert body == {**body, "candidates": [], "match": None, "no_match_reason": "no_candidates"}


def test_identify_returns_at_most_top_k_candidates(client, upload, enrolled):
    assert len(identify(client, upload, "a_snt4", top_k=1).json()["candidates"]) == 1
    assert len(identify(client, upload, "a_snt4").json()["candidates"]) == 2


def test_identify_refuses_a_top_k_out_of_range(client, upload):
    assert_error(identify(client, upload, "a_snt4", top_k=0), 400, "validation_error")
    assert_error(identify(client, upload, "a_snt4", top_k=10_000), 400, "validation_error")


def test_identify_refuses_silence(client, upload, speech):
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    assert_error(client.post("/api/v1/identify", {"audio": upload(silence, "silence.wav")}, format="multipart"),
                 422, "no_speech")


@pytest.mark.parametrize("backend", ["flat", "ivf", "milvus"])
def test_identify_gives_the_same_answer_through_every_index_backend(client, upload, enrolled, settings, backend,
                                                                    tmp_path):
    settings.VOICEPRINT_INDEX_BACKEND = backend
    settings.VOICEPRINT_MILVUS_URI = str(tmp_path / "milvus.db")
    for label in ("a", "b"):
        body = client.post("/api/v1/identify", {"audio": upload(f"{label}_snt5")}, format="multipart").json()
        assert body["match"]["speaker_id"] == enrolled[label], body
        assert [c["speaker_id"] for c in body["candidates"]] == [enrolled[label], enrolled["ab".replace(label, "")]]
    assert voiceprint_index().structure == {"flat": "FlatIndex", "ivf": "IVFIndex", "milvus": "MilvusIndex"}[backend]
    client.delete(f"/api/v1/speakers/{enrolled['a']}")
    body = client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    assert body["match"] is None and [c["speaker_id"] for c in body["candidates"]] == [enrolled["b"]]


def test_identify_sees_a_speaker_enrolled_after_the_index_was_built(client, upload, enrolled, create_speaker,
                                                                    enroll):
    assert identify(client, upload, "a_snt4").json()["match"]["speaker_id"] == enrolled["a"]
    client.delete(f"/api/v1/speakers/{enrolled['a']}")
    assert identify(client, upload, "a_snt4").json()["match"] is None
    again = create_speaker()
    enroll(again["id"], "a_snt1", "a_snt2", "a_snt3")
    assert identify(client, upload, "a_snt4").json()["match"]["speaker_id"] == again["id"]


# --- compare, classic endpoint, batch ------------------------------------------------------------------

def test_compare_accepts_two_recordings_of_one_voice_and_stores_nothing(client, upload):
    response = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("a_snt2")},
                           format="multipart")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"similarity", "score", "raw_score", "score_normalisation", "threshold", "accepted",
                         "explanation", "model_version", "processing_time_ms"}
    assert body["similarity"] == body["raw_score"] and body["score_normalisation"] == "none"
    assert body["accepted"] is True and body["score"] >= body["threshold"]
    assert Speaker.objects.count() == 0


def test_compare_rejects_two_different_voices(client, upload):
    body = client.post("/api/v1/compare", {"reference": upload("a_snt1"), "test": upload("b_snt1")},
                       format="multipart").json()
    assert body["accepted"] is False


def test_compare_names_the_bad_file(client, upload, speech):
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    error = assert_error(client.post("/api/v1/compare", {"reference": upload("a_snt1"),
                                                          "test": upload(silence, "quiet.wav")}, format="multipart"),
                         422, "no_speech")
    assert error["detail"]["field"] == "test" and error["detail"]["filename"] == "quiet.wav"


@pytest.mark.parametrize("fields", [("reference", "test"), ("audio1", "audio2"), ("file1", "file2")])
def test_the_classic_verify_speaker_endpoint_answers_in_its_own_shape(client, upload, fields):
    response = client.post("/v1/verify-speaker", {fields[0]: upload("b_snt1"), fields[1]: upload("b_snt2")},
                           format="multipart")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"similarity", "verification_result", "score", "threshold", "processing_time_ms"}
    assert body["verification_result"] is True and body["processing_time_ms"] > 0
    assert body["score"] >= body["threshold"] and 0.3 < body["similarity"] <= 1.0


def test_the_classic_endpoint_needs_a_key_too(anon_client, upload):
    assert_error(anon_client.post("/v1/verify-speaker", {"reference": upload("a_snt1"), "test": upload("a_snt2")},
                                  format="multipart"), 401, "missing_api_key")


def test_batch_verify_scores_each_file_against_one_reference(client, upload, speech):
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    response = client.post("/api/v1/batch-verify", {
        "reference": upload("a_snt1"),
        "tests": [upload("a_snt2"), upload("b_snt2"), upload(silence, "silence.wav"), upload("a_snt3")],
    }, format="multipart")
    assert response.status_code == 200
    body = response.json()
    results = body["results"]
    assert [r["filename"] for r in results] == ["a_snt2.wav", "b_snt2.wav", "silence.wav", "a_snt3.wav"]
    assert [r["accepted"] for r in results] == [True, False, None, True]
    assert results[2]["error"]["code"] == "no_speech" and results[2]["similarity"] is None
    assert results[0]["error"] is None
    assert body["processing_time_ms"] > 0
    for result in (results[0], results[1], results[3]):  # each file has its own threshold (its quality)
        assert result["accepted"] == (result["score"] >= result["threshold"])
    assert results[2]["threshold"] is None


def test_batch_verify_fails_as_a_whole_when_the_reference_is_bad(client, upload):
    response = client.post("/api/v1/batch-verify", {"reference": upload(b"bad", "ref.wav"),
                                                     "tests": [upload("a_snt2")]}, format="multipart")
    assert response.status_code == 422
    assert response.json()["error"]["detail"]["field"] == "reference"


def test_the_original_batch_verify_route_answers_in_its_own_shape(client, upload, speech):
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    response = client.post("/v1/batch-verify", {
        "reference": upload("a_snt1"),
        "tests": [upload("a_snt2"), upload("b_snt2"), upload(silence, "silence.wav")],
    }, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"batch_results", "total_count"}
    assert body["total_count"] == 3
    results = body["batch_results"]
    assert [r["filename"] for r in results] == ["a_snt2.wav", "b_snt2.wav", "silence.wav"]
    assert [r["result"] for r in results] == [True, False, None]
    # similarity is the cosine its clients read; result the calibrated decision (score against threshold)
    assert results[0]["similarity"] > results[1]["similarity"]
    assert results[0]["score"] >= results[0]["threshold"] and results[1]["score"] < results[1]["threshold"]
    assert results[2]["similarity"] is None and results[2]["error"]["code"] == "no_speech"
    assert results[0]["error"] is None


def test_the_original_batch_verify_route_needs_the_verify_scope(make_key, upload):
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_X_API_KEY=make_key("enroll"))
    assert_error(api.post("/v1/batch-verify", {"reference": upload("a_snt1"), "tests": [upload("a_snt2")]},
                          format="multipart"), 403, "insufficient_scope")


def test_verify_takes_the_speakers_own_external_id_too(client, upload, enrolled):
    body = client.post("/api/v1/verify", {"external_id": "ext-a", "audio": upload("a_snt5")}, format="multipart").json()
    assert body["speaker_id"] == enrolled["a"] and body["accepted"] is True
    assert_error(client.post("/api/v1/verify", {"external_id": "nobody", "audio": upload("a_snt5")},
                             format="multipart"), 404, "speaker_not_found")
    assert_error(client.post("/api/v1/verify", {"audio": upload("a_snt5")}, format="multipart"), 400,
                 "validation_error")
    assert_error(client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "external_id": "ext-a",
                                                "audio": upload("a_snt5")}, format="multipart"), 400, "validation_error")


def test_figures_are_rounded_for_reading_and_a_negative_threshold_is_explained(client, upload, enrolled):
    body = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("b_snt5")},
                       format="multipart").json()
    for name in ("score", "raw_score", "threshold"):
        assert body[name] == round(body[name], 3)
    assert body["processing_time_ms"] == round(body["processing_time_ms"], 1)
    assert body["explanation"].startswith("Rejected: the score")
    if body["threshold"] < 0:
        assert "negative" in body["explanation"]
    enrolled_speaker = client.get(f"/api/v1/speakers/{enrolled['a']}").json()
    assert enrolled_speaker["enrollment_progress"]["speech_s"] == round(enrolled_speaker["enrollment_progress"]["speech_s"], 2)
