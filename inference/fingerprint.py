"""Replay detection: a robust audio fingerprint of spectral-peak pairs, and its matching.

A recording the service has already heard (an enrollment, a recent probe) that comes back as a
probe is a replay, whatever happened to it on the way: re-encoded, resampled, squeezed into the
telephone band, noise or reverb added, sped up a few percent, played backwards, cut into snippets.
The fingerprint is the landmark scheme of Wang's Shazam paper (2003), tuned for speech:

1. The recording is taken to ``analysis_rate`` (8 kHz) and its spectrogram kept between
   ``low_hz`` and ``high_hz`` (300-3400 Hz: what survives a telephone channel and low-rate codecs).
2. Peaks: time-frequency points that are the largest in their neighbourhood and not far below the
   recording's loud end. Within any second the ``peaks_per_second`` most prominent are kept
   (prominence: level over that frequency's typical level, so a band-pass or a codec's tilt does
   not move them). Frequency and time are refined by parabolic interpolation.
3. Each peak (anchor) is paired with the next ``fan_out`` peaks close in time and frequency; a pair
   is hashed from the anchor's frequency and the interval to the target on a log-frequency axis,
   and the time between them. The print keeps, per pair, the hash (``uint32``) and the anchor's
   frame (``uint16``): 6 bytes a pair, about ``peaks_per_second x fan_out`` pairs per second (1.2
   kB/s measured on speech) and never more than twice that (a peak is kept when it is among the
   ``peaks_per_second`` most prominent within half a second either side of it, so no half second
   holds more than ``peaks_per_second`` peaks).

What a print holds is a list of (hash, time): no level, no phase, no spectrum; the peaks it
encodes are a sparse constellation (about 50 frequencies per second, on a 1/48-octave grid,
without amplitudes), from which no waveform can be rebuilt. The service encrypts it like a
voiceprint all the same.

Matching. The probe is hashed again under every hypothesis of ``speeds`` (sox ``speed``: pitch and
duration scaled together; on a log axis a pitch change is a shift), ``tempos`` (duration only) and,
with ``match_reversed``, backwards. Hashes shared with a stored print vote for the time offset
between the two recordings (Shazam's histogram); a true replay piles its votes on one offset, a
different recording scatters them. Shuffled snippets of a recording each pile up at their own
offset, so separate offsets with enough votes are counted too. :func:`match_many` matches one
probe against many prints in one pass (a speaker's enrollments and recent probes).
"""
from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import maximum_filter
from scipy.signal import resample_poly
from scipy.special import gammaln

from inference.config import FingerprintConfig
from inference.errors import InferenceError

FORMAT_VERSION = 1
_MAGIC = b"VPFP"
# magic, version, analysis digest, frames, pairs
_HEADER = struct.Struct("<4sB4sII")
_INPUT_RATE = 16_000
_EPS = 1e-12
# Spectrogram frames computed at once: bounds the working memory on a long recording.
_BLOCK_FRAMES = 4096
# Offsets are binned with this much room on either side (frames / offset_bin_frames).
_OFFSET_SHIFT = 1 << 22
_GROUP_SHIFT = 24
# Probe time cells (moments) are packed under the group and bin.
_CELL_BITS = 20
_BIN_MASK = (1 << _GROUP_SHIFT) - 1
_CELL_SHIFT = 1 << 18
# Anchors keep the first frame of a recording representable: uint16 frames (10 ms) last 655 s.
_MAX_FRAMES = np.iinfo(np.uint16).max


class FingerprintError(InferenceError):
    """Bytes that are not a fingerprint of this format, or a print made with another analysis."""

    code = "fingerprint_invalid"


