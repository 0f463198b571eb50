"""The engine's one orchestrator: bytes -> decode -> VAD -> features -> ECAPA-TDNN -> unit vector.

:class:`Embedder` owns the MindSpore network: the graph exported by ``prepare-model`` (MINDIR),
compiled once at load for every length (a dynamic time axis), and it is the only copy of the
pipeline. The pipeline is measure, refuse, then spend: :meth:`Embedder.prepare` decodes and
measures (VAD, level, SNR, clipping, net speech; numpy, any thread), the caller may refuse the
recording on those figures, and only then :meth:`Embedder.embed_prepared` computes the features
and runs the network step, which the caller may pass in (``forward``): the service passes the
one that queues it on its inference thread.

MindSpore is neither thread-safe nor fork-safe: an Embedder must be created in the process that
uses it (after any fork). In the service the guard is the inference owner's single thread
(``speakers/runtime/inference_owner.py``); the lock around the network here only protects a
library caller who shares one Embedder between threads.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference import audio, features, guard, vad
from inference.config import CLIP_LEVEL, EngineConfig
from inference.errors import InferenceError, ModelError, ModelIntegrityError
from inference.prepare import read_manifest
from inference.scoring import average_embeddings, l2_normalise

logger = logging.getLogger(__name__)

# The network step: one recording's normalised feature windows -> its ``(192,)`` unit vector.
Forward = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class AudioQuality:
    """Figures the service uses to refuse poor recordings (its thresholds, not ours)."""

    clipping_ratio: float
    snr_db: float
    speech_ratio: float
    speech_level_dbfs: float
    bandwidth_hz: float = 0.0


@dataclass(frozen=True)
class PreparedAudio:
    """A recording ready for the network: its speech (long silences dropped) and what we measured.

    ``signal`` is the whole decoded recording at the engine's rate (mono float32), for checks that look
    at the recording itself rather than its voice (replay detection); it never leaves the request.
    """

    speech: np.ndarray
    duration_s: float
    speech_s: float
    quality: AudioQuality
    segments: tuple[tuple[float, float], ...]
    signal: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), repr=False, compare=False)


@dataclass(frozen=True)
class EmbeddingResult:
    """One recording's voiceprint: ``vector`` is ``(192,)`` float32 with unit L2 norm."""

    vector: np.ndarray
    model_version: str
    duration_s: float
    speech_s: float
    quality: AudioQuality


def measure_speech(samples: np.ndarray, config: EngineConfig, clipping_ratio: float | None = None) -> PreparedAudio:
    """VAD and quality figures of mono float32 samples already at the engine's rate. Raises :class:`NoSpeechError`.

    ``clipping_ratio``: measured by the decoder on the original samples; None: measured here.
    """
    # A constant offset carries no voice but would count as energy in every frame (speech with a
    # DC offset was refused as "no speech"); real recordings have none worth a rounding error.
    samples = samples - np.float32(samples.mean()) if samples.size else samples
    rate = config.audio.sample_rate
    mask, report = vad.detect_speech(samples, rate, config.vad)
    if clipping_ratio is None:
        clipping_ratio = float(np.mean(np.abs(samples) >= CLIP_LEVEL))
    return PreparedAudio(
        signal=samples,
        speech=vad.drop_long_silences(samples, mask, rate, config.vad),
        duration_s=samples.size / rate,
        speech_s=report.speech_s,
        quality=AudioQuality(
            clipping_ratio=clipping_ratio,
            snr_db=report.snr_db,
            speech_ratio=report.speech_ratio,
            speech_level_dbfs=report.speech_level_dbfs,
            bandwidth_hz=report.bandwidth_hz,
        ),
        segments=report.segments,
    )


def prepare_waveform(samples: np.ndarray, sample_rate: int, config: EngineConfig) -> PreparedAudio:
    """Decoded mono samples at any rate -> resampled to the engine's rate, VAD and quality figures."""
    return measure_speech(audio.resample(np.asarray(samples, dtype=np.float32), sample_rate,
                                         config.audio.sample_rate), config)


def prepare_audio(data: bytes, config: EngineConfig) -> PreparedAudio:
    """Decode an upload (to the engine's rate) and find its speech. Raises the :mod:`inference.errors` audio errors."""
    decoded = audio.decode(data, config.audio)
    prepared = measure_speech(decoded.samples, config, decoded.clipping_ratio)
    # the original recording's duration, not the resampled signal's (they differ by a sample at most)
    return dataclasses.replace(prepared, duration_s=decoded.duration_s)


