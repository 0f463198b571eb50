"""Speech in a live PCM stream: raw chunks -> samples, frame-by-frame speech activity, the last seconds of speech.

The batch VAD (:mod:`inference.vad`) judges a whole recording against its own loud end and noise
floor. A stream is judged as it arrives: each ``frame_ms`` frame is compared with the same three
conditions (:class:`~inference.config.VadConfig`), computed over the last ``history_s`` of the
stream instead of the whole recording, and widened by the same hangover (which delays every
decision by ``hangover_frames`` frames: 100 ms). Decisions do not depend on how the stream was cut
into chunks.

What is kept for scoring is the speech and the pauses inside it that are no longer than
``max_silence_s`` (as the batch path keeps them); longer silences are dropped. The scoring window
is the newest stretch of kept audio that holds ``window_speech_s`` of net speech.

Plain numpy: nothing here knows about sockets, sessions or Django.
"""
from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

import numpy as np

from inference.config import CLIP_LEVEL, FULL_SCALE, VadConfig
from inference.errors import AudioOutOfRangeError, InvalidSamplesError

_EPS = 1e-10
# The same margin over the noise floor as the batch VAD (inference.vad._NOISE_MARGIN_DB).
_NOISE_MARGIN_DB = 9.0

# Raw sample encodings a stream may use: name -> (numpy dtype, bytes per sample).
ENCODINGS: dict[str, tuple[str, int]] = {"s16le": ("<i2", 2), "f32le": ("<f4", 4)}


def pcm_to_samples(data: bytes, encoding: str) -> np.ndarray:
    """Raw little-endian PCM -> ``(n,)`` float32 in [-1, 1].

    ``data`` must hold whole samples (the caller checks ``len(data) % width``). Float samples
    must be finite and within full scale.

    Raises
    ------
    InvalidSamplesError
        NaN or infinite float samples.
    AudioOutOfRangeError
        Float samples beyond full scale.
    """
    dtype, _ = ENCODINGS[encoding]
    raw = np.frombuffer(data, dtype=dtype)
    if encoding == "s16le":
        return raw.astype(np.float32) / np.float32(32768.0)
    samples = raw.astype(np.float32)
    if not np.all(np.isfinite(samples)):
        raise InvalidSamplesError("the stream holds NaN or infinite samples")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > FULL_SCALE:
        raise AudioOutOfRangeError("float samples must lie within [-1, 1]", peak=round(peak, 3))
    return samples


@dataclass(frozen=True)
class StreamEvent:
    """Something a listener should know about the stream now.

    ``kind``: ``speech`` (speech started, the first time or after a ``silence``), ``silence``
    (no speech for ``silence_event_s``), ``clipping`` (more than the allowed fraction of samples
    at full scale over the last ``clipping_block_s`` of audio). ``at_s``: stream time in seconds.
    """

    kind: str
    at_s: float
    value: float | None = None


