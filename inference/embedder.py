"""The engine's one orchestrator: bytes -> decode -> VAD -> features -> ECAPA-TDNN -> unit vector.

:class:`Embedder` owns the MindSpore network. MindSpore is neither thread-safe nor fork-safe,
so every forward pass runs behind one lock, and an Embedder must be created in the process
that uses it (after any fork). Everything before the network (decoding, VAD, features) is
plain numpy and runs outside the lock, so concurrent requests overlap their pre-processing.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from inference import audio, features, vad
from inference.config import EngineConfig
from inference.errors import InferenceError, ModelIntegrityError
from inference.prepare import read_manifest
from inference.scoring import average_embeddings, l2_normalise

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class AudioQuality:
    """Figures the service uses to refuse poor recordings (its thresholds, not ours)."""

    clipping_ratio: float
    snr_db: float
    speech_ratio: float
    speech_level_dbfs: float


@dataclass(frozen=True)
class PreparedAudio:
    """A recording ready for the network: its speech (long silences dropped) and what we measured."""

    speech: np.ndarray
    duration_s: float
    speech_s: float
    quality: AudioQuality
    segments: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class EmbeddingResult:
    """One recording's voiceprint: ``vector`` is ``(192,)`` float32 with unit L2 norm."""

    vector: np.ndarray
    model_version: str
    duration_s: float
    speech_s: float
    quality: AudioQuality


def prepare_waveform(
    samples: np.ndarray, sample_rate: int, config: EngineConfig, clipping_ratio: float | None = None
) -> PreparedAudio:
    """VAD + quality on decoded mono samples (resampled here if needed). Raises :class:`NoSpeechError`."""
    samples = audio.resample(np.asarray(samples, dtype=np.float32), sample_rate, config.audio.sample_rate)
    rate = config.audio.sample_rate
    mask, report = vad.detect_speech(samples, rate, config.vad)
    if clipping_ratio is None:
        clipping_ratio = float(np.mean(np.abs(samples) >= 0.999))
    return PreparedAudio(
        speech=vad.drop_long_silences(samples, mask, rate, config.vad),
        duration_s=samples.size / rate,
        speech_s=report.speech_s,
        quality=AudioQuality(
            clipping_ratio=clipping_ratio,
            snr_db=report.snr_db,
            speech_ratio=report.speech_ratio,
            speech_level_dbfs=report.speech_level_dbfs,
        ),
        segments=report.segments,
    )


def prepare_audio(data: bytes, config: EngineConfig) -> PreparedAudio:
    """Decode an upload and find its speech. Raises the :mod:`inference.errors` audio errors."""
    decoded = audio.decode(data, config.audio)
    prepared = prepare_waveform(decoded.samples, decoded.sample_rate, config, decoded.clipping_ratio)
    # the original recording's duration, not the resampled signal's (they differ by a sample at most)
    return dataclasses.replace(prepared, duration_s=decoded.duration_s)


def bucket_for(frames: int, buckets: Sequence[int]) -> int:
    """The smallest bucket holding ``frames`` (the caller splits anything longer than the largest)."""
    for size in buckets:
        if frames <= size:
            return size
    raise ValueError(f"{frames} frames exceed the largest bucket {buckets[-1]}")


