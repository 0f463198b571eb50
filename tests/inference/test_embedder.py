"""The Embedder end to end: unit vectors, determinism, invariance to the recording's format, long
recordings embedded whole, errors in place, one graph for every length, the model version and a bad model dir."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.signal import resample_poly

from inference import Embedder, EmbeddingResult, EngineConfig
from inference.embedder import split_windows
from inference.errors import ModelIntegrityError, ModelNotPreparedError, NoSpeechError, NotAudioError
from inference.features import compute_features
from inference.scoring import average_embeddings, cosine

MODEL_VERSION = "spkrec-ecapa-voxceleb@0575cb64"


def test_an_embedding_is_a_192_float32_unit_vector(dev_results) -> None:
    vector = dev_results["a_snt1"].vector
    assert vector.shape == (192,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert cosine(vector, vector) == pytest.approx(1.0, abs=1e-6)
    for result in dev_results.values():
        assert np.linalg.norm(result.vector) == pytest.approx(1.0, abs=1e-5)


def test_the_same_upload_twice_gives_the_same_vector(embedder, clips) -> None:
    first, second = embedder.embed(clips.bytes("b_snt4")), embedder.embed(clips.bytes("b_snt4"))
    np.testing.assert_array_equal(first.vector, second.vector)
    assert (first.duration_s, first.speech_s, first.quality) == (second.duration_s, second.speech_s, second.quality)


def test_a_44k1_stereo_copy_embeds_like_the_16k_mono_original(embedder, clips, dev_results) -> None:
    high = resample_poly(clips.wave("a_snt1"), 441, 160).astype(np.float32)
    stereo = np.stack([high, 0.9 * high], axis=1)  # the channels at slightly different gains
    result = embedder.embed(clips.encode(stereo, 44_100, subtype="FLOAT"))
    assert cosine(result.vector, dev_results["a_snt1"].vector) >= 0.99
    assert result.duration_s == pytest.approx(high.size / 44_100)
    # the same samples handed over decoded, at their own rate
    from_waveform = embedder.embed_waveform(stereo.mean(axis=1), 44_100)
    assert cosine(from_waveform.vector, result.vector) > 0.9999


def test_a_recording_longer_than_the_window_is_embedded_whole(embedder, clips, dev_results) -> None:
    a_part = np.concatenate([clips.wave(f"a_snt{i}") for i in range(1, 7)])  # 16.2 s of speaker a
    b_part = np.concatenate([clips.wave(f"b_snt{i}") for i in range(1, 6)])  # then 9.7 s of speaker b
    recording = np.concatenate([a_part, b_part])
    assert compute_features(recording).shape[0] > embedder.config.window_frames
    result = embedder.embed(clips.encode(recording))
    assert result.duration_s == pytest.approx(recording.size / 16_000)
    assert result.speech_s == pytest.approx(result.duration_s, rel=0.05)
    a_voice = average_embeddings([dev_results[f"a_snt{i}"].vector for i in range(1, 7)])
    b_voice = average_embeddings([dev_results[f"b_snt{i}"].vector for i in range(1, 7)])
    # speaker b only speaks in the last 9.7 s: the recording cut to its first 16 s scores ~0.0
    # against b's voice (measured -0.0005); embedded whole (two windows) it holds both voices
    assert cosine(result.vector, b_voice) > 0.3
    assert cosine(result.vector, a_voice) > 0.3
    assert cosine(a_voice, b_voice) < 0.1


def test_embed_many_returns_results_and_errors_in_their_places(embedder, clips, dev_results) -> None:
    text = b"not a recording\n" * 100
    silence = clips.encode(np.zeros(32_000, dtype=np.float32))
    good, not_audio, no_speech = embedder.embed_many([clips.bytes("a_snt3"), text, silence])
    assert isinstance(good, EmbeddingResult)
    assert cosine(good.vector, dev_results["a_snt3"].vector) > 0.99999
    assert isinstance(not_audio, NotAudioError) and not_audio.code == "audio_not_audio"
    assert isinstance(no_speech, NoSpeechError) and no_speech.code == "no_speech"
    assert embedder.embed_many([]) == []


def test_the_graph_is_compiled_at_load_and_serves_every_length_without_another(embedder, clips) -> None:
    assert embedder.ready and embedder.compiled_shapes == {None}  # None: the dynamic time axis
    features = compute_features(clips.wave("a_snt2"))  # 315 frames
    for frames in (12, 101, 257, features.shape[0]):
        row = embedder.embed_features([features[:frames]])[0]
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)
    assert embedder.compiled_shapes == {None}


def test_features_longer_than_the_window_are_refused_by_the_network_and_cut_by_the_embedder(embedder, clips) -> None:
    window = embedder.config.window_frames
    with pytest.raises(ValueError):
        embedder.embed_features([np.zeros((window + 1, 80), np.float32)])
    for frames in (window, window + 1, 3 * window - 5):
        edges = split_windows(frames, window)
        sizes = [end - start for start, end in edges]
        assert edges[0][0] == 0 and edges[-1][1] == frames and max(sizes) <= window
        assert max(sizes) - min(sizes) <= 1 and len(edges) == -(-frames // window)


def test_a_recording_shorter_than_the_window_does_not_depend_on_the_window(embedder_with, clips, dev_results) -> None:
    short_window = embedder_with(401)
    result = short_window.embed(clips.bytes("a_snt2"))  # 315 frames: one window either way
    np.testing.assert_array_equal(result.vector, dev_results["a_snt2"].vector)


def test_concurrent_requests_get_the_same_vectors_as_sequential_ones(embedder, clips, dev_results) -> None:
    names = ["a_snt1", "b_snt1", "a_snt5", "b_snt5", "a_snt6", "b_snt2"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda name: embedder.embed(clips.bytes(name)), names))
    for name, result in zip(names, results):
        np.testing.assert_array_equal(result.vector, dev_results[name].vector)


def test_every_embedding_carries_the_model_version(embedder, dev_results) -> None:
    assert embedder.model_version == MODEL_VERSION
    assert {result.model_version for result in dev_results.values()} == {MODEL_VERSION}


def test_loading_an_empty_model_dir_says_the_model_is_not_prepared(tmp_path) -> None:
    with pytest.raises(ModelNotPreparedError) as caught:
        Embedder.load(EngineConfig(model_dir=tmp_path))
    assert caught.value.code == "model_not_prepared"
    assert "prepare-model" in caught.value.message or "prepare_model" in caught.value.message


def test_loading_a_tampered_graph_is_refused(tmp_path, prepared_model_dir) -> None:
    copy = tmp_path / "model"
    shutil.copytree(prepared_model_dir, copy)
    checkpoint = copy / "ecapa.mindir"
    checkpoint.chmod(0o600)
    data = bytearray(checkpoint.read_bytes())
    data[len(data) // 2] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError) as caught:
        Embedder.load(EngineConfig(model_dir=copy))
    assert caught.value.code == "model_integrity_error"
    assert "sha256" in caught.value.message


def test_a_graph_exported_by_another_mindspore_is_refused(tmp_path, prepared_model_dir) -> None:
    copy = tmp_path / "model"
    shutil.copytree(prepared_model_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["mindspore"] = "2.0.0"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError) as caught:
        Embedder.load(EngineConfig(model_dir=copy))
    assert caught.value.detail["field"] == "mindspore"
    assert "prepare the model again" in caught.value.message