@dataclass(frozen=True, eq=False)
class Peaks:
    """A recording's spectral peaks (kept in memory for a probe, never serialised).

    Attributes
    ----------
    times
        ``(p,)`` float64, frame times (``hop_length`` samples at ``analysis_rate``), ascending.
    octaves
        ``(p,)`` float64, frequency as octaves above ``low_hz``.
    """

    times: np.ndarray
    octaves: np.ndarray


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """The landmark hashes of one recording.

    Attributes
    ----------
    hashes
        ``(n,)`` uint32, one per peak pair, sorted (ties by time).
    times
        ``(n,)`` uint16, the frame of each pair's anchor peak.
    frames
        Length of the recording in frames.
    digest
        4 bytes naming the analysis parameters the print was made with (prints made with other
        parameters cannot be compared).
    peaks
        The peaks themselves, only on a print just computed (a probe): matching re-hashes them under
        speed, tempo and direction hypotheses. A print read back with :meth:`from_bytes` has none and is
        matched as it is.
    """

    hashes: np.ndarray
    times: np.ndarray
    frames: int
    digest: bytes
    peaks: Peaks | None = field(default=None, compare=False, repr=False)

    def to_bytes(self) -> bytes:
        """``VPFP``, version, analysis digest, frames, pair count, then the hashes and the times
        (little-endian): ``17 + 6 n`` bytes. The peaks are not written."""
        header = _HEADER.pack(_MAGIC, FORMAT_VERSION, self.digest, self.frames, len(self.hashes))
        return header + self.hashes.astype("<u4").tobytes() + self.times.astype("<u2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Fingerprint:
        """The inverse of :meth:`to_bytes`; refuses anything else with :class:`FingerprintError`."""
        if len(data) < _HEADER.size:
            raise FingerprintError("too short to be a fingerprint", size=len(data))
        magic, version, digest, frames, count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise FingerprintError("not a fingerprint (bad magic)")
        if version != FORMAT_VERSION:
            raise FingerprintError(f"fingerprint format {version}, this engine reads {FORMAT_VERSION}",
                                   version=version, supported=FORMAT_VERSION)
        expected = _HEADER.size + 6 * count
        if len(data) != expected:
            raise FingerprintError("fingerprint length does not match its header", size=len(data), expected=expected)
        body = memoryview(data)[_HEADER.size:]
        hashes = np.frombuffer(body[: 4 * count], dtype="<u4").astype(np.uint32)
        times = np.frombuffer(body[4 * count:], dtype="<u2").astype(np.uint16)
        if count and (np.any(np.diff(hashes.astype(np.int64)) < 0) or int(times.max()) > frames):
            raise FingerprintError("fingerprint entries are out of order or out of range")
        return cls(hashes=hashes, times=times, frames=int(frames), digest=bytes(digest))

    @property
    def duration_s(self) -> float:
        return self.frames * _frame_s(FingerprintConfig())


@dataclass(frozen=True)
class ReplayMatch:
    """How a probe matched one stored print.

    Attributes
    ----------
    matched
        The decision: the probe is (a transformed copy of part of) the stored recording.
    score
        How unlikely the best alignment is by chance: ``-log10`` of the chance of that much evidence on
        any offset under any hypothesis (0: as chance would have it; 3: one in a thousand).
    segment_score
        The same added up over every segment that passes ``min_segment_score`` (shuffled snippets).
    hashes
        Hashes the probe shares with the print under the best hypothesis, at any offset.
    aligned_hashes
        Of those, the ones on the best time offset (Shazam's histogram peak).
    aligned_moments
        The evidence of that offset: distinct moments (``vote_cell_frames`` cells of the probe's time)
        holding an aligned hash. The decision counts moments, not hashes.
    offset_s
        That offset: stored time minus probe time (probe time on the stored recording's time scale).
    segments, segment_moments
        Offsets (runs of adjacent offset bins) whose surprise passes ``min_segment_score``, and the
        moments on them added up (shuffled snippets of the recording, each at its own offset).
    probe_span_s, stored_span_s
        ``(start, end)`` in seconds of the hashes on the best offset, in the probe (its own time) and in
        the stored recording; ``None`` without any.
    speed, tempo, reversed
        The hypothesis with the most aligned evidence (1.0, 1.0, False: the recording as it was); the
        other figures (but ``score`` and ``segment_score``, the best over all hypotheses) are its own.
    """

    matched: bool
    score: float
    segment_score: float
    hashes: int
    aligned_hashes: int
    aligned_moments: int
    offset_s: float
    segments: int
    segment_moments: int
    probe_span_s: tuple[float, float] | None
    stored_span_s: tuple[float, float] | None
    speed: float = 1.0
    tempo: float = 1.0
    reversed: bool = False


def _frame_s(config: FingerprintConfig) -> float:
    return config.hop_length / config.analysis_rate


@lru_cache(maxsize=8)
def analysis_digest(config: FingerprintConfig) -> bytes:
    """4 bytes that change with any parameter that changes the hashes (not with the matching rule)."""
    fields = (config.analysis_rate, config.n_fft, config.hop_length, config.low_hz, config.high_hz,
              config.peak_freq_radius, config.peak_time_radius, config.peak_floor_db, config.silence_db,
              config.peaks_per_second,
              config.bins_per_octave, config.fan_out, config.max_dt_frames, config.max_df_octaves, FORMAT_VERSION)
    return hashlib.sha256(repr(fields).encode()).digest()[:4]


def _spectrogram_db(samples: np.ndarray, config: FingerprintConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(frames, bins)`` float32 power in dB over the analysis band, and the bins' frequencies in Hz."""
    rate = config.analysis_rate
    divisor = math.gcd(rate, _INPUT_RATE)
    signal = samples.astype(np.float64)
    if rate != _INPUT_RATE:
        signal = resample_poly(signal, rate // divisor, _INPUT_RATE // divisor)
    if len(signal) < config.n_fft:
        signal = np.pad(signal, (0, config.n_fft - len(signal)))
    freqs = np.fft.rfftfreq(config.n_fft, 1.0 / rate)
    band = np.flatnonzero((freqs >= config.low_hz) & (freqs <= config.high_hz))
    window = np.hanning(config.n_fft + 2)[1:-1]
    frames = sliding_window_view(signal, config.n_fft)[:: config.hop_length]
    out = np.empty((len(frames), len(band)), dtype=np.float32)
    for start in range(0, len(frames), _BLOCK_FRAMES):
        block = np.fft.rfft(frames[start:start + _BLOCK_FRAMES] * window, axis=1)[:, band]
        out[start:start + len(block)] = 10.0 * np.log10(block.real ** 2 + block.imag ** 2 + _EPS)
    return out, freqs[band]


def _parabolic(left: np.ndarray, centre: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset in [-0.5, 0.5] of a parabola's vertex through three equally spaced values."""
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(curvature < 0, 0.5 * (left - right) / curvature, 0.0)
    return np.clip(delta, -0.5, 0.5)


def find_peaks(samples: np.ndarray, config: FingerprintConfig = FingerprintConfig()) -> Peaks:
    """The spectral peaks of ``samples`` (``(n,)`` float, 16 kHz mono), ascending in time."""
    db, freqs = _spectrogram_db(samples, config)
    n_frames, n_bins = db.shape
    loud = float(np.percentile(db.max(axis=1), 99)) if n_frames else 0.0
    footprint = (2 * config.peak_time_radius + 1, 2 * config.peak_freq_radius + 1)
    local_max = maximum_filter(db, size=footprint, mode="nearest")
    candidate = (db == local_max) & (db > max(loud - config.peak_floor_db, config.silence_db))
    # Level over each frequency's typical level in the louder frames: a channel's tilt cancels.
    active = db.max(axis=1) > loud - 30.0
    reference = db[active].mean(axis=0) if active.any() else db.mean(axis=0)
    frame, bin_ = np.nonzero(candidate)
    if len(frame) == 0:
        return Peaks(times=np.zeros(0), octaves=np.zeros(0))
    prominence = db[frame, bin_] - reference[bin_]
    keep = _densest(frame, prominence, config.peaks_per_second * _frame_s(config) * 100, 50)
    frame, bin_ = frame[keep], bin_[keep]
    centre = db[frame, bin_]
    df = _parabolic(db[frame, np.maximum(bin_ - 1, 0)], centre, db[frame, np.minimum(bin_ + 1, n_bins - 1)])
    dt = _parabolic(db[np.maximum(frame - 1, 0), bin_], centre, db[np.minimum(frame + 1, n_frames - 1), bin_])
    step = freqs[1] - freqs[0] if n_bins > 1 else 1.0
    hz = freqs[bin_] + df * step
    times = frame + dt
    order = np.argsort(times, kind="stable")
    return Peaks(times=times[order], octaves=np.log2(np.maximum(hz[order], 1.0) / config.low_hz))


def _densest(frame: np.ndarray, prominence: np.ndarray, per_window: float, half_window: int) -> np.ndarray:
    """Indices of the candidates that rank within the ``per_window`` most prominent of those within
    ``half_window`` frames of them (a sliding window, so no block edge decides)."""
    order = np.argsort(frame, kind="stable")
    frame, prominence = frame[order], prominence[order]
    lo = np.searchsorted(frame, frame - half_window, side="left")
    hi = np.searchsorted(frame, frame + half_window, side="right")
    kept = np.zeros(len(frame), dtype=bool)
    limit = int(round(per_window))
    width = int((hi - lo).max())
    for start in range(0, len(frame), 4096):
        rows = np.arange(start, min(start + 4096, len(frame)))
        cols = lo[rows, None] + np.arange(width)[None, :]
        inside = cols < hi[rows, None]
        neighbours = prominence[np.minimum(cols, len(frame) - 1)]
        louder = inside & ((neighbours > prominence[rows, None])
                           | ((neighbours == prominence[rows, None]) & (cols < rows[:, None])))
        kept[rows] = louder.sum(axis=1) < limit
    return order[kept]


def _pairs(times: np.ndarray, octaves: np.ndarray, config: FingerprintConfig,
           max_dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Anchor and target indices: each peak with the next ``fan_out`` within ``max_dt`` frames
    and ``max_df_octaves`` (``times`` ascending)."""
    n = len(times)
    if n < 2:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.intp)
    ahead = int(np.searchsorted(times, times + max_dt, side="right").max() - np.arange(n).min())
    ahead = max(1, min(ahead, n - 1))
    anchors = np.arange(n)[:, None]
    targets = anchors + np.arange(1, ahead + 1)[None, :]
    inside = targets < n
    targets = np.minimum(targets, n - 1)
    delta_t = times[targets] - times[anchors]
    inside &= (delta_t <= max_dt) & (np.abs(octaves[targets] - octaves[anchors]) <= config.max_df_octaves)
    inside &= np.cumsum(inside, axis=1) <= config.fan_out
    rows, cols = np.nonzero(inside)
    return rows, targets[rows, cols]


def _hash(anchor_oct: np.ndarray, target_oct: np.ndarray, delta_t: np.ndarray,
          config: FingerprintConfig) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of pairs (int64) and a mask of the pairs that fit the hash's ranges."""
    steps = config.bins_per_octave
    top = math.ceil(math.log2(config.high_hz / config.low_hz) * steps)
    spread = round(config.max_df_octaves * steps) + 1
    first = np.floor(anchor_oct * steps + 0.5).astype(np.int64)
    interval = np.floor(target_oct * steps + 0.5).astype(np.int64) - first
    gap = np.floor(delta_t + 0.5).astype(np.int64)
    valid = (first >= 0) & (first <= top) & (np.abs(interval) <= spread) & (gap >= 0) & (gap <= config.max_dt_frames)
    value = (first * (2 * spread + 1) + interval + spread) * (config.max_dt_frames + 1) + gap
    return value, valid


def fingerprint(samples: np.ndarray, config: FingerprintConfig = FingerprintConfig()) -> Fingerprint:
    """The print of a recording.

    Parameters
    ----------
    samples
        ``(n,)`` float32/float64 mono at 16 kHz (what :func:`inference.audio.decode` returns), at most
        655 s (the anchors' ``uint16`` frames).

    Returns
    -------
    Fingerprint
        Hashes and anchor frames, sorted by hash; with the peaks kept in memory for matching as a probe.
    """
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (n,), got shape {samples.shape}")
    frames = 1 + max(0, (len(samples) * config.analysis_rate // _INPUT_RATE - config.n_fft)) // config.hop_length
    if frames > _MAX_FRAMES:
        raise ValueError(f"{frames} frames: a print holds at most {_MAX_FRAMES} ({_MAX_FRAMES * _frame_s(config):.0f} s)")
    peaks = find_peaks(samples, config)
    anchors, targets = _pairs(peaks.times, peaks.octaves, config, config.max_dt_frames)
    values, valid = _hash(peaks.octaves[anchors], peaks.octaves[targets],
                          peaks.times[targets] - peaks.times[anchors], config)
    times = np.clip(np.floor(peaks.times[anchors] + 0.5), 0, frames)[valid].astype(np.uint16)
    values = values[valid].astype(np.uint32)
    order = np.lexsort((times, values))
    return Fingerprint(hashes=values[order], times=times[order], frames=int(frames),
                       digest=analysis_digest(config), peaks=peaks)


@dataclass(frozen=True)
class _Hypothesis:
    speed: float
    tempo: float
    reversed: bool


@dataclass(frozen=True, eq=False)
class ProbeHashes:
    """A probe hashed under every hypothesis: ``hashes`` sorted, each with its anchor time on the
    stored recording's time scale (frames) and the index of its hypothesis."""

    hashes: np.ndarray
    times: np.ndarray
    hypothesis: np.ndarray
    hypotheses: tuple[_Hypothesis, ...]
    frames: int


def _hypotheses(config: FingerprintConfig) -> tuple[_Hypothesis, ...]:
    forward = [_Hypothesis(speed, 1.0, False) for speed in config.speeds]
    forward += [_Hypothesis(1.0, tempo, False) for tempo in config.tempos if tempo != 1.0]
    backward = [_Hypothesis(h.speed, h.tempo, True) for h in forward] if config.match_reversed else []
    return tuple(forward + backward)


def probe_hashes(probe: Fingerprint, config: FingerprintConfig = FingerprintConfig()) -> ProbeHashes:
    """The probe's hashes under every speed, tempo and direction hypothesis of ``config``.

    A print without peaks (read from bytes) is matched as it is (one hypothesis)."""
    _check_digest(probe, config)
    if probe.peaks is None:
        identity = (_Hypothesis(1.0, 1.0, False),)
        return ProbeHashes(probe.hashes, probe.times.astype(np.float64), np.zeros(len(probe.hashes), np.int16),
                           identity, probe.frames)
    hypotheses = _hypotheses(config)
    directions = {}
    for backwards in (False, True):
        times = probe.peaks.times
        octaves = probe.peaks.octaves
        if backwards:
            times, octaves = (probe.frames - 1) - times[::-1], octaves[::-1]
        # Pairs up to max_dt on the stored scale, whatever the hypothesis (scaled below).
        anchors, targets = _pairs(times, octaves, config, config.max_dt_frames / min(config.speeds + config.tempos))
        directions[backwards] = (times, octaves, anchors, targets)
    hashes, times_out, labels = [], [], []
    for backwards, (times, octaves, anchors, targets) in directions.items():
        # Every hypothesis of this direction at once: (hypotheses, pairs).
        index = np.array([i for i, h in enumerate(hypotheses) if h.reversed == backwards], dtype=np.int16)
        scale = np.array([hypotheses[i].speed * hypotheses[i].tempo for i in index])[:, None]
        shift = np.log2([hypotheses[i].speed for i in index])[:, None]
        values, valid = _hash(octaves[anchors][None, :] - shift, octaves[targets][None, :] - shift,
                              (times[targets] - times[anchors])[None, :] * scale, config)
        hashes.append(values[valid])
        times_out.append((times[anchors][None, :] * scale)[valid])
        labels.append(np.broadcast_to(index[:, None], valid.shape)[valid])
    all_hashes = np.concatenate(hashes)
    order = np.argsort(all_hashes, kind="stable")
    return ProbeHashes(all_hashes[order].astype(np.uint32), np.concatenate(times_out)[order],
                       np.concatenate(labels)[order], hypotheses, probe.frames)


def _check_digest(fp: Fingerprint, config: FingerprintConfig) -> None:
    if fp.digest != analysis_digest(config):
        raise FingerprintError("the fingerprint was made with other analysis parameters",
                               digest=fp.digest.hex(), expected=analysis_digest(config).hex())


def match(probe: Fingerprint, stored: Fingerprint, config: FingerprintConfig = FingerprintConfig()) -> ReplayMatch:
    """Does ``probe`` replay ``stored``? (:func:`match_many` with one print.)"""
    return match_many(probe, [stored], config)[0]


def match_many(probe: Fingerprint | ProbeHashes, stored: Sequence[Fingerprint],
               config: FingerprintConfig = FingerprintConfig()) -> list[ReplayMatch]:
    """Match one probe against many stored prints in one pass.

    Every stored hash is looked up in the probe's sorted hashes (all hypotheses at once); each hit
    votes for (print, hypothesis, offset bin). Cost: the probe's hashes once, then a binary search per
    stored hash and a sort of the hits.

    Returns
    -------
    list[ReplayMatch]
        One per stored print, in order.
    """
    query = probe if isinstance(probe, ProbeHashes) else probe_hashes(probe, config)
    for fp in stored:
        _check_digest(fp, config)
    # (print, hypothesis) pairs are packed in 19 bits of the vote keys.
    per_pass = max(1, (1 << 19) // len(query.hypotheses))
    results: list[ReplayMatch] = []
    for start in range(0, len(stored), per_pass):
        results += _match_pass(query, stored[start:start + per_pass], config)
    return results


def _match_pass(query: ProbeHashes, stored: Sequence[Fingerprint], config: FingerprintConfig) -> list[ReplayMatch]:
    sizes = np.array([len(fp.hashes) for fp in stored])
    stored_hashes = np.concatenate([fp.hashes for fp in stored])
    stored_times = np.concatenate([fp.times for fp in stored]).astype(np.float64)
    owner = np.repeat(np.arange(len(stored)), sizes)
    lo = np.searchsorted(query.hashes, stored_hashes, side="left")
    hi = np.searchsorted(query.hashes, stored_hashes, side="right")
    counts = hi - lo
    hit_stored = np.repeat(np.arange(len(stored_hashes)), counts)
    starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
    hit_probe = starts + np.arange(len(hit_stored))
    frames = np.array([fp.frames for fp in stored], dtype=np.float64)
    return _decide(query, frames, owner[hit_stored], stored_times[hit_stored], hit_probe, config)


def _surprise(moments: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """``-log10 P(X >= moments)`` for ``X ~ Poisson(expected)``, 0 where ``moments <= expected``.

    The tail's leading terms (``k ln mu - mu - ln k!`` and the geometric bound of the rest) are exact
    enough where it matters (k well above mu) and never underflow."""
    k = moments.astype(np.float64)
    mu = np.maximum(expected, 1e-9)
    log_tail = k * np.log(mu) - mu - gammaln(k + 1.0) - np.log1p(-np.minimum(mu / (k + 1.0), 0.999))
    return np.where(k > mu, np.maximum(-log_tail / math.log(10.0), 0.0), 0.0)


def _decide(query: ProbeHashes, stored_frames: np.ndarray, owner: np.ndarray, stored_times: np.ndarray,
            hit_probe: np.ndarray, config: FingerprintConfig) -> list[ReplayMatch]:
    """Votes -> one :class:`ReplayMatch` per print.

    A hit votes for (print, hypothesis, offset). Evidence is counted in *moments*: distinct
    ``vote_cell_frames`` cells of the probe's time holding a hit, so a burst of peaks in one instant (a
    click, an onset lighting up every frequency) is one piece of evidence, not dozens of hashes. An
    alignment is a window of two adjacent offset bins (an offset on a bin edge, a small drift, is not
    split); a run of overlapping non-empty windows is one segment, worth its best window.

    How much evidence chance gives depends on how many hashes two recordings share (long recordings,
    the same voice, share more), so an alignment is scored by its surprise: ``-log10`` of the chance
    that a window holds that many moments when the pair's moments are spread over its possible offsets
    in proportion to how much the two recordings overlap there (Poisson), less ``log10`` of the number
    of offsets (any of them could have been the best).
    ``score`` is the best alignment's, less ``log10`` of the number of hypotheses tried;
    ``segment_score`` adds up every segment whose surprise passes ``min_segment_score``."""
    n_prints, n_hyp = len(stored_frames), len(query.hypotheses)
    n_groups = n_prints * n_hyp
    group = owner.astype(np.int64) * n_hyp + query.hypothesis[hit_probe]
    probe_times = query.times[hit_probe]
    bins = np.floor((stored_times - probe_times) / config.offset_bin_frames).astype(np.int64) + _OFFSET_SHIFT
    keys = (group << _GROUP_SHIFT) | bins
    cells = np.floor(probe_times / config.vote_cell_frames).astype(np.int64) + _CELL_SHIFT
    # One sort: distinct (group, bin, moment), then moments per bin and those a bin shares with the next.
    full = np.sort((keys << _CELL_BITS) | cells)
    distinct = full[np.concatenate(([True], full[1:] != full[:-1]))] if len(full) else full
    of_bin = distinct >> _CELL_BITS
    starts = np.flatnonzero(np.concatenate(([True], of_bin[1:] != of_bin[:-1]))) if len(of_bin) else np.zeros(0, np.intp)
    unique = of_bin[starts]
    per_bin = np.diff(np.append(starts, len(of_bin)))
    in_next = np.searchsorted(distinct, distinct + (1 << _CELL_BITS))
    in_next = distinct[np.minimum(in_next, len(distinct) - 1)] == distinct + (1 << _CELL_BITS) if len(distinct) else in_next
    first = np.zeros(len(of_bin), dtype=np.int64)
    first[starts] = 1
    bin_of = np.cumsum(first) - 1
    shared_with_next = np.bincount(bin_of[in_next], minlength=len(unique))
    # Windows of two adjacent bins, one starting at every bin that holds votes.
    adjacent = unique[1:] == unique[:-1] + 1
    moments = per_bin.copy()
    moments[:-1] += np.where(adjacent, per_bin[1:], 0)
    moments -= shared_with_next
    groups = unique >> _GROUP_SHIFT
    # The offsets a pair could take (windows), and the moments a window would hold by chance: the
    # pair's moments spread in proportion to how much of the two recordings overlaps at that offset.
    width = config.offset_bin_frames
    scales = np.array([h.speed * h.tempo for h in query.hypotheses])
    probe_len = np.tile(query.frames * scales, n_prints)
    stored_len = np.repeat(stored_frames, n_hyp)
    n_windows = (probe_len + stored_len) / width + 1
    # Every vote counts in two windows (its bin's and the one before), a moment in both bins once.
    total = np.bincount(groups, weights=2 * per_bin - shared_with_next, minlength=n_groups)
    evidence = np.full(len(unique), -np.inf)
    several = np.flatnonzero(moments >= 2)
    g = groups[several]
    offset = ((unique[several] & _BIN_MASK) - _OFFSET_SHIFT + 1).astype(np.float64) * width
    overlap = np.minimum(stored_len[g], offset + probe_len[g]) - np.maximum(0.0, offset)
    # An offset where the recordings barely overlap (their ends) is given a second's worth of chance
    # matches at least: the ends of recordings (silence, a click) match more than their share.
    overlap = np.maximum(overlap, 1.0 / _frame_s(config))
    expected = total[g] * overlap * width / (probe_len[g] * stored_len[g])
    evidence[several] = _surprise(moments[several], expected) - np.log10(n_windows[g])
    run_starts = np.flatnonzero(np.concatenate(([True], ~adjacent))) if len(unique) else np.zeros(0, np.intp)
    run_evidence = np.maximum.reduceat(evidence, run_starts) if len(unique) else np.zeros(0)
    run_moments = np.maximum.reduceat(moments, run_starts) if len(unique) else np.zeros(0, np.int64)
    run_group = groups[run_starts]
    best = np.full(n_groups, -np.inf)
    np.maximum.at(best, run_group, run_evidence)
    aligned = np.zeros(n_groups, dtype=np.int64)
    np.maximum.at(aligned, run_group, run_moments)
    strong = run_evidence >= config.min_segment_score
    segments = np.bincount(run_group[strong], minlength=n_groups)
    segment_sum = np.bincount(run_group[strong], weights=run_evidence[strong], minlength=n_groups)
    segment_moments = np.bincount(run_group[strong], weights=run_moments[strong], minlength=n_groups).astype(np.int64)
    shared = np.bincount(group, minlength=n_groups)
    # Per print: the hypothesis with the most surprising alignment, or failing one the most segment evidence.
    trials = math.log10(n_hyp)
    best_2d, segments_2d, segment_sum_2d = (a.reshape(n_prints, n_hyp) for a in (best, segments, segment_sum))
    rows = np.arange(n_prints)
    by_alignment, by_segments = best_2d.argmax(axis=1), segment_sum_2d.argmax(axis=1)
    score = np.maximum(best_2d[rows, by_alignment] - trials, 0.0)
    segment_score = np.maximum(segment_sum_2d[rows, by_segments] - trials, 0.0)
    by_offset = score >= config.min_score
    by_snippets = (segments_2d[rows, by_segments] >= 2) & (segment_score >= config.min_segments_score)
    # The hypothesis reported: the one with the most aligned moments, the nearest to the recording as it
    # was among equals (a true copy gathers as many under a neighbouring speed or tempo, and may score a
    # little higher there on fewer chance hits).
    distance = np.array([abs(math.log(h.speed)) + abs(math.log(h.tempo)) for h in query.hypotheses])
    most_moments = (aligned.reshape(n_prints, n_hyp) - distance[None, :]).argmax(axis=1)
    best_group = rows * n_hyp + np.where(by_offset | ~by_snippets, most_moments, by_segments)
    # Each print's best alignment (its first bin) in the chosen hypothesis, and the hits on it.
    best_key = np.full(n_prints, -1, dtype=np.int64)
    chosen_group = np.zeros(n_groups, dtype=bool)
    chosen_group[best_group] = True
    candidates = np.flatnonzero(chosen_group[groups])
    if len(candidates):
        order = candidates[np.lexsort((-evidence[candidates], groups[candidates]))]
        chosen = order[np.concatenate(([True], groups[order][1:] != groups[order][:-1]))]
        best_key[groups[chosen] // n_hyp] = unique[chosen]
    on_best = (keys == best_key[owner]) | (keys == best_key[owner] + 1)
    # The probe's own time on the best alignment: the hypothesis undone.
    hypothesis = query.hypothesis[hit_probe[on_best]]
    native = probe_times[on_best] / scales[hypothesis]
    native = np.where(np.array([h.reversed for h in query.hypotheses])[hypothesis], (query.frames - 1) - native, native)
    probe_spans, stored_spans = _spans(owner[on_best], native, stored_times[on_best], n_prints, config)
    # One alignment decides only if it lasts: the same word said twice by one voice can line up for a
    # syllable, a replay lines up for as long as it lasts.
    lasting = np.array([span is not None and span[1] - span[0] >= config.min_span_s for span in probe_spans])
    by_offset &= lasting
    aligned_hashes = np.bincount(owner[on_best], minlength=n_prints)
    offsets = np.bincount(owner[on_best], weights=(stored_times - probe_times)[on_best], minlength=n_prints)
    results = []
    for index in range(n_prints):
        g = best_group[index]
        h = query.hypotheses[g % n_hyp]
        results.append(ReplayMatch(
            matched=bool(by_offset[index] or by_snippets[index]),
            score=round(float(score[index]), 2), segment_score=round(float(segment_score[index]), 2),
            hashes=int(shared[g]), aligned_hashes=int(aligned_hashes[index]), aligned_moments=int(aligned[g]),
            offset_s=round(float(offsets[index] / max(aligned_hashes[index], 1)) * _frame_s(config), 3),
            segments=int(segments[g]), segment_moments=int(segment_moments[g]),
            probe_span_s=probe_spans[index], stored_span_s=stored_spans[index],
            speed=h.speed, tempo=h.tempo, reversed=h.reversed))
    return results


def _spans(owner: np.ndarray, probe_times: np.ndarray, stored_times: np.ndarray, n_prints: int,
           config: FingerprintConfig) -> tuple[list[tuple[float, float] | None], list[tuple[float, float] | None]]:
    """Per print, ``(start, end)`` in seconds of the given hits in the probe and in the stored recording."""
    second = _frame_s(config)
    spans = []
    for times in (probe_times, stored_times):
        low, high = np.full(n_prints, np.inf), np.full(n_prints, -np.inf)
        np.minimum.at(low, owner, times)
        np.maximum.at(high, owner, times)
        spans.append([(round(float(a) * second, 3), round(float(b) * second, 3)) if np.isfinite(a) else None
                      for a, b in zip(low, high)])
    return spans[0], spans[1]
