"""Replay detection (inference.fingerprint) on the shared real recordings.

A replay is a recording the service has already heard coming back as a probe, transformed or not; a
different recording of the same speaker is not one, however alike the voice and the room.
"""
from __future__ import annotations

import dataclasses
import io
import struct

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfiltfilt

from inference.audio import decode
from inference.config import FingerprintConfig
from inference.fingerprint import (
    FORMAT_VERSION,
    Fingerprint,
    FingerprintError,
    fingerprint,
    match,
    match_many,
    probe_hashes,
)

RATE = 16_000
CONFIG = FingerprintConfig()


@pytest.fixture(scope="module")
def voice(clips) -> np.ndarray:
    return clips.wave("a_snt1")


@pytest.fixture(scope="module")
def stored(voice) -> Fingerprint:
    """The print the service keeps: written to bytes and read back (no peaks)."""
    return Fingerprint.from_bytes(fingerprint(voice).to_bytes())


def _through_file(samples: np.ndarray, rate: int = RATE, **format_) -> np.ndarray:
    """``samples`` written by libsndfile as an upload would be, then decoded as the service decodes one."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, **format_)
    return decode(buffer.getvalue()).samples


def _noisy(samples: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    frames = samples[: len(samples) // 320 * 320].reshape(-1, 320).astype(np.float64)
    power = (frames ** 2).mean(axis=1)
    speech_power = power[power > power.max() * 1e-3].mean()
    noise = np.random.default_rng(seed).standard_normal(len(samples)) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return (samples + noise).astype(np.float32)


def test_an_identical_replay_is_matched_over_the_whole_recording(voice, stored):
    result = match(fingerprint(voice), stored)

    assert result.matched
    assert result.score >= 4 * CONFIG.min_score
    assert (result.speed, result.tempo, result.reversed) == (1.0, 1.0, False)
    assert abs(result.offset_s) < 0.02
    duration = len(voice) / RATE
    assert result.probe_span_s[0] < 0.5 and result.probe_span_s[1] > duration - 0.5
    assert result.stored_span_s[0] < 0.5 and result.stored_span_s[1] > duration - 0.5


@pytest.mark.parametrize("format_", [dict(format="OGG", subtype="VORBIS"), dict(format="MP3", subtype="MPEG_LAYER_III")],
                         ids=["vorbis", "mp3"])
def test_a_reencoded_replay_is_matched(voice, stored, format_):
    result = match(fingerprint(_through_file(voice, **format_)), stored)

    assert result.matched, result


def test_a_replay_squeezed_into_the_8_khz_telephone_band_is_matched(voice, stored):
    band = sosfiltfilt(butter(4, (300, 3400), btype="bandpass", fs=RATE, output="sos"), voice)
    phone = _through_file(resample_poly(band, 1, 2).astype(np.float32), 8_000, format="WAV", subtype="ULAW")

    result = match(fingerprint(phone), stored)

    assert result.matched, result


def test_a_replay_under_noise_at_10_db_is_matched(voice, stored):
    result = match(fingerprint(_noisy(voice, 10.0, seed=1)), stored)

    assert result.matched, result


def test_a_one_and_a_half_second_excerpt_is_matched_where_it_was_cut(voice, stored):
    start = int(0.8 * RATE)
    excerpt = voice[start:start + int(1.5 * RATE)]

    result = match(fingerprint(excerpt), stored)

    assert result.matched, result
    assert result.offset_s == pytest.approx(0.8, abs=0.03)
    assert 0.7 <= result.stored_span_s[0] and result.stored_span_s[1] <= 2.4


def test_a_replay_played_backwards_is_matched_as_such(voice, stored):
    result = match(fingerprint(voice[::-1].copy()), stored)

    assert result.matched and result.reversed, result


def test_a_replay_sped_up_by_four_percent_is_matched_at_that_speed(voice, stored):
    faster = resample_poly(voice, 25, 26).astype(np.float32)  # played 4 % fast: pitch and time

    result = match(fingerprint(faster), stored)

    assert result.matched, result
    assert result.speed == pytest.approx(1.04, abs=0.015) and not result.reversed


def test_shuffled_half_second_snippets_are_matched_by_their_segments(voice, stored):
    size = RATE // 2
    pieces = [voice[i:i + size] for i in range(0, len(voice), size)]
    shuffled = np.concatenate([pieces[i] for i in np.random.default_rng(3).permutation(len(pieces))])

    result = match(fingerprint(shuffled), stored)

    assert result.matched, result
    assert result.segments >= 2


def test_other_recordings_of_the_same_speaker_are_not_replays(clips, stored):
    for name in ("a_snt2", "a_snt3", "a_snt4", "a_snt5", "a_snt6"):
        result = match(fingerprint(clips.wave(name)), stored)
        assert not result.matched, (name, result)
        assert result.score < CONFIG.min_score / 2


def test_recordings_of_one_reader_are_not_replays_of_each_other(clips):
    paths = sorted((clips.multi_dir / "ls-19").glob("*.wav"))[:6]
    prints = [fingerprint(clips.wave(path)) for path in paths]

    for index, probe in enumerate(prints):
        results = match_many(probe, prints)
        assert [result.matched for result in results] == [i == index for i in range(len(prints))]


def test_match_many_decides_each_print_as_match_does(clips, voice, stored):
    others = [fingerprint(clips.wave(name)) for name in ("a_snt2", "b_snt1")]
    probe = fingerprint(voice[RATE // 2:])
    query = probe_hashes(probe)

    many = match_many(query, [others[0], stored, others[1]])

    assert [result.matched for result in many] == [False, True, False]
    assert many[1] == match(probe, stored)


def test_a_print_survives_a_round_trip_through_bytes(voice):
    original = fingerprint(voice)
    data = original.to_bytes()

    restored = Fingerprint.from_bytes(data)

    assert data[:5] == b"VPFP" + bytes([FORMAT_VERSION])
    assert np.array_equal(restored.hashes, original.hashes) and np.array_equal(restored.times, original.times)
    assert restored.frames == original.frames and restored.digest == original.digest
    assert restored.to_bytes() == data
    assert match(restored, restored).matched


@pytest.mark.parametrize("damage", ["empty", "magic", "version", "truncated", "disorder"])
def test_it_refuses_bytes_that_are_not_a_print(voice, damage):
    data = bytearray(fingerprint(voice).to_bytes())
    if damage == "empty":
        data = bytearray()
    elif damage == "magic":
        data[:4] = b"RIFF"
    elif damage == "version":
        data[4] = FORMAT_VERSION + 1
    elif damage == "truncated":
        data = data[:-3]
    else:
        count = struct.unpack_from("<I", data, 13)[0]
        data[17:17 + 4 * count] = data[17:17 + 4 * count][::-1]

    with pytest.raises(FingerprintError) as caught:
        Fingerprint.from_bytes(bytes(data))

    assert caught.value.code == "fingerprint_invalid"


def test_it_refuses_to_compare_prints_made_with_other_parameters(voice, stored):
    other = dataclasses.replace(CONFIG, bins_per_octave=CONFIG.bins_per_octave + 1)

    with pytest.raises(FingerprintError):
        match(fingerprint(voice, other), stored)


def test_the_print_holds_no_audio(clips):
    """A few bytes per second of pair hashes and anchor times: no level (a louder or quieter copy
    gives the same print), no samples, no spectrum."""
    samples = clips.wave(clips.multi_dir / "ls-19" / "19-198-0015.wav")
    data = fingerprint(samples).to_bytes()
    seconds = len(samples) / RATE
    count = (len(data) - 17) // 6

    assert len(data) == 17 + 6 * count
    bound = 2 * CONFIG.peaks_per_second * CONFIG.fan_out * 6  # at most 2 x peaks_per_second in any second
    assert len(data) - 17 <= bound * seconds
    assert len(data) < 0.1 * len(samples) * 2  # under a tenth of the 16-bit PCM
    assert fingerprint(samples * np.float32(0.1)).to_bytes() == data


def test_it_fingerprints_a_silent_or_tiny_recording_without_failing():
    silent = fingerprint(np.zeros(RATE, dtype=np.float32))
    tiny = fingerprint(np.zeros(10, dtype=np.float32))

    assert len(silent.hashes) == 0 and len(tiny.hashes) == 0
    assert not match(silent, silent).matched
