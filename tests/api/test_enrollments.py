"""Enrollment: accepted recordings become encrypted embeddings and a voiceprint; refused ones change nothing."""
from __future__ import annotations

import numpy as np
import pytest
from apitools import assert_error
from django.test import override_settings

from speakers.models import AuditEvent, Enrollment, IndexChange, Speaker

pytestmark = pytest.mark.django_db


def _state(speaker_id: str) -> tuple:
    """Everything an enrollment may change, to prove a refusal changed nothing."""
    speaker = Speaker.objects.get(pk=speaker_id)
    return (speaker.enrollment_count, bytes(speaker.voiceprint_ciphertext or b""),
            Enrollment.objects.filter(speaker_id=speaker_id).count(), IndexChange.objects.count())


def test_enrolling_three_recordings_stores_three_enrollments_and_a_voiceprint(client, create_speaker, enroll,
                                                                           embedder):
    speaker = create_speaker(external_id="a")
    response = enroll(speaker["id"], "a_snt1", "a_snt2", "a_snt3")
    assert response.status_code == 201
    body = response.json()
    assert len(body["accepted"]) == 3 and body["refused"] == []
    assert body["speaker"]["enrollment_count"] == 3
    assert body["speaker"]["enrolled"] is True
    assert body["speaker"]["model_version"] == embedder.model_version
    assert body["processing_time_ms"] > 0
    first = body["accepted"][0]
    assert first["filename"] == "a_snt1.wav"
    assert first["model_version"] == embedder.model_version
    assert 1.0 < first["duration_s"] < 4.0 and 0 < first["speech_s"] <= first["duration_s"]
    assert set(first["quality"]) == {"clipping_ratio", "snr_db", "speech_ratio"}
    assert Enrollment.objects.filter(speaker_id=speaker["id"]).count() == 3
    assert AuditEvent.objects.filter(action="enroll", speaker_id=speaker["id"], decision="accepted").exists()


def test_a_second_enrollment_adds_to_the_voiceprint(create_speaker, enroll):
    speaker = create_speaker()
    assert enroll(speaker["id"], "a_snt1").status_code == 201
    before = bytes(Speaker.objects.get(pk=speaker["id"]).voiceprint_ciphertext)
    body = enroll(speaker["id"], "a_snt2").json()
    assert body["speaker"]["enrollment_count"] == 2
    assert bytes(Speaker.objects.get(pk=speaker["id"]).voiceprint_ciphertext) != before


def test_listing_enrollments_shows_metadata_only(client, enrolled):
    response = client.get(f"/api/v1/speakers/{enrolled['a']}/enrollments")
    assert response.status_code == 200
    rows = response.json()
    assert len(rows) == 3
    assert set(rows[0]) == {"id", "speaker_id", "filename", "model_version", "duration_s", "speech_s",
                            "quality", "created_at"}


def test_deleting_an_enrollment_recomputes_the_voiceprint_and_the_last_one_clears_it(client, create_speaker,
                                                                                   enroll, upload):
    speaker = create_speaker()
    accepted = enroll(speaker["id"], "a_snt1", "a_snt2").json()["accepted"]
    url = f"/api/v1/speakers/{speaker['id']}/enrollments"
    assert client.delete(f"{url}/{accepted[0]['id']}").status_code == 204
    row = Speaker.objects.get(pk=speaker["id"])
    assert row.enrollment_count == 1 and row.has_voiceprint
    assert client.delete(f"{url}/{accepted[1]['id']}").status_code == 204
    row.refresh_from_db()
    assert row.enrollment_count == 0 and not row.has_voiceprint and row.voiceprint_model_version == ""
    assert_error(client.post("/api/v1/verify", {"speaker_id": speaker["id"], "audio": upload("a_snt3")},
                             format="multipart"), 409, "speaker_not_enrolled")
    assert_error(client.delete(f"{url}/{accepted[1]['id']}"), 404, "enrollment_not_found")


def test_it_refuses_a_file_that_is_not_audio_and_changes_nothing(client, create_speaker, upload):
    speaker = create_speaker()
    before = _state(speaker["id"])
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": upload(b"%PDF-1.4 definitely not a recording", "cv.pdf")}, format="multipart")
    error = assert_error(response, 422, "audio_not_audio")
    assert error["detail"]["filename"] == "cv.pdf"
    assert _state(speaker["id"]) == before


def test_it_refuses_an_empty_file(client, create_speaker, upload):
    speaker = create_speaker()
    assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                             {"audio": upload(b"", "empty.wav")}, format="multipart"), 422, "audio_empty")


def test_it_refuses_silence_as_no_speech(client, create_speaker, upload, speech):
    speaker = create_speaker()
    before = _state(speaker["id"])
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                             {"audio": upload(silence, "silence.wav")}, format="multipart"), 422, "no_speech")
    assert _state(speaker["id"]) == before


