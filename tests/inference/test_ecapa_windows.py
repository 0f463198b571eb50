"""The batched ECAPA graph (``ecapa-windows.mindir``): windows of one length in one call, the same
embeddings as the one-utterance graph (diarization's windows go through it; Embedder.embed_windows)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from inference import Embedder, EngineConfig
from inference.ecapa import batch_frame_inputs, frame_inputs
from inference.errors import ModelIntegrityError
from inference.features import compute_features

# Float rounding: the batched graph sums over time in another order (per row) than the one-utterance graph.
ROUNDING = 1e-5
WINDOW = 151  # frames of a 1.5 s diarization window


@pytest.fixture(scope="module")
def windows(clips) -> list[np.ndarray]:
    """Real speech cut into 1.5 s windows every 0.3 s, from the twelve dev clips."""
    out = []
    for name in clips.dev_names:
        feats = compute_features(clips.wave(name))
        out += [feats[start : start + WINDOW] for start in range(0, feats.shape[0] - WINDOW + 1, 30)]
    return out


class Recorder:
    """Wraps a graph: records the batch axis of every call."""

    def __init__(self, graph) -> None:
        self.graph, self.calls = graph, []

    def __call__(self, feats, index):
        self.calls.append(tuple(feats.shape))
        return self.graph(feats, index)


@pytest.fixture
def recorded(embedder, monkeypatch) -> Recorder:
    recorder = Recorder(embedder._windows_graph())
    monkeypatch.setattr(embedder, "_windows_network", recorder)
    return recorder


def test_batch_frame_inputs_stack_each_utterances_own_inputs_on_the_third_axis() -> None:
    rng = np.random.default_rng(1)
    utterances = [rng.standard_normal((40, 80)).astype(np.float32) for _ in range(3)]
    feats, index = batch_frame_inputs(utterances)
    assert feats.shape == (1, 400, 3, 40) and feats.flags.c_contiguous
    for row, utterance in enumerate(utterances):
        single, single_index = frame_inputs(utterance)
        np.testing.assert_array_equal(feats[:, :, row : row + 1, :], single)
        np.testing.assert_array_equal(index, single_index)


def test_batch_frame_inputs_refuse_mixed_lengths_and_an_empty_batch() -> None:
    with pytest.raises(ValueError, match="one shape"):
        batch_frame_inputs([np.zeros((40, 80), np.float32), np.zeros((41, 80), np.float32)])
    with pytest.raises(ValueError, match="one shape"):
        batch_frame_inputs([])


def test_the_batched_graph_gives_each_window_the_embedding_of_the_one_utterance_graph(embedder, windows,
                                                                                      recorded) -> None:
    assert len(windows) > 20
    batched = embedder.embed_windows(windows)
    alone = embedder.embed_features(windows)
    assert batched.shape == alone.shape == (len(windows), 192) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-6)
    assert np.abs(batched - alone).max() < ROUNDING
    # every window went through the batched graph, in groups of at most one long window's frames
    per_call = embedder.config.window_frames // WINDOW
    assert [shape[2] for shape in recorded.calls] == [per_call] * (len(windows) // per_call) + (
        [len(windows) % per_call] if len(windows) % per_call else [])
    assert all(shape[2] * shape[3] <= embedder.config.window_frames for shape in recorded.calls)


def test_mixed_lengths_come_back_in_their_order_and_a_lone_length_takes_the_one_utterance_graph(
    embedder, windows, recorded
) -> None:
    short = windows[0][:90]  # a stretch of speech shorter than a window: its own length, alone
    mixed = [windows[1], short, windows[2], windows[3][:120], windows[4][:120]]
    rows = embedder.embed_windows(mixed)
    np.testing.assert_array_equal(rows[1], embedder.embed_features([short])[0])  # the same graph: bit for bit
    assert np.abs(rows - embedder.embed_features(mixed)).max() < ROUNDING
    assert sorted(shape[2:] for shape in recorded.calls) == [(2, 120), (2, WINDOW)]


def test_a_group_never_holds_more_frames_than_one_long_window(embedder, windows, recorded) -> None:
    small = Embedder(dataclasses.replace(embedder.config, window_frames=3 * WINDOW + 10), embedder._network,
                     embedder.manifest)
    small._windows_network = recorded
    rows = small.embed_windows(windows[:8])
    assert [shape[2] for shape in recorded.calls] == [3, 3, 2]
    assert np.abs(rows - embedder.embed_features(windows[:8])).max() < ROUNDING


def test_a_window_longer_than_the_engines_window_is_refused(embedder) -> None:
    with pytest.raises(ValueError, match="exceed the window"):
        embedder.embed_windows([np.zeros((embedder.config.window_frames + 1, 80), np.float32)])


def test_the_batched_graph_is_loaded_only_when_first_needed_and_hash_checked(tmp_path, prepared_model_dir,
                                                                            windows) -> None:
    copy = tmp_path / "model"
    shutil.copytree(prepared_model_dir, copy)
    graph = copy / json.loads((copy / "manifest.json").read_text())["windows_graph"]
    graph.chmod(0o600)
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    embedder = Embedder.load(EngineConfig(model_dir=copy), verify_hash=True)  # single recordings: unaffected
    assert embedder._windows_network is None
    embedder.embed_features(windows[:2])
    with pytest.raises(ModelIntegrityError) as caught:
        embedder.embed_windows(windows[:2])
    assert caught.value.code == "model_integrity_error" and "sha256" in caught.value.message
