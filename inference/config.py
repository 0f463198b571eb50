"""The engine's contract: one frozen config object, plain Python.

Nothing here reads the environment or Django settings: the caller (the Django service,
the command line, a benchmark) builds an :class:`EngineConfig` and hands it in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AudioConfig:
    """Decoding limits. Durations are in seconds of the original recording.

    Decoding cost grows with rate x channels x duration, not with the upload's size (a 329 KB
    FLAC can declare 655,350 Hz x 8 channels x 59 s), so the header is checked against
    ``max_sample_rate``, ``max_channels`` and ``max_decoded_values`` (samples of all channels)
    before a sample is decoded.
    """

    sample_rate: int = 16_000
    min_duration_s: float = 0.5
    max_duration_s: float = 600.0
    max_bytes: int = 100 * 1024 * 1024
    min_sample_rate: int = 4_000
    max_sample_rate: int = 192_000
    max_channels: int = 8
    # 60 s of 48 kHz stereo (5.76 M) with room to spare; 23 MB as float32.
    max_decoded_values: int = 6_000_000


@dataclass(frozen=True)
class VadConfig:
    """Speech activity detection (see :mod:`inference.vad`).

    A ``frame_ms`` frame is speech when its ``top_bands`` highest mel bands stand, on average,
    ``score_threshold`` steady-noise standard deviations above their own stationary floors (each
    band's lowest level within ``noise_window_s``, at least ``shortest_noise_window_s`` at the ends), it is above ``floor_dbfs`` and within
    ``threshold_db`` of the loud end of the recording. Spectra are taken over ``window_ms``
    centred on each frame and smoothed over ``smooth_frames``. Stretches without speech longer
    than ``max_silence_s`` are cut down to ``keep_silence_s`` before the embedding (leading and
    trailing silence, a long wait); ordinary pauses stay, as in the training data: cutting them
    cost accuracy in noise (notes/vad.md).
    """

    frame_ms: float = 20.0
    threshold_db: float = 30.0
    floor_dbfs: float = -55.0
    min_speech_s: float = 0.3
    max_silence_s: float = 2.0
    keep_silence_s: float = 0.4
    hangover_frames: int = 5
    window_ms: float = 64.0
    smooth_frames: int = 5
    noise_window_s: float = 1.5
    shortest_noise_window_s: float = 0.5
    low_hz: float = 150.0
    high_hz: float = 8_000.0
    bands: int = 18
    top_bands: int = 8
    z_cap: float = 6.0
    score_threshold: float = 3.0
    dynamic_range_db: float = 60.0


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel filterbank exactly as SpeechBrain's ``Fbank(n_mels=80)`` computes it,
    followed by per-utterance mean normalisation (``InputNormalization(sentence, std_norm=False)``)."""

    sample_rate: int = 16_000
    n_fft: int = 400
    win_length: int = 400
    hop_length: int = 160
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8_000.0
    top_db: float = 80.0
    amin: float = 1e-10
    mean_norm: bool = True
    std_norm: bool = False


@dataclass(frozen=True)
class GuardConfig:
    """Limits of :mod:`inference.guard` (measured on real speech; see its docstring)."""

    max_impulse_dominance_db: float = 30.0
    max_collapse_cosine: float = 0.6


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; must match the pretrained checkpoint exactly."""

    name: str = "spkrec-ecapa-voxceleb"
    input_size: int = 80
    channels: tuple[int, ...] = (1024, 1024, 1024, 1024, 3072)
    kernel_sizes: tuple[int, ...] = (5, 3, 3, 3, 1)
    dilations: tuple[int, ...] = (1, 2, 3, 4, 1)
    attention_channels: int = 128
    res2net_scale: int = 8
    se_channels: int = 128
    embedding_size: int = 192
    # sha256 of SpeechBrain's embedding_model.ckpt as published in spkrec-ecapa-voxceleb
    source_sha256: str = "0575cb64845e6b9a10db9bcb74d5ac32b326b8dc90352671d345e2ee3d0126a2"
    classifier_sha256: str = "fd9e3634fe68bd0a427c95e354c0c677374f62b3f434e45b78599950d860d535"


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs. ``model_dir`` holds the converted model + manifest."""

    model_dir: Path = Path("var/model")
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    # The longest stretch of speech embedded in one forward pass, in feature frames (1 frame =
    # 10 ms; n seconds of speech make 100 n + 1 frames). The network runs on a dynamic time
    # axis (one compiled graph for every length), but MindSpore keeps the working memory of the
    # longest pass it has run (about 0.25 MB per frame), so longer speech is cut into equal
    # windows of at most this many frames whose embeddings are averaged. 20 s keeps a worker
    # under 1 GB (docs/serving.md has the measurements).
    window_frames: int = 2001
    # MindSpore's CPU kernel threads in this process (None: MindSpore's default). One process
    # per core with one thread each, or one process with all cores: docs/serving.md.
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.window_frames <= max(self.model.dilations) * 2:
            raise ValueError(f"window_frames={self.window_frames} is too short for the network")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads}: at least 1")

    @property
    def buckets(self) -> tuple[int, ...]:
        """``(window_frames,)``: the one length limit (the engine used to compile a set of padded lengths)."""
        return (self.window_frames,)


