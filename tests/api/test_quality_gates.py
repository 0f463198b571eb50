"""Quality gates on real recordings: silence and noise never match; quiet, noisy, clipped and short recordings
are refused with their own codes, with the defaults measured in docs/accuracy.md."""
from __future__ import annotations

import numpy as np
import pytest
from apitools import assert_error
from django.conf import settings

from speakers.models import AuditEvent, Speaker

pytestmark = pytest.mark.django_db

RATE = 16_000


def verify(client, upload, speaker_id: str, source, **fields):
    return client.post("/api/v1/verify", {"speaker_id": speaker_id, "audio": upload(*source), **fields},
                       format="multipart")


def identify(client, upload, source, **fields):
    return client.post("/api/v1/identify", {"audio": upload(*source), **fields}, format="multipart")


def _speech_level(samples: np.ndarray) -> float:
    """Mean power (dBFS) of the 20 ms frames within 30 dB of the loudest: a rough active speech level."""
    frames = samples[: samples.size // 320 * 320].reshape(-1, 320).astype(np.float64)
    energy = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    return float(10 * np.log10(np.mean(10 ** (energy[energy > energy.max() - 30] / 10))))


@pytest.fixture
def sounds(speech):
    """Uploads that hold no voice, or a voice in bad condition: ``sounds["noise"]`` -> (bytes, filename)."""
    rng = np.random.default_rng(7)
    t = np.arange(3 * RATE) / RATE
    bursts = (np.sin(2 * np.pi * 2 * t) > 0).astype(np.float32)  # 250 ms on, 250 ms off
    a4 = speech.samples("a_snt4")
    noise_at = lambda snr_db: a4 + rng.standard_normal(a4.size).astype(np.float32) * 10 ** (  # noqa: E731
        (_speech_level(a4) - snr_db) / 20)
    made = {
        "silence": np.zeros(2 * RATE, dtype=np.float32),
        "noise": 0.1 * rng.standard_normal(3 * RATE).astype(np.float32),  # steady hiss, loud
        "hum": (0.3 * np.sin(2 * np.pi * 50 * t)).astype(np.float32),
        "noise_bursts": 0.1 * rng.standard_normal(3 * RATE).astype(np.float32) * bursts,  # passes the VAD
        "quiet": a4 * 10 ** (-22 / 20),  # speech at about -54 dBFS
        # the VAD's SNR estimate tracks the true SNR within about 1 dB (tests/inference/test_vad.py):
        "noisy": noise_at(-4.0),  # white noise 4 dB above the speech: under the 0 dB probe gate
        "somewhat_noisy": noise_at(6.5),  # between the 0 dB probe gate and the 8 dB enrollment gate
        "clipped": a4 * 30.0,
        "short": a4[: int(0.8 * RATE)],  # 0.8 s of speech
    }
    return {name: (speech.wav(samples), f"{name}.wav") for name, samples in made.items()}


@pytest.mark.parametrize("kind", ["silence", "noise", "hum"])
def test_a_silent_or_noise_only_upload_to_verify_is_refused_and_decides_nothing(client, upload, enrolled, sounds,
                                                                                 kind):
    error = assert_error(verify(client, upload, enrolled["a"], sounds[kind]), 422, "no_speech")
    assert error["detail"]["filename"] == f"{kind}.wav"
    assert not AuditEvent.objects.filter(action="verify").exists()
    assert Speaker.objects.get(pk=enrolled["a"]).last_verified_at is None


@pytest.mark.parametrize("kind", ["silence", "noise", "hum"])
def test_a_silent_or_noise_only_upload_to_identify_is_refused_and_matches_nobody(client, upload, enrolled, sounds,
                                                                                  kind):
    assert_error(identify(client, upload, sounds[kind]), 422, "no_speech")
    assert not AuditEvent.objects.filter(action="identify").exists()
    assert not Speaker.objects.filter(last_identified_at__isnull=False).exists()


@pytest.mark.parametrize("asnorm", ["false", "true"])
def test_noise_bursts_that_pass_the_voice_detector_are_nobody_and_nobody_s_voice(client, upload, enrolled, sounds,
                                                                                  asnorm):
    identified = identify(client, upload, sounds["noise_bursts"], asnorm=asnorm)
    assert identified.status_code == 200
    body = identified.json()
    assert body["match"] is None and body["no_match_reason"] == "below_threshold"
    for label in ("a", "b"):
        verified = verify(client, upload, enrolled[label], sounds["noise_bursts"], asnorm=asnorm).json()
        assert verified["accepted"] is False and verified["score"] < verified["threshold"]
        assert verified["raw_score"] < 0.3


def test_an_enrollment_of_silence_or_noise_stores_nothing(client, create_speaker, upload, sounds):
    speaker = create_speaker()
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": [upload(*sounds["silence"]), upload(*sounds["noise"])]}, format="multipart")
    error = assert_error(response, 422, "recordings_refused")
    assert [f["code"] for f in error["detail"]["files"]] == ["no_speech", "no_speech"]
    assert Speaker.objects.get(pk=speaker["id"]).enrollment_count == 0


def test_a_near_silent_recording_is_refused_as_too_quiet(client, upload, enrolled, sounds):
    error = assert_error(verify(client, upload, enrolled["a"], sounds["quiet"]), 422, "audio_too_quiet")
    detail = error["detail"]
    assert detail["min_speech_level_dbfs"] == settings.VOICEPRINT_MIN_SPEECH_LEVEL_DBFS == -48.0
    assert detail["speech_level_dbfs"] < detail["min_speech_level_dbfs"]


def test_the_quietest_real_recordings_are_not_too_quiet(client, upload, enrolled, speech):
    # a_snt4 is at about -33 dBFS; 14 dB down is as quiet as the quietest recordings of the shared set.
    quieter = speech.wav(speech.samples("a_snt4") * 10 ** (-14 / 20))
    body = verify(client, upload, enrolled["a"], (quieter, "quieter.wav")).json()
    assert body["accepted"] is True


def test_a_very_noisy_recording_is_refused_as_too_noisy(client, upload, enrolled, sounds):
    error = assert_error(verify(client, upload, enrolled["a"], sounds["noisy"]), 422, "audio_too_noisy")
    assert error["detail"]["min_snr_db"] == settings.VOICEPRINT_PROBE_MIN_SNR_DB == 0.0
    assert error["detail"]["snr_db"] < 0.0


def test_a_noisy_recording_is_still_a_probe_but_too_noisy_to_enroll(client, upload, enrolled, create_speaker,
                                                                     sounds):
    assert verify(client, upload, enrolled["a"], sounds["somewhat_noisy"]).status_code == 200
    speaker = create_speaker()
    error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                     {"audio": upload(*sounds["somewhat_noisy"])}, format="multipart"),
                         422, "audio_too_noisy")
    assert error["detail"]["min_snr_db"] == settings.VOICEPRINT_ENROLL_MIN_SNR_DB == 8.0
    assert 0.0 <= error["detail"]["snr_db"] < 8.0


