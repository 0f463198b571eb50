"""The engine's contract: one frozen config object, plain Python.

Nothing here reads the environment or Django settings: the caller (the Django service,
the command line, a benchmark) builds an :class:`EngineConfig` and hands it in.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class AudioConfig:
    """Decoding limits. Durations are in seconds of the original recording."""

    sample_rate: int = 16_000
    min_duration_s: float = 0.5
    max_duration_s: float = 600.0
    max_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True)
class VadConfig:
    """Energy-based speech activity detection.

    ``frame_ms``-long frames whose energy is within ``threshold_db`` of the loud end of
    the recording (and above an absolute floor) are speech. Silences longer than
    ``max_silence_s`` are cut down to ``keep_silence_s`` before the embedding; shorter
    pauses are kept, since the model was trained on natural speech with pauses.
    """

    frame_ms: float = 20.0
    threshold_db: float = 30.0
    floor_dbfs: float = -55.0
    min_speech_s: float = 0.3
    max_silence_s: float = 0.6
    keep_silence_s: float = 0.2
    hangover_frames: int = 5


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
