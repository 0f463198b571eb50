"""Speech activity detection and the quality figures: speech is found, silence, hiss and hum are
not speech, long pauses are shortened without losing speech, and SNR / clipping move the right way."""
from __future__ import annotations

import numpy as np
import pytest

from inference.config import EngineConfig
from inference.embedder import prepare_audio, prepare_waveform
from inference.errors import NoSpeechError

CONFIG = EngineConfig()
RATE = 16_000


@pytest.mark.parametrize("name", ["a_snt1", "a_snt4", "b_snt3", "b_snt6"])
def test_most_of_a_speech_clip_is_speech(clips, name) -> None:
    prepared = prepare_audio(clips.bytes(name), CONFIG)
    duration = clips.wave(name).size / RATE
    assert prepared.duration_s == pytest.approx(duration)
    assert 0.7 * duration < prepared.speech_s <= duration + 1e-9
    assert prepared.quality.speech_ratio == pytest.approx(prepared.speech_s / duration)
    assert prepared.segments and all(0.0 <= a < b <= duration + 1e-9 for a, b in prepared.segments)


def _no_speech(samples: np.ndarray) -> NoSpeechError:
    with pytest.raises(NoSpeechError) as caught:
        prepare_waveform(samples.astype(np.float32), RATE, CONFIG)
    assert caught.value.code == "no_speech"
    assert caught.value.detail["speech_s"] < CONFIG.vad.min_speech_s
    return caught.value


def test_digital_silence_is_no_speech(clips) -> None:
    error = _no_speech(np.zeros(2 * RATE))
    assert error.detail["duration_s"] == 2.0
    # and through the whole upload path too: a silent WAV never becomes an embedding
    with pytest.raises(NoSpeechError):
        prepare_audio(clips.encode(np.zeros(2 * RATE, dtype=np.float32)), CONFIG)


def test_white_noise_at_minus_20_dbfs_is_no_speech() -> None:
    noise = np.random.default_rng(1).standard_normal(3 * RATE) * 10 ** (-20 / 20)
    _no_speech(noise)


def test_a_loud_50_hz_hum_is_no_speech() -> None:
    t = np.arange(3 * RATE) / RATE
    _no_speech(0.9 * np.sin(2 * np.pi * 50 * t))


def test_a_long_pause_is_shortened_to_keep_silence_without_losing_speech(clips) -> None:
    wave = clips.wave("a_snt1")
    original = prepare_waveform(wave, RATE, CONFIG)
    # put 3 s of silence into the clip's own short pause between its first two segments
    assert len(original.segments) >= 2
    at = int((original.segments[0][1] + original.segments[1][0]) / 2 * RATE)
    paused = np.concatenate([wave[:at], np.zeros(3 * RATE, dtype=np.float32), wave[at:]])
    prepared = prepare_waveform(paused, RATE, CONFIG)
    assert prepared.duration_s == pytest.approx(wave.size / RATE + 3.0)
    kept_s = prepared.speech.size / RATE
    assert kept_s == pytest.approx(original.speech.size / RATE + CONFIG.vad.keep_silence_s, abs=0.1)
    assert prepared.speech_s == pytest.approx(original.speech_s, abs=0.1)


def test_noise_lowers_the_snr(clips) -> None:
    wave = clips.wave("a_snt1").astype(np.float64)
    noise = np.random.default_rng(2).standard_normal(wave.size)
    noise *= np.sqrt(np.mean(wave**2) / np.mean(noise**2) / 10 ** (5 / 10))  # 5 dB SNR
    clean = prepare_waveform(wave, RATE, CONFIG).quality.snr_db
    noisy = prepare_waveform(wave + noise, RATE, CONFIG).quality.snr_db
    assert clean > noisy + 20.0
    assert noisy < 15.0


def test_a_clipped_recording_reports_its_clipping(clips) -> None:
    wave = clips.wave("a_snt1")
    clipped = np.clip(wave * 20.0, -1.0, 1.0)
    assert prepare_waveform(clipped, RATE, CONFIG).quality.clipping_ratio > 0.01
    assert prepare_waveform(wave, RATE, CONFIG).quality.clipping_ratio < 1e-4
    # the decoder counts the same thing on an upload (16-bit full scale is 0.99997)
    assert prepare_audio(clips.encode(clipped), CONFIG).quality.clipping_ratio > 0.01
    assert prepare_audio(clips.bytes("a_snt1"), CONFIG).quality.clipping_ratio < 1e-4