def test_a_clipped_probe_is_refused(client, upload, enrolled, sounds):
    assert_error(verify(client, upload, enrolled["a"], sounds["clipped"]), 422, "audio_clipped")


def test_a_probe_needs_a_second_of_speech(client, upload, enrolled, sounds):
    error = assert_error(verify(client, upload, enrolled["a"], sounds["short"]), 422, "insufficient_speech")
    assert error["detail"]["min_speech_s"] == settings.VOICEPRINT_PROBE_MIN_SPEECH_S == 1.0
    assert error["detail"]["speech_s"] < 1.0
    assert_error(identify(client, upload, sounds["short"]), 422, "insufficient_speech")


def test_the_short_real_clips_are_long_enough_to_enroll_but_a_second_is_not(client, create_speaker, enroll, upload,
                                                                            speech):
    speaker = create_speaker()
    body = enroll(speaker["id"], "b_snt2").json()  # the shortest dev clip: 1.58 s of speech
    assert [e["filename"] for e in body["accepted"]] == ["b_snt2.wav"]
    assert body["accepted"][0]["speech_s"] >= settings.VOICEPRINT_ENROLL_MIN_SPEECH_S == 1.5
    short = speech.wav(speech.samples("a_snt1")[: int(1.2 * RATE)])
    error = assert_error(client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                                     {"audio": upload(short, "short.wav")}, format="multipart"),
                         422, "insufficient_speech")
    assert error["detail"]["min_speech_s"] == 1.5 and error["detail"]["speech_s"] < 1.5


@pytest.fixture
def forward_passes(embedder, monkeypatch):
    """Counts the network's forward passes in this process (the one step the gate must save): every path to the
    network (the fair queue's one job per window, diarization's batches) goes through ``embed_features``."""
    calls: list[int] = []
    real = embedder.embed_features

    def counted(windows):
        calls.append(len(windows))
        return real(windows)

    monkeypatch.setattr(embedder, "embed_features", counted)
    return calls


@pytest.mark.parametrize(("kind", "code"), [("quiet", "audio_too_quiet"), ("noisy", "audio_too_noisy"),
                                            ("clipped", "audio_clipped"), ("short", "insufficient_speech")])
def test_a_probe_the_gate_refuses_never_reaches_the_network(client, upload, enrolled, sounds, forward_passes, kind,
                                                             code):
    assert_error(verify(client, upload, enrolled["a"], sounds[kind]), 422, code)
    assert_error(identify(client, upload, sounds[kind]), 422, code)
    assert forward_passes == []


def test_an_enrollment_the_gate_refuses_never_reaches_the_network(client, create_speaker, upload, sounds,
                                                                   forward_passes):
    speaker = create_speaker(external_id="gated")
    response = client.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                           {"audio": [upload(*sounds["somewhat_noisy"]), upload(*sounds["clipped"])]},
                           format="multipart")
    assert_error(response, 422, "recordings_refused")
    assert forward_passes == []


def test_a_probe_that_passes_the_gate_takes_one_forward_pass(client, upload, enrolled, speech, forward_passes):
    response = verify(client, upload, enrolled["a"], (speech.bytes("a_snt5"), "a_snt5.wav"))
    assert response.status_code == 200
    assert forward_passes == [1]
