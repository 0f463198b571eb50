"""The one owner of the inference engine (``inference/``) in this process.

MindSpore is neither fork-safe nor thread-safe, while the dev server and gunicorn's gthread
workers run views in several threads. So each process gets one inference thread that loads the
model (lazily, after any fork) and runs every forward pass: that thread is the service's guard
around the network. The pipeline itself is the engine's (:class:`inference.Embedder`); this
module only passes it the queued forward step. Decoding, VAD and the quality figures run in the
request's own thread (:func:`prepare`), so a recording the quality gate refuses never reaches the
queue, and one request's pre-processing overlaps another's forward pass; the inference thread
only gets the feature windows, one window (at most 20 s of speech) per job, queued under the key
that pays for it (speakers/runtime/payer.py) in a queue fair across keys (:mod:`.fair_queue`): a
key's 3 s verify waits for at most the window running, not for another key's batch of minutes.
The network is one graph compiled once for every length, so no request ever waits for the
compilation of a length: only the first load (about a second) comes before the first answer. Importing this module loads nothing.

This module adapts Django settings to the engine's plain config (inference/ reads no settings)
and turns the engine's model errors into 503s: ``model_not_prepared`` when there is no converted
model, ``model_unavailable`` when it is damaged or cannot be loaded or run (:class:`EngineUnavailable`).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Cheap to import: MindSpore itself is imported by Embedder.load, in the inference thread.
from inference import (
    AudioConfig,
    Embedder,
    EmbeddingResult,
    EngineConfig,
    ModelError,
    ModelNotPreparedError,
    PreparedAudio,
    audio,
    diarization,
    read_manifest,
)
from inference.audio import DecodedAudio
from inference.campplus_model import CampplusModel
from inference.config import DiarizationConfig, FusionConfig
from inference.diarization import Diarization
from inference.embedder import Forward
from inference.fusion import FusedEmbedder, fused_version, load_engine, model_parts
from inference.prepare import CAMPPLUS_MANIFEST_FILE, read_campplus_manifest

from ..exceptions import EngineUnavailable, ModelNotPrepared
from .fair_queue import FairExecutor
from .payer import current_payer
from .process_local import ProcessLocal

logger = logging.getLogger(__name__)

PREPARE_HINT = "run `python manage.py prepare_model` (see README) to convert the pretrained weights"

COLD, WARMING_UP, READY, FAILED = "cold", "warming_up", "ready", "failed"


class _Owner:
    """The inference thread of one process, the model it loaded and where that stands.

    ``state``: ``cold`` (nothing loaded yet), ``warming_up`` (loading and compiling), ``ready``,
    or ``failed`` (the last load failed; the next request tries again).
    """

    def __init__(self) -> None:
        self.executor = FairExecutor(thread_name="voiceprint-inference")
        self.load_lock = threading.Lock()
        self.embedder: Embedder | None = None
        # CAM++ for diarization's windows beside an ECAPA engine (VOICEPRINT_DIARIZE_WINDOWS=campplus):
        # loaded by the first diarize, so a worker that never diarizes never holds it.
        self.windows_model: CampplusModel | None = None
        self.state = COLD


# A forked child has none of the parent's threads: it never reuses the parent's executor or locks.
_owner: ProcessLocal[_Owner] = ProcessLocal(_Owner)
# (process, graph hash) that require_prepared_model checked: a worker loading the same graph
# right after need not hash its 83 MB again.
_graph_checked_in: tuple[int, str] | None = None


def engine_config() -> EngineConfig:
    return EngineConfig(
        model_dir=Path(settings.VOICEPRINT_MODEL_DIR),
        threads=settings.VOICEPRINT_ENGINE_THREADS,
        audio=AudioConfig(
            min_duration_s=settings.VOICEPRINT_MIN_AUDIO_S,
            max_duration_s=settings.VOICEPRINT_MAX_AUDIO_S,
            max_bytes=settings.VOICEPRINT_MAX_UPLOAD_BYTES,
            max_channels=settings.VOICEPRINT_MAX_CHANNELS,
            max_decoded_values=settings.VOICEPRINT_MAX_DECODED_VALUES,
        ),
        fusion=FusionConfig(models=tuple(settings.VOICEPRINT_MODELS)),
    )


def embedding_size() -> int:
    """The length of the configured engine's vectors (192, or 384 fused); loads nothing."""
    return engine_config().embedding_size


