"""CAM++ as a second network beside ECAPA: prepared audio -> Kaldi fbank -> mean norm -> CAM++ -> unit vector.

:class:`CampplusModel` is the CAM++-specific half of the pipeline, shaped to plug into the one
orchestrator (:mod:`inference.embedder`): decoding and VAD happen once
(:func:`inference.embedder.prepare_audio`), then each network takes the same
:class:`~inference.embedder.PreparedAudio`:

    windows = model.features(prepared)   # numpy only, any thread
    vector = model.forward(windows)      # the network: the inference owner's thread
    model.check(vector)                  # the collapse-point guard

Like :class:`~inference.embedder.Embedder`, it loads the graph that ``prepare-model`` exported
(``campplus.mindir``, a dynamic time axis) with ``nn.GraphCell``, compiles it once at load for
every length, and runs every forward pass behind one lock (MindSpore is neither thread-safe nor
fork-safe: load it in the process that uses it, after any fork).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inference import guard, kaldi_fbank
from inference.config import EngineConfig
from inference.embedder import PreparedAudio, _set_threads, embed_in_groups, load_graph, split_windows
from inference.errors import AudioTooShortError
from inference.prepare import read_campplus_manifest
from inference.scoring import average_embeddings, l2_normalise

logger = logging.getLogger(__name__)

# Kaldi's natural-log energies -> dB, for the impulse guard measured on dB filterbanks.
_LN_TO_DB = 10.0 / np.log(10.0)
# The fewest feature frames the network takes: two after its stride, for the unbiased std.
MIN_FRAMES = 3


class CampplusModel:
    """Speaker embeddings with 3D-Speaker's CAM++ on MindSpore. Build it with :meth:`load`; thread-safe."""

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
    def load(cls, config: EngineConfig = EngineConfig(), warm: bool = True, verify_hash: bool = True) -> CampplusModel:
        """Check ``campplus.json`` against ``config`` and load the graph (once per process, after any fork).

        Raises
        ------
        ModelNotPreparedError
            CAM++ was not prepared in ``config.model_dir``.
        ModelIntegrityError
            Hash or manifest mismatch, or a graph MindSpore cannot load.
        """
        started = time.perf_counter()
        manifest = read_campplus_manifest(Path(config.model_dir), config.campplus, config.kaldi_fbank,
                                          verify=("graph",) if verify_hash else ())
        import mindspore as ms
        import threadpoolctl

        from inference.campplus import dynamic_inputs

        ms.set_context(mode=ms.GRAPH_MODE)
        ms.set_device("CPU")
        _set_threads(config.threads)
        threadpoolctl.threadpool_limits(limits=1, user_api="blas")
        network = load_graph(Path(config.model_dir) / manifest["graph"], dynamic_inputs(config.campplus), "CAM++ graph")
        model = cls(config, network, manifest)
        model.load_seconds = time.perf_counter() - started
        logger.info("loaded %s in %.2f s", model.model_version, model.load_seconds)
        if warm:
            model.warmup()
        return model

    # -- the pipeline -------------------------------------------------------------------------

    def features(self, prepared: PreparedAudio) -> list[np.ndarray]:
        """Mean-normalised Kaldi fbank of the speech, one ``(T, 80)`` array per window (numpy only: any thread).

        Speech longer than ``config.campplus.window_frames`` is cut into equal windows, each
        normalised on its own (as ECAPA's). Raises DegenerateAudioError when a few frames dominate
        the filterbank (the same guard as ECAPA's, in dB), AudioTooShortError below 3 frames.
        """
        return self.speech_features(prepared.speech)

    def speech_features(self, speech: np.ndarray) -> list[np.ndarray]:
        """:meth:`features` of speech samples at the engine's rate."""
        fbank = kaldi_fbank.fbank(speech, self.config.kaldi_fbank)
        if fbank.shape[0] < MIN_FRAMES:
            raise AudioTooShortError(
                f"{speech.size} samples of speech are too few for CAM++",
                speech_s=round(speech.size / self.config.audio.sample_rate, 3), min_frames=MIN_FRAMES)
        guard.check_features(fbank * np.float32(_LN_TO_DB), self.config.guard)
        return [
            kaldi_fbank.normalise(fbank[start:end], self.config.kaldi_fbank)
            for start, end in split_windows(fbank.shape[0], self.config.campplus.window_frames)
        ]

    def window_features(self, speech: np.ndarray) -> np.ndarray:
        """One diarization window's features ``(T, 80)``: :meth:`speech_features` without the guard or the cut
        (a window with a click is one vote among many; it must not refuse the whole recording)."""
        return kaldi_fbank.normalise(kaldi_fbank.fbank(speech, self.config.kaldi_fbank), self.config.kaldi_fbank)

    def forward(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """The network on one recording's windows -> ``(192,)`` unit vector (their average if several)."""
        rows = self.embed_features(windows)
        return rows[0] if len(rows) == 1 else average_embeddings(rows)

    def check(self, vector: np.ndarray) -> None:
        """Refuse (DegenerateAudioError) a vector at the network's collapse point (after :meth:`warmup`)."""
        guard.check_embedding(vector, self.collapse_point(), self.config.guard)

    def embed_prepared(self, prepared: PreparedAudio) -> np.ndarray:
        """features -> forward -> check, for callers without an orchestrator (tools, benchmarks)."""
        vector = self.forward(self.features(prepared))
        self.check(vector)
        return vector

    def embed_features(self, utterances: Sequence[np.ndarray]) -> np.ndarray:
        """The network on normalised features ``[(T_i, 80)]`` -> ``(N, 192)`` unit rows, one at a time.

        Each ``T_i`` must be at least 3 and at most ``config.campplus.window_frames``.
        """
        import mindspore as ms

        from inference.campplus import frame_inputs

        config = self.config.campplus
        out = np.zeros((len(utterances), config.embedding_size), dtype=np.float32)
        for i, feats in enumerate(utterances):
            if feats.shape[0] > config.window_frames:
                raise ValueError(f"{feats.shape[0]} frames exceed the window of {config.window_frames}")
            inputs = [ms.Tensor(a) for a in frame_inputs(feats, config)]
            with self._lock:
                started = time.perf_counter()
                raw = self._network(*inputs).asnumpy()
                if not self._compiled:
                    self._compiled = True
                    self.compile_seconds = time.perf_counter() - started
                    logger.info("compiled CAM++ (every length) in %.2f s", self.compile_seconds)
            out[i] = l2_normalise(raw[0])
        return out

    def embed_windows(self, utterances: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`embed_features` for many short windows (diarization): the same ``(N, 192)`` rows, to float
        rounding, with windows of one length run together through the batched graph.

        Grouped as ECAPA's (:func:`inference.embedder.window_groups`); a length that occurs once takes
        the one-utterance graph. The batched graph (``campplus-windows.mindir``) is loaded, hash-checked
        and compiled by the first call, so a worker that never diarizes does not hold it.
        """
        from inference.campplus import batch_frame_inputs

        config = self.config.campplus
        return embed_in_groups(utterances, longest=config.window_frames, size=config.embedding_size,
                               one=self.embed_features, inputs_of=lambda group: batch_frame_inputs(group, config),
                               graph=self._windows_graph, lock=self._lock)

    def _windows_graph(self) -> object:
        """The batched graph (call with the lock held): loaded, hash-checked and compiled on first use."""
        if self._windows_network is None:
            from inference.campplus import batch_inputs

            started = time.perf_counter()
            manifest = read_campplus_manifest(Path(self.config.model_dir), self.config.campplus,
                                              self.config.kaldi_fbank, verify=("windows_graph",))
            network = load_graph(Path(self.config.model_dir) / manifest["windows_graph"],
                                 batch_inputs(self.config.campplus), "CAM++ windows graph")
            self._windows_network = network
            logger.info("loaded the CAM++ windows graph in %.2f s", time.perf_counter() - started)
        return self._windows_network

    @property
    def windows_loaded(self) -> bool:
        """The batched graph is held (a diarization ran in this process)."""
        return self._windows_network is not None

    def warmup(self) -> None:
        """Compile the network now (once: the time axis is dynamic) and find its collapse point."""
        self.collapse_point()

    def collapse_point(self) -> np.ndarray:
        """The embedding of features that carry nothing (zeros after normalisation): ``(192,)`` unit."""
        if self._collapse_point is None:
            zeros = np.zeros((201, self.config.campplus.input_size), dtype=np.float32)
            self._collapse_point = self.embed_features([zeros])[0]
        return self._collapse_point

    @property
    def ready(self) -> bool:
        """The graph is compiled: a forward pass of any length runs at once."""
        return self._compiled
