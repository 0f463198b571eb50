"""The one owner of the inference engine (``inference/``) in this process.

MindSpore is neither fork-safe nor thread-safe, while the dev server and gunicorn's gthread
workers run views in several threads. So each process gets one inference thread that
loads the model (lazily, after any fork) and runs every embedding; views hand it bytes and
wait for the result. Importing this module loads nothing.

This module adapts Django settings to the engine's plain config (inference/ reads no
settings) and turns the engine's model errors into :class:`EngineUnavailable` (503).
"""
from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Cheap to import: MindSpore itself is imported by Embedder.load, in the inference thread.
from inference import AudioConfig, Embedder, EmbeddingResult, EngineConfig, InferenceError, ModelError, read_manifest

from .exceptions import EngineUnavailable
from .process_local import ProcessLocal

logger = logging.getLogger(__name__)
T = TypeVar("T")

PREPARE_HINT = "run `python manage.py prepare_model` (see README) to convert the pretrained weights"


class _Owner:
    """The inference thread of one process and the model it loaded."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="voiceprint-inference")
        self.load_lock = threading.Lock()
        self.embedder: Embedder | None = None


# A forked child has none of the parent's threads: it never reuses the parent's executor or locks.
_owner: ProcessLocal[_Owner] = ProcessLocal(_Owner)


def engine_config() -> EngineConfig:
    return EngineConfig(
        model_dir=Path(settings.VOICEPRINT_MODEL_DIR),
        audio=AudioConfig(
            min_duration_s=settings.VOICEPRINT_MIN_AUDIO_S,
            max_duration_s=settings.VOICEPRINT_MAX_AUDIO_S,
            max_bytes=settings.VOICEPRINT_MAX_UPLOAD_BYTES,
            max_channels=settings.VOICEPRINT_MAX_CHANNELS,
            max_decoded_values=settings.VOICEPRINT_MAX_DECODED_VALUES,
        ),
    )


def manifest_path() -> Path:
    return Path(settings.VOICEPRINT_MODEL_DIR) / "manifest.json"


def model_missing_message() -> str:
    return f"The speaker model is not prepared ({manifest_path()} is missing): {PREPARE_HINT}."


def require_prepared_model() -> None:
    """Refuse to start a server without a valid converted model.

    Checks the manifest against this engine's contract and the checkpoint's sha256 (a quarter
    of a second); it does not load MindSpore, so it is safe before a fork.
    """
    if not manifest_path().is_file():
        raise ImproperlyConfigured(model_missing_message())
    config = engine_config()
    try:
        read_manifest(config.model_dir, config.model, config.frontend)
    except ModelError as exc:
        raise ImproperlyConfigured(f"The speaker model in {config.model_dir} is not usable: {exc.message}") from exc


def _load(config: EngineConfig) -> Embedder:
    embedder = Embedder.load(config)
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
                raise EngineUnavailable(model_missing_message(), model_dir=str(settings.VOICEPRINT_MODEL_DIR))
            try:
                owner.embedder = owner.executor.submit(_load, engine_config()).result()
            except ModelError as exc:
                raise EngineUnavailable(f"{exc.message} ({PREPARE_HINT})", model_error=exc.code,
                                        **exc.detail) from exc
    return owner.embedder


def in_inference_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(*args)`` on this process's inference thread and wait for its result."""
    return submit(fn, *args).result()


def submit(fn: Callable[..., T], *args: Any) -> Future[T]:
    """Queue ``fn(*args)`` on this process's inference thread without waiting."""
    return _owner.get().executor.submit(fn, *args)


def model_version() -> str:
    return get_embedder().model_version


def embed(data: bytes) -> EmbeddingResult:
    """Embed one recording. Raises the engine's AudioError subclasses for unusable audio."""
    embedder = get_embedder()
    try:
        return in_inference_thread(embedder.embed, data)
    except ModelError as exc:
        raise EngineUnavailable(exc.message, model_error=exc.code, **exc.detail) from exc


def embed_waveform(samples: Any, sample_rate: int) -> EmbeddingResult:
    """Embed already-decoded mono samples (a streamed window). Raises the engine's AudioError subclasses."""
    embedder = get_embedder()
    try:
        return in_inference_thread(embedder.embed_waveform, samples, sample_rate)
    except ModelError as exc:
        raise EngineUnavailable(exc.message, model_error=exc.code, **exc.detail) from exc


def embed_many(items: Sequence[bytes]) -> list[EmbeddingResult | InferenceError]:
    """Embed several recordings in one batch; an unusable one yields its error in its place."""
    embedder = get_embedder()
    results = in_inference_thread(embedder.embed_many, list(items))
    for result in results:
        if isinstance(result, ModelError):
            raise EngineUnavailable(result.message, model_error=result.code, **result.detail)
    return results


def owner_status() -> dict[str, Any]:
    """For the health check: never loads the model."""
    owner = _owner.peek()
    if owner is not None and owner.embedder is not None:
        return {"model_version": owner.embedder.model_version, "model_loaded": True, "model_prepared": True}
    version = None
    try:
        version = json.loads(manifest_path().read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        pass
    return {"model_version": version, "model_loaded": False, "model_prepared": manifest_path().is_file()}