@dataclass(frozen=True)
class FingerprintConfig:
    """Replay detection (:mod:`inference.fingerprint`): spectral-peak landmarks and the replay decision.

    Analysis: the recording is taken to ``analysis_rate`` and a ``n_fft``-point spectrogram with a
    ``hop_length`` hop is kept between ``low_hz`` and ``high_hz`` (the telephone band, so a probe
    band-limited to 8 kHz telephone quality sees the same band as a wideband original). A peak is a
    time-frequency point that is the largest within ``peak_freq_radius`` bins and ``peak_time_radius``
    frames, no more than ``peak_floor_db`` under the recording's loud end and above ``silence_db`` (power
    of a frame's bin; a full-scale tone reaches about +36 dB); the ``peaks_per_second``
    most prominent ones (level over that frequency's typical level) are kept. Each peak is paired
    with the next ``fan_out`` peaks within ``max_dt_frames`` frames and ``max_df_octaves`` octaves;
    a pair is hashed as (its first frequency, the interval to the second on a log axis with
    ``bins_per_octave`` steps, the time between them). Only these hashes and the time of their
    first peak are kept: no level, no phase, no spectrum.

    Matching: a probe is hashed again under each hypothesis of ``speeds`` (sox ``speed``: pitch and
    time scaled together), ``tempos`` (time only) and, with ``match_reversed``, played backwards.
    Hashes shared with a stored print vote for the time offset between the two (windows of two
    ``offset_bin_frames`` bins); evidence is counted in distinct ``vote_cell_frames`` moments of the
    probe and scored by its surprise (``-log10`` of its chance, see :func:`inference.fingerprint.match_many`).
    A probe replays the print when one alignment scores ``min_score`` and its hits span ``min_span_s``
    of the probe, or when two or more offsets (shuffled snippets, each at its own offset), each scoring
    ``min_segment_score``, add up to ``min_segments_score``. The thresholds are measured on real speech
    (docs/replay.md, ``tools/replay_eval.py``).
    """

    analysis_rate: int = 8_000
    n_fft: int = 256
    hop_length: int = 80
    low_hz: float = 300.0
    high_hz: float = 3_400.0
    peak_freq_radius: int = 2
    peak_time_radius: int = 3
    peak_floor_db: float = 50.0
    silence_db: float = -60.0
    peaks_per_second: float = 50.0
    bins_per_octave: int = 48
    fan_out: int = 5
    max_dt_frames: int = 20
    max_df_octaves: float = 1.0
    speeds: tuple[float, ...] = (0.943, 0.957, 0.971, 0.986, 1.0, 1.014, 1.029, 1.043, 1.057)
    tempos: tuple[float, ...] = (0.943, 0.957, 0.971, 0.986, 1.014, 1.029, 1.043, 1.057)
    match_reversed: bool = True
    offset_bin_frames: int = 2
    vote_cell_frames: int = 1
    min_score: float = 9.0
    min_span_s: float = 0.3
    min_segment_score: float = 1.0
    min_segments_score: float = 10.0

    def __post_init__(self) -> None:
        if not 0 < self.low_hz < self.high_hz <= self.analysis_rate / 2:
            raise ValueError(f"band {self.low_hz}-{self.high_hz} Hz does not fit {self.analysis_rate} Hz")
        if self.max_dt_frames >= 64 or self.fan_out < 1 or self.bins_per_octave < 1:
            raise ValueError("max_dt_frames < 64, fan_out >= 1 and bins_per_octave >= 1")
        if 1.0 not in self.speeds:
            raise ValueError("speeds must include 1.0 (the recording as it was)")
