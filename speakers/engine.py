"""The one owner of the inference engine in this process.

MindSpore is neither fork-safe nor thread-safe, while the dev server and gunicorn's gthread
workers run views in several threads. So each process gets one inference thread that loads
the model (lazily, after any fork) and runs every forward pass. Decoding, VAD and features are
numpy and run in the request's own thread (a refused recording never reaches the queue, and
one request's pre-processing overlaps another's forward pass); the inference thread only
gets the feature windows. The network is one graph compiled once for every length, so no
request ever waits for the compilation of a length: only the first load (about a second)
comes before the first answer. Importing this module loads nothing.

This module adapts Django settings to the engine's plain config (inference/ reads no
settings) and turns the engine's model errors into :class:`EngineUnavailable` (503).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Cheap to import: MindSpore itself is imported by Embedder.load, in the inference thread.
from inference import AudioConfig, Embedder, EmbeddingResult, EngineConfig, InferenceError, ModelError, read_manifest

from .exceptions import EngineUnavailable

logger = logging.getLogger(__name__)
T = TypeVar("T")

PREPARE_HINT = "run `python manage.py prepare_model` (see README) to convert the pretrained weights"


COLD, WARMING_UP, READY, FAILED = "cold", "warming_up", "ready", "failed"


class _Owner:
    """The inference thread of one process, the model it loaded and where that stands.

    ``state``: ``cold`` (nothing loaded yet), ``warming_up`` (loading and compiling), ``ready``,
    or ``failed`` (the last load failed; the next request tries again).
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voiceprint-inference")
        self.load_lock = threading.Lock()
        self.embedder: Embedder | None = None
        self.state = COLD


_owner_lock = threading.Lock()
_owner: _Owner | None = None


def _forget_owner_after_fork() -> None:
    # A forked child has none of the parent's threads: never reuse its executor or locks.
    global _owner, _owner_lock, _warm_up_lock, _warm_up_thread
    _owner = None
    _owner_lock = threading.Lock()
    _warm_up_lock = threading.Lock()
    _warm_up_thread = None


os.register_at_fork(after_in_child=_forget_owner_after_fork)


def engine_config() -> EngineConfig:
    return EngineConfig(
        model_dir=Path(settings.VOICEPRINT_MODEL_DIR),
        threads=settings.VOICEPRINT_ENGINE_THREADS,
        audio=AudioConfig(
            min_duration_s=settings.VOICEPRINT_MIN_AUDIO_S,
            max_duration_s=settings.VOICEPRINT_MAX_AUDIO_S,
            max_bytes=settings.VOICEPRINT_MAX_UPLOAD_BYTES,
        ),
    )


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
    except ModelError as exc:
        raise ImproperlyConfigured(f"The speaker model in {config.model_dir} is not usable: {exc.message}") from exc
    _graph_checked_in = (os.getpid(), manifest["graph_sha256"])


# (process, graph hash) that require_prepared_model checked: a worker loading the same graph
# right after need not hash its 83 MB again.
_graph_checked_in: tuple[int, str] | None = None


def _owner_for_this_process() -> _Owner:
    global _owner
    with _owner_lock:
        if _owner is None or _owner.pid != os.getpid():
            _owner = _Owner()
        return _owner


def _load(config: EngineConfig) -> Embedder:
    checked = _graph_checked_in
    current = None
    if checked is not None and checked[0] == os.getpid():
        try:
            current = json.loads(manifest_path().read_text(encoding="utf-8")).get("graph_sha256")
        except (OSError, ValueError, AttributeError):
            pass
    embedder = Embedder.load(config, verify_hash=not (checked and current == checked[1]))
    logger.info("speaker model %s loaded in process %s", embedder.model_version, os.getpid())
    return embedder