def test_it_refuses_a_recording_that_is_too_short(client, create_speaker, upload, speech):
    speaker = create_speaker()
    short = speech.wav(speech.samples("a_snt1")[: int(0.3 * speech.sample_rate)])
    assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                             {"audio": upload(short, "short.wav")}, format="multipart"), 422, "audio_too_short")


def test_it_refuses_a_recording_longer_than_the_limit_with_413(client, create_speaker, upload, speech):
    speaker = create_speaker()
    long = speech.wav(np.tile(speech.samples("a_snt1"), 25))  # ~72 s > VOICEPRINT_MAX_AUDIO_S = 60
    error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                     {"audio": upload(long, "long.wav")}, format="multipart"), 413, "audio_too_long")
    assert error["detail"]["max_duration_s"] == 60.0


def test_it_refuses_a_clipped_recording(client, create_speaker, upload, speech):
    speaker = create_speaker()
    clipped = speech.wav(speech.samples("a_snt1") * 30.0)
    error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                     {"audio": upload(clipped, "loud.wav")}, format="multipart"), 422, "audio_clipped")
    assert error["detail"]["clipping_ratio"] > error["detail"]["max_clipping_ratio"]


def test_it_refuses_a_recording_with_too_little_speech_to_enroll(client, create_speaker, upload):
    speaker = create_speaker()
    with override_settings(VOICEPRINT_ENROLL_MIN_SPEECH_S=5.0):
        error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                         {"audio": upload("a_snt1")}, format="multipart"), 422, "insufficient_speech")
    assert error["detail"]["min_speech_s"] == 5.0 and 0 < error["detail"]["speech_s"] < 5.0


def test_good_recordings_are_kept_and_bad_ones_reported_in_one_request(client, create_speaker, upload, speech):
    speaker = create_speaker()
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": [upload("a_snt1"), upload(silence, "silence.wav"), upload("a_snt2")]},
                           format="multipart")
    assert response.status_code == 201
    body = response.json()
    assert [e["filename"] for e in body["accepted"]] == ["a_snt1.wav", "a_snt2.wav"]
    assert [(r["filename"], r["error"]["code"]) for r in body["refused"]] == [("silence.wav", "no_speech")]
    assert body["speaker"]["enrollment_count"] == 2


def test_when_every_recording_is_refused_each_error_is_listed_and_nothing_changes(client, create_speaker, upload,
                                                                                 speech):
    speaker = create_speaker()
    before = _state(speaker["id"])
    silence = speech.wav(np.zeros(2 * speech.sample_rate, dtype=np.float32))
    error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                     {"audio": [upload(silence, "silence.wav"), upload(b"junk", "junk.wav")]},
                                     format="multipart"), 422, "recordings_refused")
    assert [f["code"] for f in error["detail"]["files"]] in (
        ["no_speech", "audio_not_audio"], ["no_speech", "audio_decode_error"])
    assert _state(speaker["id"]) == before


def test_an_enrollment_without_audio_is_a_validation_error(client, create_speaker):
    speaker = create_speaker()
    error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments", {}, format="multipart"),
                         400, "validation_error")
    assert "audio" in error["detail"]


def test_json_instead_of_an_upload_is_unsupported_media_type(client, create_speaker):
    speaker = create_speaker()
    assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments", {"audio": "x"}, format="json"),
                 415, "unsupported_media_type")


def test_enrolling_an_unknown_speaker_is_404(client, upload):
    assert_error(client.post("/api/v1/speakers/5f0c1d8e-0000-4000-8000-000000000000/enrollments",
                             {"audio": upload("a_snt1")}, format="multipart"), 404, "speaker_not_found")


def test_an_oversized_upload_is_refused_with_413_and_stores_nothing(client, create_speaker, upload):
    speaker = create_speaker()
    with override_settings(VOICEPRINT_MAX_UPLOAD_BYTES=50_000):  # a_snt1.wav is ~90 kB
        error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                         {"audio": upload("a_snt1")}, format="multipart"), 413, "upload_too_large")
    assert error["detail"]["max_upload_bytes"] == 50_000
    assert Enrollment.objects.count() == 0


def test_a_request_body_too_large_for_any_upload_is_refused_before_it_is_read(client, create_speaker, upload):
    speaker = create_speaker()
    with override_settings(VOICEPRINT_MAX_UPLOAD_BYTES=1024, VOICEPRINT_MAX_FILES=2):
        error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                         {"audio": upload(b"\0" * 1_200_000, "big.wav")}, format="multipart"),
                             413, "upload_too_large")
    assert error["detail"]["content_length"] > error["detail"]["max_request_bytes"]


def test_too_many_files_in_one_request_are_refused_with_413(client, create_speaker, upload):
    speaker = create_speaker()
    with override_settings(VOICEPRINT_MAX_FILES=2):
        error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                         {"audio": [upload("a_snt1"), upload("a_snt2"), upload("a_snt3")]},
                                         format="multipart"), 413, "too_many_files")
    assert error["detail"] == {"max_files": 2}
    assert Enrollment.objects.count() == 0
