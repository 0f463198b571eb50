"""Fixtures of the inference tests: the prepared model, one Embedder per session, recordings and references.

The model is loaded once per test session (about 2 s, its one graph compiled for every length
included); a test that needs another window length loads a separate, short-lived engine.
A missing model is a failure, not a skip: CI runs ``python -m inference prepare-model`` first.
"""
from __future__ import annotations

import dataclasses
import gc
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from inference import Embedder, EmbeddingResult, EngineConfig
from inference.campplus_model import CampplusModel
from inference.prepare import CAMPPLUS_MANIFEST_FILE, CAMPPLUS_WHEEL_GLOB, WHEEL_GLOB

REPO = Path(__file__).resolve().parents[2]
SPEECH_DIR = REPO / "tests" / "fixtures" / "speech"
# The 90 extra recordings live beside the clone (CI keeps a copy of ../shared next to it);
# VOICEPRINT_SHARED_DIR points elsewhere (a clone that is not beside shared/).
MULTI_DIR = Path(os.environ.get("VOICEPRINT_SHARED_DIR", REPO.parent / "shared")) / "speech" / "multi"
FIXTURES = REPO / "tests" / "fixtures"
WHEEL = next(iter(sorted((REPO / "var" / "downloads").glob(WHEEL_GLOB))), REPO / "var" / "downloads" / WHEEL_GLOB)
CAMPPLUS_WHEEL = next(iter(sorted((REPO / "var" / "downloads").glob(CAMPPLUS_WHEEL_GLOB))),
                      REPO / "var" / "downloads" / CAMPPLUS_WHEEL_GLOB)
DEV_CLIPS = tuple(f"{s}_snt{i}" for s in "ab" for i in range(1, 7))
PREPARE_HINT = "run `python -m inference prepare-model` from the repository root first"


def model_dir() -> Path:
    """``$VOICEPRINT_MODEL_DIR`` (relative to the repository root) or ``<repo>/var/model``."""
    configured = Path(os.environ.get("VOICEPRINT_MODEL_DIR", REPO / "var" / "model"))
    return configured if configured.is_absolute() else REPO / configured


class Clips:
    """The real recordings, and in-memory files made from samples."""

    repo = REPO
    speech_dir = SPEECH_DIR
    multi_dir = MULTI_DIR
    dev_names = DEV_CLIPS

    def path(self, name: str) -> Path:
        """``a_snt1`` -> the fixture file."""
        return SPEECH_DIR / f"{name}.wav"

    def bytes(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def wave(self, name_or_path: str | Path) -> np.ndarray:
        """Float32 samples of a 16 kHz mono recording (a dev clip name or a path)."""
        path = name_or_path if isinstance(name_or_path, Path) else self.path(name_or_path)
        samples, rate = sf.read(path, dtype="float32")
        assert rate == 16_000 and samples.ndim == 1, f"{path} is not 16 kHz mono"
        return samples

    @staticmethod
    def encode(samples: np.ndarray, sample_rate: int = 16_000, format: str = "WAV", subtype: str = "PCM_16") -> bytes:
        """``samples`` (``(n,)`` or ``(n, channels)``) written by libsndfile into an in-memory file."""
        buffer = io.BytesIO()
        sf.write(buffer, samples, sample_rate, format=format, subtype=subtype)
        return buffer.getvalue()


@pytest.fixture(scope="session")
def clips() -> Clips:
    return Clips()


@pytest.fixture(scope="session")
def prepared_model_dir() -> Path:
    directory = model_dir()
    if not (directory / "manifest.json").is_file():
        pytest.fail(f"no prepared model in {directory}: {PREPARE_HINT}", pytrace=False)
    return directory


@pytest.fixture(scope="session")
def source_wheel() -> Path:
    if not WHEEL.is_file():
        pytest.fail(f"{WHEEL} is missing (prepare-model downloads it): {PREPARE_HINT}", pytrace=False)
    return WHEEL


@pytest.fixture(scope="session")
def embedder(prepared_model_dir: Path) -> Embedder:
    """The production configuration, loaded once for the whole session."""
    return Embedder.load(EngineConfig(model_dir=prepared_model_dir))


@pytest.fixture(scope="session")
def network(embedder: Embedder):
    """The loaded MindSpore graph (compiled for every length), for tests that feed it inputs by hand."""
    return embedder._network


@pytest.fixture(scope="session")
def embedder_with(embedder: Embedder) -> Callable[[int], Embedder]:
    """``embedder_with(window_frames)``: the session's loaded graph behind another window length.

    The graph keeps the working memory of the longest pass it ran (about 0.25 MB per frame), so
    keep to windows up to the production one; for longer ones use ``separate_embedder``.
    """

    def make(window_frames: int) -> Embedder:
        config = dataclasses.replace(embedder.config, window_frames=window_frames)
        made = Embedder(config, embedder._network, embedder.manifest)
        made.warmup()
        return made

    return make


@pytest.fixture
def separate_embedder(prepared_model_dir: Path) -> Iterator[Callable[[tuple[int, ...]], Embedder]]:
    """``separate_embedder((window_frames,))``: an engine of its own (about a second to load), freed
    after the test together with its working memory, so a test's long windows do not stay in memory."""
    loaded: list[Embedder] = []

    def make(buckets: tuple[int, ...]) -> Embedder:
        loaded.append(Embedder.load(EngineConfig(model_dir=prepared_model_dir, window_frames=buckets[-1])))
        return loaded[-1]

    yield make
    loaded.clear()
    gc.collect()


@pytest.fixture(scope="session")
def dev_results(embedder: Embedder, clips: Clips) -> dict[str, EmbeddingResult]:
    """Every dev clip embedded through the full path (bytes -> decode -> VAD -> features -> network)."""
    return {name: embedder.embed(clips.bytes(name)) for name in DEV_CLIPS}


@pytest.fixture(scope="session")
def reference_embeddings() -> dict[str, np.ndarray]:
    """SpeechBrain's PyTorch embeddings (unit rows), keyed ``dev/a_snt1.wav``, ``multi/ls-19/....wav``."""
    with np.load(FIXTURES / "reference_embeddings.npz") as data:
        return {str(name): vector for name, vector in zip(data["names"], data["embeddings"])}


@pytest.fixture(scope="session")
def reference_features() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "reference_features.npz") as data:
        return {key: data[key] for key in data.files}


# -- CAM++ beside ECAPA ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def campplus(prepared_model_dir: Path) -> CampplusModel:
    """CAM++ loaded once for the session from the same model directory (its graph compiled for every length)."""
    if not (prepared_model_dir / CAMPPLUS_MANIFEST_FILE).is_file():
        pytest.fail(f"CAM++ is not prepared in {prepared_model_dir}: {PREPARE_HINT}", pytrace=False)
    return CampplusModel.load(EngineConfig(model_dir=prepared_model_dir))


@pytest.fixture(scope="session")
def campplus_wheel() -> Path:
    if not CAMPPLUS_WHEEL.is_file():
        pytest.fail(f"{CAMPPLUS_WHEEL} is missing (prepare-model downloads it): {PREPARE_HINT}", pytrace=False)
    return CAMPPLUS_WHEEL


@pytest.fixture(scope="session")
def campplus_reference() -> dict[str, np.ndarray]:
    """The PyTorch CAM++ fixture (tests/reference/make_campplus_reference.py): every array of it."""
    with np.load(FIXTURES / "campplus_reference.npz") as data:
        return {key: data[key] for key in data.files}