def get_embedder() -> Embedder:
    """The process's embedder, loaded on first use. Raises EngineUnavailable if it cannot load."""
    owner = _owner_for_this_process()
    if owner.embedder is not None:
        return owner.embedder
    with owner.load_lock:
        if owner.embedder is None:
            if not manifest_path().is_file():
                owner.state = FAILED
                raise EngineUnavailable(model_missing_message(), model_dir=str(settings.VOICEPRINT_MODEL_DIR))
            owner.state = WARMING_UP
            try:
                owner.embedder = owner.executor.submit(_load, engine_config()).result()
            except ModelError as exc:
                owner.state = FAILED
                raise EngineUnavailable(f"{exc.message} ({PREPARE_HINT})", model_error=exc.code,
                                        **exc.detail) from exc
            except BaseException:
                owner.state = FAILED
                raise
            owner.state = READY
    return owner.embedder


def _in_inference_thread(fn: Callable[..., T], *args: Any) -> T:
    return _owner_for_this_process().executor.submit(fn, *args).result()


def model_version() -> str:
    return get_embedder().model_version


def embed(data: bytes) -> EmbeddingResult:
    """Embed one recording. Raises the engine's AudioError subclasses for unusable audio.

    Decoding, VAD and features run in the caller's thread; only the forward pass is queued.
    """
    embedder = get_embedder()
    prepared = embedder.prepare(data)
    vector = _forward(embedder, embedder.features(prepared))
    return embedder.finish(prepared, vector)


def embed_many(items: Sequence[bytes]) -> list[EmbeddingResult | InferenceError]:
    """Embed several recordings; an unusable one yields its error in its place."""
    embedder = get_embedder()
    results: list[EmbeddingResult | InferenceError] = []
    for data in items:
        try:
            prepared = embedder.prepare(data)
        except InferenceError as exc:
            if isinstance(exc, ModelError):
                raise EngineUnavailable(exc.message, model_error=exc.code, **exc.detail) from exc
            results.append(exc)
            continue
        results.append(embedder.finish(prepared, _forward(embedder, embedder.features(prepared))))
    return results


def _forward(embedder: Embedder, windows: list) -> Any:
    try:
        return _in_inference_thread(embedder.forward, windows)
    except ModelError as exc:
        raise EngineUnavailable(exc.message, model_error=exc.code, **exc.detail) from exc


def engine_state() -> str:
    """``cold``, ``warming_up``, ``ready`` or ``failed`` for this process (see :class:`_Owner`); loads nothing."""
    owner = _owner
    if owner is None or owner.pid != os.getpid():
        return COLD
    return owner.state


def engine_status() -> dict[str, Any]:
    """For the health check: never loads the model."""
    state = engine_state()
    owner = _owner
    if state == READY and owner is not None and owner.embedder is not None:
        return {"status": state, "model_version": owner.embedder.model_version, "model_loaded": True,
                "model_prepared": True}
    version = None
    try:
        version = json.loads(manifest_path().read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        pass
    return {"status": state, "model_version": version, "model_loaded": False,
            "model_prepared": manifest_path().is_file()}


def engine_ready() -> bool:
    """Whether a request is answered without waiting for the model; a cold process starts warming up.

    For a load balancer's readiness probe: it only routes traffic to a ready process, so asking
    is the signal to get ready even where the warm-up at start is switched off.
    """
    state = engine_state()
    if state in (COLD, FAILED):
        _start_warm_up()
    return state == READY


def engine_warm_up() -> None:
    """Load the model (its one graph compiles for every length) and build the index now rather than at the first request."""
    from django.db import connection

    from .voiceprint_index import speaker_index

    try:
        get_embedder()
        speaker_index().sync()
    except Exception:  # noqa: BLE001 - a warm-up failure must not kill the server; requests retry
        logger.exception("warm-up failed; the model and index will load at the first request")
    finally:
        connection.close()


_warm_up_lock = threading.Lock()
_warm_up_thread: threading.Thread | None = None


def _start_warm_up() -> None:
    global _warm_up_thread
    with _warm_up_lock:
        if _warm_up_thread is not None and _warm_up_thread.is_alive():
            return
        _warm_up_thread = threading.Thread(target=engine_warm_up, name="voiceprint-warm-up", daemon=True)
        _warm_up_thread.start()


def engine_warm_up_in_background() -> None:
    if settings.VOICEPRINT_WARMUP:
        _start_warm_up()
