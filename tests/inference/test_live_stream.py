"""Speech in a live stream (inference.streaming): raw PCM, frame-by-frame speech activity that does not
depend on how the stream is chunked, the window of the newest speech, and the quality events."""
from __future__ import annotations

import numpy as np
import pytest

from inference.config import EngineConfig
from inference.embedder import prepare_waveform
from inference.errors import AudioOutOfRangeError, InvalidSamplesError
from inference.streaming import SpeechStream, pcm_to_samples

RATE = 16_000
CONFIG = EngineConfig()


def _feed(stream: SpeechStream, samples: np.ndarray, chunk: int) -> list:
    events = []
    for start in range(0, samples.size, chunk):
        events += stream.feed(samples[start:start + chunk])
    return events + stream.flush()


def test_s16le_pcm_becomes_samples_in_full_scale():
    pcm = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    assert pcm_to_samples(pcm, "s16le").tolist() == pytest.approx([0.0, 0.5, -1.0, 32767 / 32768])


def test_float_pcm_must_be_finite_and_within_full_scale():
    assert pcm_to_samples(np.array([0.25, -1.0], dtype="<f4").tobytes(), "f32le").tolist() == [0.25, -1.0]
    with pytest.raises(InvalidSamplesError):
        pcm_to_samples(np.array([0.1, np.nan], dtype="<f4").tobytes(), "f32le")
    with pytest.raises(AudioOutOfRangeError):
        pcm_to_samples(np.array([0.1, 4.0], dtype="<f4").tobytes(), "f32le")


def test_speech_decisions_do_not_depend_on_how_the_stream_is_chunked(clips):
    samples = np.concatenate([clips.wave("a_snt1"), np.zeros(RATE // 2, dtype=np.float32), clips.wave("a_snt2")])
    outcomes = []
    for chunk in (37, 320, 1000, 16_000, samples.size):
        stream = SpeechStream(RATE)
        events = _feed(stream, samples, chunk)
        outcomes.append((stream.speech_frames, stream.window().tobytes(), [(e.kind, e.at_s) for e in events]))
    assert all(outcome == outcomes[0] for outcome in outcomes[1:])


@pytest.mark.parametrize("name", ["a_snt1", "a_snt4", "b_snt3", "b_snt6"])
def test_a_stream_finds_about_as_much_speech_as_the_batch_vad(clips, name):
    samples = clips.wave(name)
    stream = SpeechStream(RATE)
    _feed(stream, samples, 320)
    batch = prepare_waveform(samples, RATE, CONFIG).speech_s
    assert stream.speech_s == pytest.approx(batch, rel=0.2)
    assert stream.audio_s == pytest.approx(samples.size / RATE)


def test_the_window_holds_the_newest_speech_and_no_long_silence(clips):
    first, second = clips.wave("a_snt1"), clips.wave("b_snt1")
    samples = np.concatenate([first, np.zeros(2 * RATE, dtype=np.float32), second])
    stream = SpeechStream(RATE, window_speech_s=1.5)
    _feed(stream, samples, 480)
    window = stream.window()
    assert stream.window_speech_s == pytest.approx(1.5, abs=0.021)
    # speech plus pauses of at most max_silence_s each, never the 2 s gap
    assert window.size / RATE < 1.5 + 3 * CONFIG.vad.max_silence_s
    # and it ends in the second recording (frames lie on the stream's 20 ms grid)
    grid = samples[:samples.size // 320 * 320].reshape(-1, 320)
    last = int(np.flatnonzero((grid == window[-320:]).all(axis=1))[-1])
    assert last * 320 >= first.size + 2 * RATE
    assert stream.window_level_dbfs() > -40.0


def test_silence_is_announced_once_and_speech_after_it_again(clips):
    samples = np.concatenate([np.zeros(int(1.5 * RATE), dtype=np.float32), clips.wave("a_snt1"),
                              np.zeros(3 * RATE, dtype=np.float32), clips.wave("a_snt2")])
    stream = SpeechStream(RATE, silence_event_s=1.0)
    kinds = [e.kind for e in _feed(stream, samples, 800)]
    # silence at the start, speech, (pauses inside the clip are shorter than 1 s), silence, speech
    assert kinds[0] == "silence" and kinds.count("speech") == kinds.count("silence") == 2
    assert kinds == ["silence", "speech", "silence", "speech"]


def test_only_silence_is_never_speech():
    stream = SpeechStream(RATE)
    rng = np.random.default_rng(0)
    _feed(stream, (0.01 * rng.standard_normal(4 * RATE)).astype(np.float32), 512)
    assert stream.speech_s == 0.0 and stream.window().size == 0 and stream.window_level_dbfs() == -100.0


def test_clipping_is_reported_per_block(clips):
    loud = np.clip(clips.wave("a_snt1") * 40.0, -1.0, 1.0).astype(np.float32)
    stream = SpeechStream(RATE, max_clipping_ratio=0.05, clipping_block_s=1.0)
    events = [e for e in _feed(stream, loud, 700) if e.kind == "clipping"]
    assert events and all(e.value > 0.05 for e in events)
    assert len(events) <= loud.size // RATE
    clean = SpeechStream(RATE)
    assert not [e for e in _feed(clean, clips.wave("a_snt1"), 700) if e.kind == "clipping"]


def test_other_sample_rates_use_frames_of_the_same_length(clips):
    stream = SpeechStream(8_000)
    assert stream.frame == 160 and stream.frame_s == pytest.approx(0.02)
    _feed(stream, clips.wave("a_snt1")[::2].copy(), 333)
    assert stream.speech_s > 1.0
