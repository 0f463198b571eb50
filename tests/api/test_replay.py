"""Replays of audio the service has heard are refused: enrollment files and accepted probes sent back, re-encoded
or cut; fresh recordings of the same person are not."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from apitools import assert_error
from scipy.signal import resample_poly

from speakers.models import AuditEvent, ReplayPrint, Speaker

pytestmark = pytest.mark.django_db


def verify(client, upload, speaker_id: str, source, filename: str = "probe.wav"):
    data = upload(source) if isinstance(source, str) else upload(source, filename)
    return client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": data}, format="multipart")


def _telephone(speech, name: str) -> bytes:
    """The recording through an 8 kHz line: down to 8 kHz, stored as 8 kHz WAV."""
    narrow = resample_poly(speech.samples(name), 1, 2).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, narrow, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _excerpt(speech, name: str, start_s: float, seconds: float) -> bytes:
    samples = speech.samples(name)[int(start_s * 16000):int((start_s + seconds) * 16000)]
    return speech.wav(samples)


def test_every_enrollment_recording_is_fingerprinted_encrypted(enrolled):
    rows = ReplayPrint.objects.filter(speaker_id=enrolled["a"])
    assert rows.count() == 3 and set(rows.values_list("kind", flat=True)) == {"enrollment"}
    assert all(row.enrollment_id is not None and bytes(row.ciphertext)[:1] == b"\x01" for row in rows)
    speaker = Speaker.objects.get(pk=enrolled["a"])
    assert {row.key_id for row in rows} == {speaker.voiceprint_key_id}  # the tenant's data key


def test_an_enrollment_file_sent_back_as_a_probe_is_refused_and_audited(client, upload, enrolled):
    error = assert_error(verify(client, upload, enrolled["a"], "a_snt1"), 403, "replay_detected")
    assert error["detail"]["matched_recording"] == "enrollment" and error["detail"]["enrollment_id"]
    event = AuditEvent.objects.get(action="replay_detected")
    assert str(event.speaker_id) == enrolled["a"] and event.detail["during"] == "verify"
    assert event.detail["matched_enrollment"] == error["detail"]["enrollment_id"]
    assert not AuditEvent.objects.filter(action="verify").exists()  # no decision was made


@pytest.mark.parametrize("kind", ["telephone", "excerpt"])
def test_a_re_encoded_or_cut_enrollment_file_is_refused_too(client, upload, enrolled, speech, kind):
    data = _telephone(speech, "a_snt2") if kind == "telephone" else _excerpt(speech, "a_snt2", 0.3, 1.6)
    assert_error(verify(client, upload, enrolled["a"], data, f"{kind}.wav"), 403, "replay_detected")


def test_fresh_recordings_of_the_same_person_are_never_taken_for_replays(client, upload, enrolled):
    for name in ("a_snt4", "a_snt5", "a_snt6"):
        body = verify(client, upload, enrolled["a"], name).json()
        assert body["accepted"] is True, (name, body)
    assert not AuditEvent.objects.filter(action="replay_detected").exists()


def test_an_accepted_probe_is_remembered_and_its_replay_refused(client, upload, enrolled, settings):
    settings.VOICEPRINT_REPLAY_RECENT_PROBES = 20
    assert verify(client, upload, enrolled["a"], "a_snt5").json()["accepted"] is True
    assert ReplayPrint.objects.filter(speaker_id=enrolled["a"], kind="probe").count() == 1
    error = assert_error(verify(client, upload, enrolled["a"], "a_snt5"), 403, "replay_detected")
    assert error["detail"]["matched_recording"] == "probe"


def test_only_the_last_accepted_probes_are_kept(client, upload, enrolled, settings):
    settings.VOICEPRINT_REPLAY_RECENT_PROBES = 2
    for name in ("a_snt4", "a_snt5", "a_snt6"):
        assert verify(client, upload, enrolled["a"], name).json()["accepted"] is True
    kept = ReplayPrint.objects.filter(speaker_id=enrolled["a"], kind="probe")
    assert kept.count() == 2
    assert verify(client, upload, enrolled["a"], "a_snt4").json()["accepted"] is True  # forgotten: fresh again


def test_a_rejected_probe_is_not_remembered(client, upload, enrolled):
    assert verify(client, upload, enrolled["a"], "b_snt5").json()["accepted"] is False
    assert not ReplayPrint.objects.filter(speaker_id=enrolled["a"], kind="probe").exists()


def test_identify_refuses_a_replay_of_a_candidates_recording_without_telling_any_score(client, upload, enrolled):
    response = client.post("/api/v1/identify", {"audio": upload("b_snt2")}, format="multipart")
    error = assert_error(response, 403, "replay_detected")
    assert "candidates" not in response.json() and error["detail"]["speaker_id"] == enrolled["b"]
    assert AuditEvent.objects.get(action="replay_detected").detail["during"] == "identify"
    fresh = client.post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart").json()
    assert fresh["match"]["speaker_id"] == enrolled["b"]


def test_the_same_recording_enrolled_twice_adds_nothing(client, upload, enrolled):
    response = client.post(f"/api/v1/speakers/{enrolled['a']}/enrollments",
                           {"audio": [upload("a_snt1"), upload("a_snt4")]}, format="multipart")
    assert response.status_code == 201
    body = response.json()
    assert [r["filename"] for r in body["refused"]] == ["a_snt1.wav"]
    assert body["refused"][0]["error"]["code"] == "replay_detected" and len(body["accepted"]) == 1


def test_replay_checks_can_be_turned_off(client, upload, enrolled, settings):
    settings.VOICEPRINT_REPLAY_CHECK = False
    assert verify(client, upload, enrolled["a"], "a_snt1").json()["accepted"] is True


def test_withdrawing_consent_deletes_the_fingerprints(client, upload, enrolled, settings):
    settings.VOICEPRINT_REPLAY_RECENT_PROBES = 20
    verify(client, upload, enrolled["a"], "a_snt5")
    assert ReplayPrint.objects.filter(speaker_id=enrolled["a"]).count() == 4
    client.delete(f"/api/v1/speakers/{enrolled['a']}/consent")
    assert not ReplayPrint.objects.filter(speaker_id=enrolled["a"]).exists()
    export = client.get(f"/api/v1/speakers/{enrolled['b']}/export").json()
    assert export["recordings_fingerprinted"]["count"] == 4 and "ciphertext" not in str(export)


def test_a_streamed_replay_ends_the_session(enrolled, speech, make_key):
    """The live route checks each scored window against the speaker's stored recordings."""
    from speakers.audit import Actor
    from speakers.exceptions import ReplayDetected
    from speakers.models import ApiKey
    from speakers.services.streaming import stream_window_process

    key = ApiKey.objects.get(prefix=make_key("verify").split(".")[0][3:])
    speaker = Speaker.objects.get(pk=enrolled["a"])

    class _Window:
        purpose, sample_rate, seq = "score", 16000, 1
        samples = speech.samples("a_snt3")

    with pytest.raises(ReplayDetected):
        stream_window_process(session_reference=None, window=_Window(), asnorm=None, tenant=speaker.tenant,
                              replay_of=speaker, actor=Actor.from_api_key(key))