def split_windows(frames: int, longest: int) -> list[tuple[int, int]]:
    """Cut ``frames`` into the fewest equal windows of at most ``longest`` frames: ``[(start, end), ...]``."""
    count = -(-frames // longest)
    edges = np.linspace(0, frames, count + 1).round().astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def window_groups(lengths: Sequence[int], longest: int) -> list[list[int]]:
    """Indices of windows to run together through a batched graph: one length per group, at most ``longest``
    frames in all (no call needs more working memory than one window of ``longest`` frames), in first-seen
    order of lengths. Raises ValueError for a window longer than ``longest``."""
    by_length: dict[int, list[int]] = {}
    for i, frames in enumerate(lengths):
        if frames > longest:
            raise ValueError(f"{frames} frames exceed the window of {longest}")
        by_length.setdefault(frames, []).append(i)
    groups = []
    for frames, members in by_length.items():
        size = max(1, longest // frames)
        groups += [members[start : start + size] for start in range(0, len(members), size)]
    return groups


def embed_in_groups(utterances: Sequence[np.ndarray], *, longest: int, size: int,
                    one: Callable[[Sequence[np.ndarray]], np.ndarray], inputs_of: Callable[[list[np.ndarray]], tuple],
                    graph: Callable[[], object], lock: threading.Lock) -> np.ndarray:
    """``(N, size)`` unit rows of ``utterances``, windows of one length together (:func:`window_groups`): a
    group of one through ``one`` (the one-utterance graph), the others through ``graph()`` (the batched graph,
    got with ``lock`` held) on ``inputs_of(group)``. The rule of every network's ``embed_windows``."""
    import mindspore as ms

    out = np.zeros((len(utterances), size), dtype=np.float32)
    for group in window_groups([feats.shape[0] for feats in utterances], longest):
        if len(group) == 1:
            out[group[0]] = one([utterances[group[0]]])[0]
            continue
        inputs = [ms.Tensor(a) for a in inputs_of([utterances[i] for i in group])]
        with lock:
            raw = graph()(*inputs).asnumpy()
        out[group] = l2_normalise(raw)
    return out


def load_graph(path: Path, inputs: tuple, what: str) -> object:
    """An exported graph as an ``nn.GraphCell`` with its dynamic ``inputs``; ModelIntegrityError when MindSpore
    cannot load it."""
    import mindspore as ms
    from mindspore import nn

    try:
        network = nn.GraphCell(ms.load(str(path)))
        network.set_inputs(*inputs)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ModelIntegrityError(f"the {what} cannot be loaded ({exc}): prepare the model again") from exc
    return network


_threads_set: int | None = None


def _set_threads(threads: int | None) -> None:
    """MindSpore's CPU kernel threads; settable once per process."""
    global _threads_set
    if threads is None or threads == _threads_set:
        return
    if _threads_set is not None:
        logger.warning("MindSpore already runs %d threads in this process; %d ignored", _threads_set, threads)
        return
    import mindspore as ms

    ms.device_context.cpu.op_tuning.threads_num(threads)
    _threads_set = threads


class Embedder:
    """Speaker embeddings from recordings with the pretrained ECAPA-TDNN on MindSpore.

    Build it with :meth:`load`. All public methods are thread-safe.
    """

    def __init__(self, config: EngineConfig, network: object, manifest: dict) -> None:
        self.config = config
        self.manifest = manifest
        self.model_version: str = manifest["version"]
        self._network = network
        self._windows_network: object | None = None  # the batched graph, loaded by the first embed_windows
        self._lock = threading.Lock()
        self._compiled = False
        self._collapse_point: np.ndarray | None = None
        self.load_seconds = 0.0
        self.compile_seconds = 0.0

    @classmethod
    def load(cls, config: EngineConfig = EngineConfig(), warm: bool = True, verify_hash: bool = True) -> Embedder:
        """Check the prepared model against ``config`` and load its graph (once per process, after any fork).

        With ``warm`` the graph is compiled now (under a second), so the first request does not wait for it.
        ``verify_hash=False`` skips hashing the graph (0.2 s) for a caller that just checked it.

        Raises
        ------
        ModelNotPreparedError
            No converted model in ``config.model_dir``.
        ModelIntegrityError
            Hash or manifest mismatch, or a graph MindSpore cannot load.
        """
        started = time.perf_counter()
        manifest = read_manifest(Path(config.model_dir), config.model, config.frontend,
                                 verify=("graph",) if verify_hash else ())
        import mindspore as ms
        import threadpoolctl

        from inference.ecapa import dynamic_inputs

        ms.set_context(mode=ms.GRAPH_MODE)
        ms.set_device("CPU")
        _set_threads(config.threads)
        # numpy's BLAS (OpenBLAS) would start its own threads for the small front-end products;
        # they spin after each call and take the cores from MindSpore's next forward pass
        # (measured: 12 ms of 55 for 3 s of speech). One BLAS thread is plenty for the front end.
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        network = load_graph(Path(config.model_dir) / manifest["graph"], dynamic_inputs(config.model), "model graph")
        embedder = cls(config, network, manifest)
        embedder.load_seconds = time.perf_counter() - started
        logger.info("loaded %s in %.2f s", embedder.model_version, embedder.load_seconds)
        if warm:
            embedder.warmup()
        return embedder

    # -- public API ---------------------------------------------------------------------

    def embed(self, data: bytes, forward: Forward | None = None) -> EmbeddingResult:
        """Embed one uploaded recording. Raises an :class:`~inference.errors.AudioError` subclass."""
        return self.embed_prepared(self.prepare(data), forward)

    def embed_waveform(self, samples: np.ndarray, sample_rate: int, forward: Forward | None = None) -> EmbeddingResult:
        """Embed already-decoded mono samples at any rate."""
        return self.embed_prepared(self.prepare_waveform(samples, sample_rate), forward)

    def embed_many(self, items: Sequence[bytes], forward: Forward | None = None) -> list[EmbeddingResult | InferenceError]:
        """Embed several recordings (one by one); an unusable one yields its audio error in its place.

        A model error is not about one recording: it is raised.
        """
        results: list[EmbeddingResult | InferenceError] = []
        for data in items:
            try:
                results.append(self.embed(data, forward))
            except ModelError:
                raise
            except InferenceError as exc:
                results.append(exc)
        return results

    def embed_prepared(self, prepared: PreparedAudio, forward: Forward | None = None) -> EmbeddingResult:
        """The pipeline after :meth:`prepare`: features -> ``forward`` -> the checked result.

        ``forward`` is the network step (:meth:`forward` when None); the service passes the one
        that queues it on its inference thread, so this stays the only copy of the pipeline.
        Call it once a recording has passed whatever the caller checks on ``prepared.quality``:
        the network is the expensive step.
        """
        return self.finish(prepared, (forward or self.forward)(self.features(prepared)))

    def prepare(self, data: bytes) -> PreparedAudio:
        """Decode an upload and find its speech (numpy only: any thread). Raises the audio errors."""
        return prepare_audio(data, self.config)

    def prepare_waveform(self, samples: np.ndarray, sample_rate: int) -> PreparedAudio:
        """Decoded mono samples at any rate -> speech and quality figures (numpy only: any thread)."""
        return prepare_waveform(samples, sample_rate, self.config)

    def features(self, prepared: PreparedAudio) -> list[np.ndarray]:
        """Normalised features of the speech, one ``(T, 80)`` array per window (numpy only: any thread).

        Speech longer than ``config.window_frames`` is cut into equal windows (see ``EngineConfig``).
        Raises DegenerateAudioError when a few frames dominate the filterbank (:mod:`inference.guard`).
        """
        return self.speech_features(prepared.speech)

    def speech_features(self, speech: np.ndarray) -> list[np.ndarray]:
        """:meth:`features` of speech samples at the engine's rate (a stretch the caller cut out itself)."""
        fbank = features.fbank(speech, self.config.frontend)
        guard.check_features(fbank, self.config.guard)
        return [
            features.normalise(fbank[start:end], self.config.frontend)
            for start, end in split_windows(fbank.shape[0], self.config.window_frames)
        ]

    def forward(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """The network on one recording's windows -> ``(192,)`` unit vector (their average if several)."""
        return self.pool(self.embed_features(windows))

    @staticmethod
    def pool(rows: np.ndarray) -> np.ndarray:
        """One recording's window embeddings ``(N, 192)`` -> its ``(192,)`` unit vector (their average if several).

        For a caller that runs the windows one by one (the service queues each window on its own).
        """
        return rows[0] if len(rows) == 1 else average_embeddings(rows)

    def finish(self, prepared: PreparedAudio, vector: np.ndarray) -> EmbeddingResult:
        """The result record of a recording and its vector (any thread, after :meth:`warmup`).

        Raises DegenerateAudioError when the vector sits at the network's collapse point.
        """
        guard.check_embedding(vector, self.collapse_point(), self.config.guard)
        return EmbeddingResult(
            vector=vector,
            model_version=self.model_version,
            duration_s=prepared.duration_s,
            speech_s=prepared.speech_s,
            quality=prepared.quality,
        )

    def embed_features(self, utterances: Sequence[np.ndarray]) -> np.ndarray:
        """The network on normalised features ``[(T_i, 80)]`` -> ``(N, 192)`` unit rows.

        Each ``T_i`` must be at most ``config.window_frames`` (:meth:`features` cuts longer speech).
        Utterances run one at a time: on CPU a batch is no faster per utterance (docs/serving.md).
        """
        import mindspore as ms

        from inference.ecapa import frame_inputs

        out = np.zeros((len(utterances), self.config.model.embedding_size), dtype=np.float32)
        for i, feats in enumerate(utterances):
            if feats.shape[0] > self.config.window_frames:
                raise ValueError(f"{feats.shape[0]} frames exceed the window of {self.config.window_frames}")
            inputs = [ms.Tensor(a) for a in frame_inputs(feats, self.config.model)]
            with self._lock:
                started = time.perf_counter()
                raw = self._network(*inputs).asnumpy()
                if not self._compiled:
                    self._compiled = True
                    self.compile_seconds = time.perf_counter() - started
                    logger.info("compiled the network (every length) in %.2f s", self.compile_seconds)
            out[i] = l2_normalise(raw[0])
        return out

    def embed_windows(self, utterances: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`embed_features` for many short windows (diarization): the same ``(N, 192)`` rows, to float
        rounding, with windows of one length run together through the batched graph.

        Windows of one length go in groups of up to ``config.window_frames`` frames in all (so no call
        needs more working memory than one window of :meth:`embed_features`); a length that occurs once
        takes the one-utterance graph. The batched graph (``ecapa-windows.mindir``) is loaded and compiled
        by the first call (once per process: both axes are dynamic), so a service that never diarizes
        does not hold it.
        """
        from inference.ecapa import batch_frame_inputs

        return embed_in_groups(utterances, longest=self.config.window_frames, size=self.config.model.embedding_size,
                               one=self.embed_features, inputs_of=lambda group: batch_frame_inputs(group, self.config.model),
                               graph=self._windows_graph, lock=self._lock)

    def _windows_graph(self) -> object:
        """The batched graph (call with the lock held): loaded, hash-checked and compiled on first use."""
        if self._windows_network is None:
            from inference.ecapa import batch_inputs

            started = time.perf_counter()
            manifest = read_manifest(Path(self.config.model_dir), self.config.model, self.config.frontend,
                                     verify=("windows_graph",))
            network = load_graph(Path(self.config.model_dir) / manifest["windows_graph"], batch_inputs(self.config.model),
                                 "windows graph")
            self._windows_network = network
            logger.info("loaded the windows graph in %.2f s", time.perf_counter() - started)
        return self._windows_network

    def warmup(self) -> None:
        """Compile the network now (once: the time axis is dynamic) and find its collapse point."""
        self.collapse_point()

    def collapse_point(self) -> np.ndarray:
        """The embedding of features that carry nothing (zeros after normalisation): ``(192,)`` unit.

        Computed once, by the first call (the network's first pass, which also compiles it); call
        it from the thread that owns the network (:meth:`load` with ``warm`` does).
        """
        if self._collapse_point is None:
            zeros = np.zeros((201, self.config.model.input_size), dtype=np.float32)
            self._collapse_point = self.embed_features([zeros])[0]
        return self._collapse_point

    @property
    def ready(self) -> bool:
        """The graph is compiled: a forward pass of any length runs at once."""
        return self._compiled

    @property
    def compiled_shapes(self) -> frozenset[int | None]:
        """Time-axis lengths compiled so far: ``{None}`` (the dynamic axis, every length) once compiled."""
        return frozenset({None}) if self._compiled else frozenset()
