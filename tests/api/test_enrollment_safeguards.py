"""Enrollment safeguards: progress towards a usable voiceprint, incomplete voiceprints are never compared,
and a recording of somebody else is refused as inconsistent."""
from __future__ import annotations

import math

import pytest
from apitools import assert_error
from django.conf import settings

from speakers.models import AuditEvent, Enrollment, IndexChange, Speaker

pytestmark = pytest.mark.django_db


def _state(speaker_id: str) -> tuple:
    speaker = Speaker.objects.get(pk=speaker_id)
    return (speaker.enrollment_count, bytes(speaker.voiceprint_ciphertext or b""), speaker.voiceprint_speech_s,
            Enrollment.objects.filter(speaker_id=speaker_id).count(), IndexChange.objects.count())


def _verify(client, upload, speaker_id: str, name: str):
    return client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(name)}, format="multipart")


def test_enrollment_progress_counts_the_speech_until_the_voiceprint_is_complete(client, create_speaker, enroll):
    speaker = create_speaker()
    assert speaker["enrollment_progress"] == {"speech_s": 0.0, "required_s": 6.0, "complete": False,
                                              "text": "0.0 of 6 s"}
    total = 0.0
    for name, complete in (("b_snt1", False), ("b_snt2", False), ("b_snt3", False), ("b_snt4", True)):
        body = enroll(speaker["id"], name).json()
        total += body["accepted"][0]["speech_s"]
        progress = body["enrollment_progress"]
        assert progress == body["speaker"]["enrollment_progress"]
        assert progress["speech_s"] == pytest.approx(total, abs=0.011)
        assert progress["required_s"] == settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S == 6.0
        assert progress["complete"] is complete
        shown = math.floor(progress["speech_s"] * 10 + 0.5 + 1e-9) / 10  # rounded half up...
        if not complete and shown >= 6.0:
            shown = math.floor(progress["speech_s"] * 10 + 1e-6) / 10  # ...but never "6.0" before it is complete
        assert progress["text"] == (f"{shown:.1f} s (6 s needed)" if complete else f"{shown:.1f} of 6 s")
    assert client.get(f"/api/v1/speakers/{speaker['id']}").json()["enrollment_progress"]["complete"] is True
    assert AuditEvent.objects.filter(action="enroll", detail__complete=True).count() == 1


def test_verifying_against_an_incomplete_voiceprint_is_refused_until_enrollment_is_complete(client, upload,
                                                                                           create_speaker, enroll):
    speaker = create_speaker()
    enroll(speaker["id"], "b_snt1", "b_snt2")
    error = assert_error(_verify(client, upload, speaker["id"], "b_snt5"), 409, "enrollment_incomplete")
    assert error["detail"]["enrollment_progress"]["complete"] is False
    assert error["detail"]["enrollment_progress"]["required_s"] == 6.0
    assert "of 6 s" in error["message"]
    assert not AuditEvent.objects.filter(action="verify").exists()

    enroll(speaker["id"], "b_snt3", "b_snt4")
    body = _verify(client, upload, speaker["id"], "b_snt5").json()
    assert body["accepted"] is True


def test_identify_never_matches_an_incomplete_voiceprint(client, upload, create_speaker, enroll):
    alice = create_speaker()
    enroll(alice["id"], "a_snt1", "a_snt2", "a_snt3")
    bob = create_speaker()
    enroll(bob["id"], "b_snt1", "b_snt2")  # 3.4 s of speech: not yet a usable voiceprint
    body = client.post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart").json()
    assert [c["speaker_id"] for c in body["candidates"]] == [alice["id"]]
    assert body["match"] is None

    enroll(bob["id"], "b_snt3", "b_snt4")
    body = client.post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart").json()
    assert body["match"]["speaker_id"] == bob["id"]


def test_a_recording_of_another_person_is_refused_as_inconsistent_and_changes_nothing(client, upload, enrolled):
    before = _state(enrolled["a"])
    response = client.post(f"/api/v1/speakers/{enrolled['a']}/enrollments", {"audio": upload("b_snt1")},
                           format="multipart")
    error = assert_error(response, 422, "enrollment_inconsistent")
    assert error["detail"]["compared_with"] == "voiceprint" and error["detail"]["filename"] == "b_snt1.wav"
    assert error["detail"]["score"] < error["detail"]["threshold"] == settings.VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD
    assert _state(enrolled["a"]) == before


def test_even_a_first_recording_of_the_right_person_is_checked_against_the_voiceprint(create_speaker, enroll):
    speaker = create_speaker()
    assert enroll(speaker["id"], "a_snt1").status_code == 201  # nothing to compare with yet
    assert_error(enroll(speaker["id"], "b_snt1"), 422, "enrollment_inconsistent")
    assert enroll(speaker["id"], "a_snt2").status_code == 201


def test_in_a_first_upload_a_recording_unlike_the_others_is_refused_and_the_rest_enrolled(create_speaker, enroll):
    speaker = create_speaker()
    response = enroll(speaker["id"], "a_snt1", "b_snt1", "a_snt2")
    assert response.status_code == 201
    body = response.json()
    assert [e["filename"] for e in body["accepted"]] == ["a_snt1.wav", "a_snt2.wav"]
    [refused] = body["refused"]
    assert refused["filename"] == "b_snt1.wav" and refused["error"]["code"] == "enrollment_inconsistent"
    assert refused["error"]["detail"]["compared_with"] == "other_recordings"


def test_two_disagreeing_recordings_in_a_first_upload_are_both_refused(create_speaker, enroll):
    speaker = create_speaker()
    before = _state(speaker["id"])
    error = assert_error(enroll(speaker["id"], "a_snt1", "b_snt1"), 422, "recordings_refused")
    assert [f["code"] for f in error["detail"]["files"]] == ["enrollment_inconsistent"] * 2
    assert _state(speaker["id"]) == before


def test_new_recordings_cannot_outvote_the_existing_voiceprint(create_speaker, enroll):
    speaker = create_speaker()
    enroll(speaker["id"], "a_snt1")
    before = _state(speaker["id"])
    error = assert_error(enroll(speaker["id"], "b_snt1", "b_snt2", "b_snt3"), 422, "recordings_refused")
    assert {f["detail"]["compared_with"] for f in error["detail"]["files"]} == {"voiceprint"}
    assert _state(speaker["id"]) == before


def test_a_voiceprint_of_an_older_model_is_rebuilt_from_new_recordings_not_compared(client, upload, enrolled):
    Speaker.objects.filter(pk=enrolled["a"]).update(voiceprint_model_version="older-model@00000000")
    Enrollment.objects.filter(speaker_id=enrolled["a"]).update(model_version="older-model@00000000")
    assert_error(_verify(client, upload, enrolled["a"], "a_snt4"), 409, "model_version_mismatch")
    # Re-enrolling with the current model starts a new voiceprint from the new recordings only.
    body = client.post(f"/api/v1/speakers/{enrolled['a']}/enrollments", {"audio": upload("a_snt1")},
                       format="multipart").json()
    assert body["speaker"]["model_version"] != "older-model@00000000"
    assert body["enrollment_progress"]["complete"] is False
    assert body["enrollment_progress"]["speech_s"] == pytest.approx(body["accepted"][0]["speech_s"], abs=0.011)
    assert_error(_verify(client, upload, enrolled["a"], "a_snt4"), 409, "enrollment_incomplete")