def manifest_path() -> Path:
    return Path(settings.VOICEPRINT_MODEL_DIR) / "manifest.json"


def model_missing_message() -> str:
    return f"The speaker model is not prepared ({manifest_path()} is missing): {PREPARE_HINT}."


def require_prepared_model() -> None:
    """Refuse to start a server without a valid converted model.

    Checks the manifest against this engine's contract and MindSpore version, and the sha256 of
    the graph the workers load (a fifth of a second); it does not load MindSpore, so it is safe
    before a fork.
    """
    global _graph_checked_in
    if not manifest_path().is_file():
        raise ImproperlyConfigured(model_missing_message())
    config = engine_config()
    try:
        manifest = read_manifest(config.model_dir, config.model, config.frontend, verify=("graph",))
        if config.fusion.fused:
            read_campplus_manifest(config.model_dir, config.campplus, config.kaldi_fbank, verify=("graph",))
    except ModelError as exc:
        raise ImproperlyConfigured(f"The speaker model in {config.model_dir} is not usable: {exc.message}") from exc
    if settings.VOICEPRINT_DIARIZE_WINDOWS == "campplus" and not config.fusion.fused:
        try:  # the hash of its windows graph is checked when a diarization first loads it
            read_campplus_manifest(config.model_dir, config.campplus, config.kaldi_fbank, verify=())
        except ModelError as exc:
            raise ImproperlyConfigured(
                f"CAM++ embeds diarization's windows (VOICEPRINT_DIARIZE_WINDOWS=campplus) and is not usable in "
                f"{config.model_dir}: {exc.message}. Run `make model`, or set VOICEPRINT_DIARIZE_WINDOWS=ecapa") from exc
    _graph_checked_in = (os.getpid(), manifest["graph_sha256"])


def _load(config: EngineConfig) -> Embedder:
    checked = _graph_checked_in
    current = None
    if checked is not None and checked[0] == os.getpid():
        try:
            current = json.loads(manifest_path().read_text(encoding="utf-8")).get("graph_sha256")
        except (OSError, ValueError, AttributeError):
            pass
    embedder = load_engine(config, verify_hash=not (checked and current == checked[1]))
    logger.info("speaker model %s loaded in process %s", embedder.model_version, os.getpid())
    return embedder


def get_embedder() -> Embedder:
    """The process's embedder, loaded on first use. Raises EngineUnavailable if it cannot load."""
    owner = _owner.get()
    if owner.embedder is not None:
        return owner.embedder
    with owner.load_lock:
        if owner.embedder is None:
            if not manifest_path().is_file():
                owner.state = FAILED
                raise ModelNotPrepared(model_missing_message(), model_dir=str(settings.VOICEPRINT_MODEL_DIR))
            owner.state = WARMING_UP
            try:
                owner.embedder = owner.executor.submit(_load, engine_config()).result()
            except ModelError as exc:
                owner.state = FAILED
                unavailable = ModelNotPrepared if isinstance(exc, ModelNotPreparedError) else EngineUnavailable
                raise unavailable(f"{exc.message} ({PREPARE_HINT})", model_error=exc.code,
                                        **exc.detail) from exc
            except BaseException:
                owner.state = FAILED
                raise
            owner.state = READY
    return owner.embedder


def model_version() -> str:
    return get_embedder().model_version


def _queued_features(embedder: Embedder | CampplusModel, windows: Sequence[np.ndarray], payer: str | None,
                     *, batched: bool = False) -> np.ndarray:
    """``windows`` through the network as one job of the fair queue, paid by ``payer`` at their seconds of audio;
    a model error is 503 (once, here). ``batched``: windows of one length together (``embed_windows``)."""
    frame_s = embedder.config.frontend.hop_length / embedder.config.frontend.sample_rate
    cost = sum(window.shape[0] for window in windows) * frame_s
    run = embedder.embed_windows if batched else embedder.embed_features
    try:
        return _owner.get().executor.submit(run, windows, key=payer, cost=cost).result()
    except ModelError as exc:
        raise EngineUnavailable(exc.message, model_error=exc.code, **exc.detail) from exc