def split_windows(frames: int, longest: int) -> list[tuple[int, int]]:
    """Cut ``frames`` into the fewest equal windows of at most ``longest`` frames: ``[(start, end), ...]``."""
    count = -(-frames // longest)
    edges = np.linspace(0, frames, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


class Embedder:
    """Speaker embeddings from recordings with the pretrained ECAPA-TDNN on MindSpore.

    Build it with :meth:`load`. All public methods are thread-safe.
    """

    def __init__(self, config: EngineConfig, network: object, manifest: dict) -> None:
        self.config = config
        self.manifest = manifest
        self.model_version: str = manifest["version"]
        self._network = network
        self._lock = threading.Lock()
        self._compiled: set[int] = set()
        self.load_seconds = 0.0

    @classmethod
    def load(cls, config: EngineConfig = EngineConfig()) -> "Embedder":
        """Check the prepared model against ``config`` and load it (once per process, after any fork).

        Raises
        ------
        ModelNotPreparedError
            No converted model in ``config.model_dir``.
        ModelIntegrityError
            Hash, manifest or parameter mismatch.
        """
        started = time.perf_counter()
        manifest = read_manifest(Path(config.model_dir), config.model, config.frontend)
        import mindspore as ms
        import threadpoolctl

        from inference.ecapa import EcapaTdnn

        ms.set_context(mode=ms.GRAPH_MODE)
        ms.set_device("CPU")
        # numpy's BLAS (OpenBLAS) would start its own threads for the small front-end products;
        # they spin after each call and take the cores from MindSpore's next forward pass
        # (measured: 12 ms of 55 for 3 s of speech). One BLAS thread is plenty for the front end.
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        network = EcapaTdnn(config.model)
        try:
            params = ms.load_checkpoint(str(Path(config.model_dir) / manifest["checkpoint"]))
            not_loaded, unexpected = ms.load_param_into_net(network, params, strict_load=True)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise ModelIntegrityError(f"the converted checkpoint cannot be loaded ({exc}): prepare the model again") from exc
        expected = {p.name for p in network.get_parameters()}
        if not_loaded or unexpected or set(params) != expected:
            raise ModelIntegrityError(
                "the converted checkpoint does not fit the network: prepare the model again",
                missing=sorted(not_loaded)[:10],
                unexpected=sorted(unexpected)[:10],
            )
        network.set_train(False)
        embedder = cls(config, network, manifest)
        embedder.load_seconds = time.perf_counter() - started
        log.info("loaded %s in %.2f s", embedder.model_version, embedder.load_seconds)
        return embedder

    # -- public API ---------------------------------------------------------------------

    def embed(self, data: bytes) -> EmbeddingResult:
        """Embed one uploaded recording. Raises an :class:`~inference.errors.AudioError` subclass."""
        return self._embed_prepared([prepare_audio(data, self.config)])[0]

    def embed_waveform(self, samples: np.ndarray, sample_rate: int) -> EmbeddingResult:
        """Embed already-decoded mono samples at any rate."""
        return self._embed_prepared([prepare_waveform(samples, sample_rate, self.config)])[0]

    def embed_many(self, items: Sequence[bytes]) -> list[EmbeddingResult | InferenceError]:
        """Embed several recordings in batches; a bad item yields its error in its place."""
        prepared: list[PreparedAudio | InferenceError] = []
        for data in items:
            try:
                prepared.append(prepare_audio(data, self.config))
            except InferenceError as exc:
                prepared.append(exc)
        good = [p for p in prepared if isinstance(p, PreparedAudio)]
        results = iter(self._embed_prepared(good)) if good else iter(())
        return [next(results) if isinstance(p, PreparedAudio) else p for p in prepared]

    def embed_features(self, utterances: Sequence[np.ndarray]) -> np.ndarray:
        """The network on normalised features ``[(T_i, 80)]`` -> ``(N, 192)`` unit rows.

        Each ``T_i`` must fit the largest bucket (see :meth:`_embed_prepared` for longer input).
        Utterances run one at a time: on CPU a batch is no faster per utterance, and every
        batch shape would be one more compiled graph holding its own memory.
        """
        import mindspore as ms

        from inference.ecapa import frame_inputs

        out = np.zeros((len(utterances), self.config.model.embedding_size), dtype=np.float32)
        for i, feats in enumerate(utterances):
            frames = bucket_for(feats.shape[0], self.config.buckets)
            inputs = [ms.Tensor(a) for a in frame_inputs([feats], frames, self.config.model)]
            with self._lock:
                if frames not in self._compiled:
                    log.info("compiling the network for %d frames", frames)
                    self._compiled.add(frames)
                raw = self._network(*inputs).asnumpy()
            out[i] = l2_normalise(raw[0])
        return out

    def warmup(self, buckets: Iterable[int] | None = None) -> None:
        """Compile the network for these buckets (default: all) now, so no request waits for it."""
        dim = self.config.model.input_size
        rng = np.random.default_rng(0)
        for frames in buckets or self.config.buckets:
            self.embed_features([rng.standard_normal((frames, dim)).astype(np.float32)])

    @property
    def compiled_shapes(self) -> frozenset[int]:
        """Buckets (frame counts) compiled so far in this process."""
        return frozenset(self._compiled)

    # -- internals ----------------------------------------------------------------------

    def _embed_prepared(self, prepared: Sequence[PreparedAudio]) -> list[EmbeddingResult]:
        """Features per recording, windows for long ones, one batched network pass, window averaging."""
        longest = self.config.buckets[-1]
        windows: list[np.ndarray] = []
        owner: list[int] = []
        for i, item in enumerate(prepared):
            fbank = features.fbank(item.speech, self.config.frontend)
            for start, end in split_windows(fbank.shape[0], longest):
                windows.append(features.normalise(fbank[start:end], self.config.frontend))
                owner.append(i)
        vectors = self.embed_features(windows)
        owner_arr = np.array(owner)
        results = []
        for i, item in enumerate(prepared):
            rows = vectors[owner_arr == i]
            vector = rows[0] if len(rows) == 1 else average_embeddings(rows)
            results.append(
                EmbeddingResult(
                    vector=vector,
                    model_version=self.model_version,
                    duration_s=item.duration_s,
                    speech_s=item.speech_s,
                    quality=item.quality,
                )
            )
        return results