class SpeechStream:
    """Speech activity of one live stream, and the newest window of its speech.

    Parameters
    ----------
    sample_rate
        Rate of the samples fed (any; frames are ``frame_ms`` long at this rate).
    vad
        The same thresholds as the batch VAD.
    window_speech_s
        Net speech the scoring window holds.
    keep_speech_s
        Net speech kept (the window's, by default; more lets a caller take the oldest part apart).
    history_s
        Audio over which the loud end and the noise floor are estimated.
    silence_event_s, clipping_block_s, max_clipping_ratio
        When :class:`StreamEvent` s are raised.
    """

    def __init__(self, sample_rate: int, vad: VadConfig = VadConfig(), *, window_speech_s: float = 3.0,
                 keep_speech_s: float | None = None,
                 history_s: float = 10.0, silence_event_s: float = 1.0, clipping_block_s: float = 1.0,
                 max_clipping_ratio: float = 0.05) -> None:
        self.sample_rate = sample_rate
        self.vad = vad
        self.frame = int(round(sample_rate * vad.frame_ms / 1000.0))
        self.frame_s = self.frame / sample_rate
        self._window_frames = max(1, int(round(window_speech_s / self.frame_s)))
        self._keep_frames = max(self._window_frames, int(round((keep_speech_s or 0.0) / self.frame_s)))
        # Frame energies of the last history_s, in arrival order and sorted (percentiles per frame stay cheap).
        self._energies: deque[float] = deque()
        self._sorted_energies: list[float] = []
        self._history_frames = max(10, int(round(history_s / self.frame_s)))
        self._remainder = np.zeros(0, dtype=np.float32)
        # Frames waiting for the hangover's look-ahead: (samples, raw decision, power).
        self._pending: deque[tuple[np.ndarray, bool, float]] = deque()
        self._raw_before: deque[bool] = deque(maxlen=max(1, vad.hangover_frames))
        # Kept audio, newest last: (samples, is speech, power); at most the window's speech plus its pauses.
        self._kept: deque[tuple[np.ndarray, bool, float]] = deque()
        self._kept_speech = 0
        self._pause: list[tuple[np.ndarray, bool, float]] = []
        self._pause_frames = 0
        self._longest_pause = int(round(vad.max_silence_s / self.frame_s))
        self._silence_event_frames = max(1, int(round(silence_event_s / self.frame_s)))
        self._silent_run = 0
        self._announced_silence = True  # so the first speech is announced
        self._clip_block = max(1, int(round(clipping_block_s * sample_rate)))
        self._clip_samples = 0
        self._clip_count = 0
        self._max_clipping_ratio = max_clipping_ratio
        self.frames_in = 0
        self.frames_decided = 0
        self.speech_frames = 0

    # -- figures ---------------------------------------------------------------------------

    @property
    def audio_s(self) -> float:
        """Audio received so far, seconds."""
        return (self.frames_in * self.frame + self._remainder.size) / self.sample_rate

    @property
    def speech_s(self) -> float:
        """Net speech decided so far, seconds."""
        return self.speech_frames * self.frame_s

    @property
    def window_speech_s(self) -> float:
        """Net speech in the current window, seconds."""
        return min(self._kept_speech, self._window_frames) * self.frame_s

    @property
    def kept_speech_s(self) -> float:
        """Net speech kept, seconds."""
        return self._kept_speech * self.frame_s

    def window(self, speech_s: float | None = None, *, oldest: bool = False) -> np.ndarray:
        """Kept audio holding up to ``speech_s`` (default ``window_speech_s``) of speech: the newest, or the ``oldest``.

        ``(m,)`` float32 at ``sample_rate``; it starts and ends with speech.
        """
        frames = self._window_frames if speech_s is None else max(1, int(round(speech_s / self.frame_s)))
        taken: list[tuple[np.ndarray, bool]] = []
        speech = 0
        for samples, is_speech, _ in (self._kept if oldest else reversed(self._kept)):
            if is_speech and speech == frames:
                break
            speech += int(is_speech)
            taken.append((samples, is_speech))
        while taken and not taken[-1][1]:
            taken.pop()  # no pause at the far end
        if not oldest:
            taken.reverse()
        return np.concatenate([samples for samples, _ in taken]) if taken else np.zeros(0, dtype=np.float32)

    def drop_oldest(self, speech_s: float) -> None:
        """Forget the oldest kept audio up to ``speech_s`` of speech (and the pause after it)."""
        frames = max(1, int(round(speech_s / self.frame_s)))
        dropped = 0
        while self._kept and (dropped < frames or not self._kept[0][1]):
            _, is_speech, _ = self._kept.popleft()
            dropped += int(is_speech)
            self._kept_speech -= int(is_speech)
        if not self._kept:
            self._pause, self._pause_frames = [], 0

    def window_level_dbfs(self) -> float:
        """Mean power of the window's speech frames, dB full scale (-100 without speech)."""
        powers = [power for _, speech, power in self._kept if speech]
        return float(10.0 * np.log10(max(float(np.mean(powers)), _EPS))) if powers else -100.0

    # -- input -----------------------------------------------------------------------------

    def feed(self, samples: np.ndarray) -> list[StreamEvent]:
        """Add ``(n,)`` float32 samples; returns the events they caused, oldest first."""
        events: list[StreamEvent] = []
        events += self._count_clipping(samples)
        data = np.concatenate([self._remainder, samples.astype(np.float32, copy=False)])
        whole = data.size // self.frame * self.frame
        self._remainder = data[whole:].copy()
        for start in range(0, whole, self.frame):
            events += self._add_frame(data[start:start + self.frame])
        return events

    def flush(self) -> list[StreamEvent]:
        """The stream ended: decide the frames still waiting for their look-ahead."""
        events: list[StreamEvent] = []
        while self._pending:
            events += self._decide_oldest()
        return events

    # -- internals -------------------------------------------------------------------------

    def _count_clipping(self, samples: np.ndarray) -> list[StreamEvent]:
        events = []
        clipped = np.abs(samples) >= CLIP_LEVEL
        position = 0
        while position < samples.size:
            take = min(samples.size - position, self._clip_block - self._clip_samples)
            self._clip_count += int(clipped[position:position + take].sum())
            self._clip_samples += take
            position += take
            if self._clip_samples >= self._clip_block:
                ratio = self._clip_count / self._clip_samples
                if ratio > self._max_clipping_ratio:
                    at = (self.frames_in * self.frame + self._remainder.size + position) / self.sample_rate
                    events.append(StreamEvent("clipping", round(at, 3), round(ratio, 4)))
                self._clip_samples = self._clip_count = 0
        return events

    def _percentile(self, q: float) -> float:
        """``np.percentile(history, q)`` (linear interpolation) on the sorted history."""
        values = self._sorted_energies
        position = q / 100.0 * (len(values) - 1)
        low = int(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    def _threshold(self) -> float:
        loud, noise = self._percentile(95.0), self._percentile(10.0)
        return max(loud - self.vad.threshold_db, self.vad.floor_dbfs, noise + _NOISE_MARGIN_DB)

    def _add_frame(self, frame: np.ndarray) -> list[StreamEvent]:
        power = float(np.dot(frame, frame)) / frame.size
        energy = 10.0 * np.log10(power + _EPS)
        self._energies.append(energy)
        bisect.insort(self._sorted_energies, energy)
        if len(self._energies) > self._history_frames:
            old = self._energies.popleft()
            del self._sorted_energies[bisect.bisect_left(self._sorted_energies, old)]
        self._pending.append((frame, bool(energy > self._threshold()), power))
        self.frames_in += 1
        events: list[StreamEvent] = []
        while len(self._pending) > self.vad.hangover_frames:
            events += self._decide_oldest()
        return events

    def _decide_oldest(self) -> list[StreamEvent]:
        frame, raw, power = self._pending.popleft()
        speech = raw or any(self._raw_before) or any(r for _, r, _ in self._pending)
        self._raw_before.append(raw)
        at = round(self.frames_decided * self.frame_s, 3)
        self.frames_decided += 1
        events: list[StreamEvent] = []
        if speech:
            if self._announced_silence:
                events.append(StreamEvent("speech", at))
                self._announced_silence = False
            self._silent_run = 0
            if self._kept and self._pause_frames <= self._longest_pause:
                self._kept.extend(self._pause)  # a short pause inside speech stays, as in the batch path
            self._pause, self._pause_frames = [], 0
            self._kept.append((frame, True, power))
            self._kept_speech += 1
            self.speech_frames += 1
            self._trim()
        else:
            self._silent_run += 1
            self._pause_frames += 1
            if self._pause_frames <= self._longest_pause:
                self._pause.append((frame, False, power))
            else:
                self._pause = []
            if self._silent_run == self._silence_event_frames:
                events.append(StreamEvent("silence", at, round(self._silent_run * self.frame_s, 3)))
                self._announced_silence = True
        return events

    def _trim(self) -> None:
        while self._kept_speech > self._keep_frames or (self._kept and not self._kept[0][1]):
            _, speech, _ = self._kept.popleft()
            self._kept_speech -= int(speech)