def _queued_forward(embedder: Embedder) -> Forward:
    """The engine's network step, queued on this process's inference thread."""

    def forward(windows: Sequence[np.ndarray]) -> np.ndarray:
        # One job per window, each waiting for the last: between two windows of a long recording
        # (or two files of a batch) the queue serves whoever has been served least.
        payer = current_payer()
        return embedder.pool(np.concatenate([_queued_features(embedder, [window], payer) for window in windows]))

    return forward


def prepare(data: bytes) -> PreparedAudio:
    """Decode and measure one recording in the caller's thread (no network). Raises the engine's AudioError subclasses."""
    return get_embedder().prepare(data)


def embed_prepared(prepared: PreparedAudio) -> EmbeddingResult:
    """Features in the caller's thread, then the forward pass queued on the inference thread."""
    embedder = get_embedder()
    return embedder.embed_prepared(prepared, _queued_forward(embedder))


def embed_waveform(samples: np.ndarray, sample_rate: int) -> EmbeddingResult:
    """Embed already-decoded mono samples (a streamed window). Raises the engine's AudioError subclasses."""
    embedder = get_embedder()
    return embedder.embed_waveform(samples, sample_rate, _queued_forward(embedder))


def diarization_audio_config() -> AudioConfig:
    """The decoding limits of a recording to diarize: one long recording (VOICEPRINT_DIARIZE_*)."""
    return dataclasses.replace(engine_config().audio, max_duration_s=settings.VOICEPRINT_DIARIZE_MAX_S,
                               max_decoded_values=settings.VOICEPRINT_DIARIZE_MAX_DECODED_VALUES)


def decode_long(data: bytes) -> DecodedAudio:
    """Decode a long recording in the caller's thread (no network), under the diarization limits."""
    return audio.decode(data, diarization_audio_config())


def diarize(samples: np.ndarray, sample_rate: int, *, num_speakers: int | None,
            max_speakers: int | None) -> Diarization:
    """Who spoke when: the engine's pipeline in the caller's thread, its forward passes queued here.

    VAD, windows, features and clustering run in the request's thread; each batch of windows
    (``DiarizationConfig.batch_windows``) is one item on the inference thread, so other requests'
    forward passes run between two batches. Raises the engine's NoSpeechError before any network.
    """
    # The voices are told apart by the windows' network (VOICEPRINT_DIARIZE_WINDOWS: CAM++, alone or the
    # fused engine's, or ECAPA) and named with the engine's own vectors (speakers/services/diarization.py).
    engine = get_embedder()
    payer = current_payer()
    windows = settings.VOICEPRINT_DIARIZE_WINDOWS
    ecapa = engine.ecapa if isinstance(engine, FusedEmbedder) else engine
    network: Embedder | CampplusModel = ecapa if windows == "ecapa" else _windows_campplus(engine)

    def embed_windows(batch: Sequence[np.ndarray]) -> np.ndarray:  # a batch is one job of the fair queue
        return _queued_features(network, batch, payer, batched=True)

    def fused_voiceprint(speech: np.ndarray) -> np.ndarray:  # a voice's speech through the fused engine
        return engine.pool(_queued_features(engine, engine.speech_features(speech), payer))

    # ECAPA alone names a voice as when its own windows told the voices apart (the pipeline's rule)
    voiceprint_of = fused_voiceprint if isinstance(engine, FusedEmbedder) else diarization.voiceprint_by(
        lambda feats: _queued_features(engine, feats, payer), ecapa.config)

    own_voiceprints = engine is network  # ECAPA alone tells the voices apart and names them
    return diarization.diarize(
        samples, sample_rate, embed_windows, engine=ecapa.config,
        config=DiarizationConfig.for_windows(windows, max_speakers=settings.VOICEPRINT_DIARIZE_MAX_SPEAKERS),
        num_speakers=num_speakers, max_speakers=max_speakers,
        voiceprint_of=None if own_voiceprints else voiceprint_of,
        window_features=network.window_features if isinstance(network, CampplusModel) else None)


