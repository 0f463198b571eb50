"""The fused engine (inference/fusion.py): both networks from one decode, each pooled as alone, then weighted."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from inference.config import EngineConfig, FusionConfig
from inference.errors import DegenerateAudioError, NoSpeechError
from inference.fusion import FusedEmbedder, FusedWindow, fused_version, model_parts
from inference.scoring import average_embeddings


@pytest.fixture(scope="session")
def fused(embedder, campplus) -> FusedEmbedder:
    config = dataclasses.replace(embedder.config, fusion=FusionConfig(models=("ecapa", "campplus")))
    return FusedEmbedder(config, embedder, campplus)


def alone(fused: FusedEmbedder, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Each network's unit vector of a recording, run on its own."""
    prepared = fused.ecapa.prepare(data)
    return fused.ecapa.embed_prepared(prepared).vector, fused.campplus.embed_prepared(prepared)


def test_a_recording_is_both_networks_vectors_weighted_side_by_side(fused, clips) -> None:
    weight = fused.config.fusion.ecapa_weight
    for name in ("a_snt1", "b_snt2"):
        data = clips.bytes(name)
        result = fused.embed(data)
        e, c = alone(fused, data)
        assert result.vector.shape == (384,) and result.vector.dtype == np.float32
        np.testing.assert_array_equal(result.vector, np.concatenate([np.float32(math.sqrt(weight)) * e,
                                                                     np.float32(math.sqrt(1 - weight)) * c]))
        assert np.linalg.norm(result.vector) == pytest.approx(1.0, abs=1e-6)
        parts = model_parts(result.vector, fused.config)
        np.testing.assert_allclose(parts["ecapa"], e, atol=1e-6)
        np.testing.assert_allclose(parts["campplus"], c, atol=1e-6)
        assert result.model_version == fused.model_version == fused_version(
            fused.ecapa.model_version, fused.campplus.model_version, weight)


def test_the_fused_cosine_is_the_weighted_sum_of_the_two_cosines(fused, clips) -> None:
    weight = fused.config.fusion.ecapa_weight
    for one, other in (("a_snt1", "a_snt2"), ("a_snt1", "b_snt1")):
        (e1, c1), (e2, c2) = alone(fused, clips.bytes(one)), alone(fused, clips.bytes(other))
        fused_cosine = float(fused.embed(clips.bytes(one)).vector @ fused.embed(clips.bytes(other)).vector)
        assert fused_cosine == pytest.approx(weight * float(e1 @ e2) + (1 - weight) * float(c1 @ c2), abs=1e-6)


def test_long_speech_is_cut_in_windows_each_network_pooling_its_own(fused, clips) -> None:
    samples = np.concatenate([clips.wave(f"a_snt{i}") for i in range(1, 7)] * 3)  # about 45 s
    data = clips.encode(samples)
    windows = fused.features(fused.prepare(data))
    assert len(windows) > 1 and all(isinstance(w, FusedWindow) for w in windows)
    # one window of the queue costs the longer side's frames
    assert all(w.shape[0] == max(w.ecapa.shape[0], w.campplus.shape[0]) for w in windows)
    parts = model_parts(fused.embed(data).vector, fused.config)
    e, c = alone(fused, data)
    np.testing.assert_allclose(parts["ecapa"], e, atol=1e-6)
    np.testing.assert_allclose(parts["campplus"], c, atol=1e-6)


def test_a_network_with_fewer_windows_pools_only_its_own(fused) -> None:
    size = fused.config.model.embedding_size
    rng = np.random.default_rng(0)
    a, b, c = (v / np.linalg.norm(v) for v in rng.standard_normal((3, size)).astype(np.float32))
    rows = np.zeros((2, 2 * size), dtype=np.float32)
    rows[0, :size], rows[1, :size], rows[0, size:] = a, b, c  # ECAPA made two windows, CAM++ one
    pooled = model_parts(fused.pool(rows), fused.config)
    np.testing.assert_allclose(pooled["ecapa"], average_embeddings([a, b]), atol=1e-6)
    np.testing.assert_allclose(pooled["campplus"], c, atol=1e-6)


def test_recordings_the_engine_refuses_are_refused_before_either_network(fused, clips) -> None:
    with pytest.raises(NoSpeechError):
        fused.embed(clips.encode(np.zeros(32_000, dtype=np.float32)))
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(48_000) / 16_000).astype(np.float32)
    with pytest.raises((DegenerateAudioError, NoSpeechError)):
        fused.embed(clips.encode(tone))


def test_only_ecapa_first_then_campplus_and_a_weight_strictly_inside() -> None:
    assert not FusionConfig().fused and EngineConfig().embedding_size == 192
    assert EngineConfig(fusion=FusionConfig(models=("ecapa", "campplus"))).embedding_size == 384
    for models in ((), ("campplus",), ("campplus", "ecapa"), ("ecapa", "ecapa"), ("ecapa", "xvector")):
        with pytest.raises(ValueError):
            FusionConfig(models=models)
    for weight in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError):
            FusionConfig(models=("ecapa", "campplus"), ecapa_weight=weight)


def test_the_calibration_tools_read_the_same_fused_vectors_from_campplus_evals_cache(fused, clips, tmp_path) -> None:
    """tools.calibration_report --vectors-from builds the fused vectors from tools.campplus_eval's cache: bit for
    bit what the engine makes, so the shipped fused calibration is fitted on the service's own vectors."""
    from tools.calibration_report import _config_key, vectors_from_campplus_eval
    from tools.campplus_eval import QUALITY_FIELDS, Cache, engine_key

    names = ("a_snt1", "b_snt3")
    cache = Cache.empty(engine_key(fused.config))
    for name in names:
        prepared = fused.ecapa.prepare(clips.bytes(name))
        e, c = alone(fused, clips.bytes(name))
        cache.vectors["ecapa"][name], cache.vectors["campplus"][name] = e, c
        q = prepared.quality
        cache.quality[name] = [prepared.duration_s, prepared.speech_s, q.snr_db, q.speech_level_dbfs,
                               q.clipping_ratio, q.bandwidth_hz]
    cache.refused["campplus"]["refused.wav"] = "degenerate_audio"
    cache.quality["refused.wav"] = [1.0] * len(QUALITY_FIELDS)
    cache.write(tmp_path / "campplus" / "calibration.shard0.npz")
    out = tmp_path / "fused.npz"
    vectors_from_campplus_eval(tmp_path / "campplus", fused, out)
    with np.load(out, allow_pickle=False) as data:
        assert str(data["key"]) == _config_key(fused)
        vectors = dict(zip(data["names"].tolist(), data["vectors"]))
        refused = dict(zip(data["refused_names"].tolist(), data["refused_codes"].tolist()))
    for name in names:
        np.testing.assert_array_equal(vectors[name], fused.embed(clips.bytes(name)).vector)
    assert refused == {"refused.wav": "degenerate_audio"}
