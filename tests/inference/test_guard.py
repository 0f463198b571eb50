"""No crafted recording embeds to a vector that passes for somebody else's voice."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from inference import AudioError, EngineConfig, features
from inference.errors import AudioOutOfRangeError, DegenerateAudioError
from inference.gates import GateLimits, gate_refusal
from inference.guard import impulse_dominance_db
from inference.quality_calibration import SideQuality, shipped_calibration
from tests.adversarial import ADVERSARIAL

FAR_TARGET = 0.01  # the service's default operating point


# The service's default probe gates (voiceprint_project/settings.py): what they refuse never decides.
PROBE_GATES = GateLimits(max_clipping_ratio=0.05, min_speech_level_dbfs=-48.0, min_snr_db=0.0, min_speech_s=1.0)


def _embed_or_refuse(embedder, data: bytes):
    try:
        result = embedder.embed(data)
    except AudioError as error:
        return error.code
    refusal = gate_refusal(clipping_ratio=result.quality.clipping_ratio,
                           speech_level_dbfs=result.quality.speech_level_dbfs, snr_db=result.quality.snr_db,
                           speech_s=result.speech_s, limits=PROBE_GATES)
    return result if refusal is None else refusal.code


def _side(result) -> SideQuality:
    return SideQuality(speech_s=result.speech_s, snr_db=result.quality.snr_db, bandwidth_hz=result.quality.bandwidth_hz)


def _accepted(embedder, enroll, probe) -> bool:
    """The shipped calibration's decision on this pair, as the service makes it."""
    calibration = shipped_calibration(embedder.model_version)
    return calibration.verify(scale="cosine", score=float(enroll.vector @ probe.vector), enroll=_side(enroll),
                              probe=_side(probe), far=FAR_TARGET).accepted


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_a_crafted_recording_is_refused_or_matches_no_other_speaker(embedder, clips, dev_results, name) -> None:
    make = ADVERSARIAL[name]
    mine = _embed_or_refuse(embedder, make(clips.wave("a_snt1")))
    theirs = _embed_or_refuse(embedder, make(clips.wave("b_snt1")))
    for outcome in (mine, theirs):
        if isinstance(outcome, str):
            assert outcome in {"audio_out_of_range", "audio_degenerate", "no_speech", "audio_unsupported_format",
                               "audio_clipped"}
    if not isinstance(mine, str):
        # neither as a probe against b's real recordings, nor as a voiceprint they are checked against
        for other in (dev_results[f"b_snt{i}"] for i in range(1, 7)):
            assert not _accepted(embedder, other, mine) and not _accepted(embedder, mine, other)
        if not isinstance(theirs, str):
            assert not _accepted(embedder, mine, theirs) and not _accepted(embedder, theirs, mine)


def test_a_float_sample_beyond_full_scale_is_refused_before_anything_is_computed(clips) -> None:
    from inference import audio

    speech = clips.wave("a_snt1").copy()
    speech[100] = 1.5
    buffer = io.BytesIO()
    sf.write(buffer, speech, 16_000, format="WAV", subtype="FLOAT")
    with pytest.raises(AudioOutOfRangeError) as caught:
        audio.decode(buffer.getvalue())
    assert caught.value.code == "audio_out_of_range"
    assert caught.value.detail["peak"] == pytest.approx(1.5)


def test_a_full_scale_float_recording_is_accepted(embedder, clips, dev_results) -> None:
    speech = clips.wave("a_snt2")
    buffer = io.BytesIO()
    sf.write(buffer, speech / np.abs(speech).max(), 16_000, format="WAV", subtype="FLOAT")
    assert float(embedder.embed(buffer.getvalue()).vector @ dev_results["a_snt2"].vector) > 0.99


def test_a_legitimate_click_in_quiet_speech_keeps_the_speaker(embedder, clips, dev_results) -> None:
    speech = clips.wave("a_snt2")
    quiet = speech / np.abs(speech).max() * 0.05  # peaks at -26 dBFS
    quiet[quiet.size // 2] = 1.0  # one full-scale click
    buffer = io.BytesIO()
    sf.write(buffer, quiet, 16_000, format="WAV", subtype="FLOAT")
    assert float(embedder.embed(buffer.getvalue()).vector @ dev_results["a_snt2"].vector) > 0.95


def test_real_speech_stays_far_below_both_guard_limits(embedder, clips, dev_results) -> None:
    limits = EngineConfig().guard
    collapse = embedder.collapse_point()
    for name, result in dev_results.items():
        assert float(result.vector @ collapse) < limits.max_collapse_cosine / 2, name
        fbank = features.fbank(clips.wave(name))
        assert impulse_dominance_db(fbank) < limits.max_impulse_dominance_db / 3, name


def test_features_dominated_by_a_few_frames_are_refused_even_within_full_scale(embedder, clips) -> None:
    speech = clips.wave("a_snt1") * 1e-4  # -80 dB: every frame but the clicks falls to the floor
    speech[[8000, 24000]] = 1.0
    buffer = io.BytesIO()
    sf.write(buffer, speech, 16_000, format="WAV", subtype="FLOAT")
    with pytest.raises((DegenerateAudioError, AudioError)) as caught:
        embedder.embed(buffer.getvalue())
    assert caught.value.code in {"audio_degenerate", "no_speech"}


def test_speech_with_a_dc_offset_is_still_found_and_keeps_the_speaker(embedder, clips, dev_results) -> None:
    shifted = clips.wave("a_snt2") * 0.5 + 0.45
    buffer = io.BytesIO()
    sf.write(buffer, shifted, 16_000, format="WAV", subtype="PCM_16")
    assert float(embedder.embed(buffer.getvalue()).vector @ dev_results["a_snt2"].vector) > 0.95