def _windows_campplus(engine: Embedder) -> CampplusModel:
    """CAM++ for diarization's windows: the fused engine's, or loaded in this process's inference thread by the
    first diarization beside an ECAPA engine (503 when it cannot load, as the engine)."""
    if isinstance(engine, FusedEmbedder):
        return engine.campplus
    owner = _owner.get()
    if owner.windows_model is None:
        with owner.load_lock:
            if owner.windows_model is None:
                try:
                    owner.windows_model = owner.executor.submit(CampplusModel.load, engine.config).result()
                except ModelError as exc:
                    raise EngineUnavailable(f"{exc.message} ({PREPARE_HINT})", model_error=exc.code,
                                            **exc.detail) from exc
    return owner.windows_model


def engine_state() -> str:
    """``cold``, ``warming_up``, ``ready`` or ``failed`` for this process (see :class:`_Owner`); loads nothing."""
    owner = _owner.peek()
    return COLD if owner is None else owner.state


def owner_status() -> dict[str, Any]:
    """For the health check: never loads the model."""
    owner = _owner.peek()
    state = engine_state()
    if state == READY and owner is not None and owner.embedder is not None:
        return {"engine": state, "model_version": owner.embedder.model_version, "model_loaded": True,
                "model_prepared": True}
    return {"engine": state, "model_version": prepared_model_version(), "model_loaded": False,
            "model_prepared": manifest_path().is_file()}


def part_model_versions() -> tuple[str, ...]:
    """Versions of voiceprints the configured engine still decides with one of its networks alone: ECAPA's,
    when ``VOICEPRINT_MODELS=ecapa,campplus`` (a speaker enrolled before fusion was turned on is verified with
    ECAPA until enrolled again); none otherwise. Read from the prepared manifest (never loads the model)."""
    if len(settings.VOICEPRINT_MODELS) < 2:
        return ()
    owner = _owner.peek()
    if owner is not None and isinstance(owner.embedder, FusedEmbedder):  # loaded: no file read on a verify
        return (owner.embedder.ecapa.model_version,)
    version = _manifest_version(manifest_path())
    return (version,) if version else ()


def _manifest_version(path: Path) -> str | None:
    """The ``version`` a prepared manifest names, or None when it is missing or unreadable."""
    try:
        version = json.loads(path.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) and version else None


def probe_as(probe: EmbeddingResult, model_version: str) -> EmbeddingResult | None:
    """``probe`` as one network of the fused engine sees it (its part of the vector, that network's version), or
    None when the engine holds no network of ``model_version``."""
    vector = vector_as(probe.vector, probe.model_version, model_version)
    return None if vector is None else dataclasses.replace(probe, vector=vector, model_version=model_version)


def vector_as(vector: np.ndarray, vector_version: str, model_version: str) -> np.ndarray | None:
    """A fused ``vector`` (of ``vector_version``) as the fused engine's network of ``model_version`` sees it: that
    network's unit vector, its part of the fused one. None when the engine holds no network of that version."""
    engine = get_embedder()
    if (isinstance(engine, FusedEmbedder) and vector_version == engine.model_version
            and model_version == engine.ecapa.model_version):
        return model_parts(vector, engine.config)["ecapa"]
    return None


def vector_size(model_version: str) -> int:
    """The length of ``model_version``'s vectors: the configured engine's (:func:`embedding_size`), or one
    network's alone for a version :func:`part_model_versions` names (ECAPA's 192 under the fused engine)."""
    if model_version in part_model_versions():
        return engine_config().model.embedding_size
    return embedding_size()


def prepared_model_version() -> str | None:
    """The model version the configured engine will have once loaded, from the prepared manifests (None when
    one is missing or unreadable): ECAPA's, or with ``VOICEPRINT_MODELS=ecapa,campplus`` the fused version."""
    paths = (manifest_path(), Path(settings.VOICEPRINT_MODEL_DIR) / CAMPPLUS_MANIFEST_FILE)
    versions = [_manifest_version(path) for path in paths[:len(settings.VOICEPRINT_MODELS)]]
    if None in versions:
        return None
    return versions[0] if len(versions) == 1 else fused_version(*versions, engine_config().fusion.ecapa_weight)
