"""The voiceprint engine: audio bytes -> 192-d ECAPA-TDNN speaker embedding (MindSpore), scoring, index.

Plain Python: nothing here knows about Django, requests, database rows or keys. Heavy modules
(MindSpore, FAISS) are imported lazily, so ``import inference`` stays cheap and fork-safe.
"""
from __future__ import annotations

import os

# MindSpore logs every deprecation at WARNING through glog; keep the service's output readable.
os.environ.setdefault("GLOG_v", "3")

from inference.config import AudioConfig, EngineConfig, FrontendConfig, ModelConfig, VadConfig  # noqa: E402
from inference.embedder import AudioQuality, Embedder, EmbeddingResult, PreparedAudio  # noqa: E402
from inference.errors import (  # noqa: E402
    AudioDecodeError,
    AudioError,
    AudioFormatUnsupportedError,
    AudioOutOfRangeError,
    AudioTooComplexError,
    AudioTooLongError,
    AudioTooShortError,
    DegenerateAudioError,
    EmptyAudioError,
    InferenceError,
    InvalidSamplesError,
    ModelError,
    ModelIntegrityError,
    ModelNotPreparedError,
    NoSpeechError,
    NotAudioError,
)
from inference.prepare import model_version, prepare_model, read_manifest  # noqa: E402
from inference.scoring import average_embeddings, cosine, cosine_matrix, l2_normalise  # noqa: E402

__all__ = [
    "AudioConfig", "EngineConfig", "FrontendConfig", "ModelConfig", "VadConfig",
    "AudioQuality", "Embedder", "EmbeddingResult", "PreparedAudio",
    "AudioDecodeError", "AudioError", "AudioFormatUnsupportedError", "AudioOutOfRangeError",
    "AudioTooComplexError", "DegenerateAudioError", "AudioTooLongError", "AudioTooShortError", "EmptyAudioError",
    "InferenceError", "InvalidSamplesError", "ModelError", "ModelIntegrityError", "ModelNotPreparedError",
    "NoSpeechError", "NotAudioError",
    "model_version", "prepare_model", "read_manifest",
    "average_embeddings", "cosine", "cosine_matrix", "l2_normalise",
]
