"""The batched CAM++ graph (``campplus-windows.mindir``): windows of one length in one call on the batch axis,
the same embeddings as the one-utterance graph (diarization's windows go through it with
VOICEPRINT_DIARIZE_WINDOWS=campplus; CampplusModel.embed_windows)."""
from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from inference import EngineConfig, kaldi_fbank
from inference.campplus import batch_frame_inputs, frame_inputs, segment_inputs, strided_frames
from inference.campplus_model import CampplusModel
from inference.embedder import window_groups
from inference.errors import ModelIntegrityError

# Float rounding: the batched graph sums over time in another order (per row) than the one-utterance graph.
ROUNDING = 1e-5
WINDOW = 151  # frames of a 1.5 s diarization window (Kaldi fbank, snip_edges: 148)


@pytest.fixture(scope="module")
def windows(clips, campplus) -> list[np.ndarray]:
    """Real speech cut into 1.5 s windows every 0.3 s, from the twelve dev clips (CAM++'s window features)."""
    out = []
    for name in clips.dev_names:
        wave = clips.wave(name)
        out += [campplus.window_features(wave[start : start + 24_000]) for start in range(0, wave.size - 24_000, 4_800)]
    return out


class Recorder:
    """Wraps a graph: records the shape of the features of every call."""

    def __init__(self, graph) -> None:
        self.graph, self.calls = graph, []

    def __call__(self, feats, weights, expand):
        self.calls.append(tuple(feats.shape))
        return self.graph(feats, weights, expand)


@pytest.fixture
def recorded(campplus, monkeypatch) -> Recorder:
    recorder = Recorder(campplus._windows_graph())
    monkeypatch.setattr(campplus, "_windows_network", recorder)
    return recorder


def test_window_features_are_the_mean_normalised_kaldi_fbank_of_the_window(campplus, clips) -> None:
    wave = clips.wave(clips.dev_names[0])[:24_000]
    feats = campplus.window_features(wave)
    expected = kaldi_fbank.normalise(kaldi_fbank.fbank(wave, campplus.config.kaldi_fbank), campplus.config.kaldi_fbank)
    np.testing.assert_array_equal(feats, expected)
    assert feats.shape == (148, 80) and np.abs(feats.mean(axis=0)).max() < 1e-4
    # a click does not refuse a window (the recording's other windows outvote it); a whole recording is refused
    clicked = np.zeros(24_000, np.float32)
    clicked[12_000] = 1.0
    assert campplus.window_features(clicked).shape == (148, 80)


def test_batch_frame_inputs_stack_each_utterances_own_inputs_on_the_batch_axis() -> None:
    rng = np.random.default_rng(1)
    utterances = [rng.standard_normal((250, 80)).astype(np.float32) for _ in range(3)]
    feats, weights, expand = batch_frame_inputs(utterances)
    assert feats.shape == (3, 1, 80, 250) and feats.flags.c_contiguous
    for row, utterance in enumerate(utterances):
        single, single_weights, single_expand = frame_inputs(utterance)
        np.testing.assert_array_equal(feats[row : row + 1], single)
        np.testing.assert_array_equal(weights, single_weights)
        np.testing.assert_array_equal(expand, single_expand)
    assert weights.shape == (strided_frames(250), 2)  # two segments of 100 strided frames: the last one shorter
    np.testing.assert_array_equal(weights, segment_inputs(125, 100)[0])


def test_batch_frame_inputs_refuse_mixed_lengths_an_empty_batch_and_too_few_frames() -> None:
    with pytest.raises(ValueError, match="one shape"):
        batch_frame_inputs([np.zeros((40, 80), np.float32), np.zeros((41, 80), np.float32)])
    with pytest.raises(ValueError, match="one shape"):
        batch_frame_inputs([])
    with pytest.raises(ValueError, match="too few"):
        batch_frame_inputs([np.zeros((2, 80), np.float32)] * 2)


def test_the_batched_graph_gives_each_window_the_embedding_of_the_one_utterance_graph(campplus, windows,
                                                                                      recorded) -> None:
    assert len(windows) > 20
    batched = campplus.embed_windows(windows)
    alone = campplus.embed_features(windows)
    assert batched.shape == alone.shape == (len(windows), 192) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-6)
    assert np.abs(batched - alone).max() < ROUNDING
    # every window went through the batched graph, in groups of at most one long window's frames
    frames = windows[0].shape[0]
    per_call = campplus.config.campplus.window_frames // frames
    assert [shape[0] for shape in recorded.calls] == [per_call] * (len(windows) // per_call) + (
        [len(windows) % per_call] if len(windows) % per_call else [])
    assert all(shape[0] * shape[3] <= campplus.config.campplus.window_frames for shape in recorded.calls)


def test_lengths_across_the_segment_boundaries_and_the_shortest_equal_the_one_utterance_graph(campplus) -> None:
    # 3 frames (the fewest), and strided lengths either side of the 100-frame segments of the CAM context
    rng = np.random.default_rng(7)
    for frames in (3, 4, 199, 200, 201, 202, 401, 700):
        batch = [rng.standard_normal((frames, 80)).astype(np.float32) for _ in range(3)]
        rows = campplus.embed_windows(batch)
        assert np.abs(rows - campplus.embed_features(batch)).max() < ROUNDING, frames


def test_mixed_lengths_come_back_in_their_order_and_a_lone_length_takes_the_one_utterance_graph(
    campplus, windows, recorded
) -> None:
    short = windows[0][:90]  # a stretch of speech shorter than a window: its own length, alone
    mixed = [windows[1], short, windows[2], windows[3][:120], windows[4][:120]]
    rows = campplus.embed_windows(mixed)
    np.testing.assert_array_equal(rows[1], campplus.embed_features([short])[0])  # the same graph: bit for bit
    assert np.abs(rows - campplus.embed_features(mixed)).max() < ROUNDING
    frames = windows[0].shape[0]
    assert sorted((shape[0], shape[3]) for shape in recorded.calls) == [(2, 120), (2, frames)]


def test_a_group_never_holds_more_frames_than_one_long_window(campplus, windows, recorded) -> None:
    frames = windows[0].shape[0]
    config = dataclasses.replace(campplus.config,
                                 campplus=dataclasses.replace(campplus.config.campplus, window_frames=3 * frames + 10))
    small = CampplusModel(config, campplus._network, campplus.manifest)
    small._windows_network = recorded
    rows = small.embed_windows(windows[:8])
    assert [shape[0] for shape in recorded.calls] == [3, 3, 2]
    assert np.abs(rows - campplus.embed_features(windows[:8])).max() < ROUNDING


def test_window_groups_one_length_per_group_bounded_in_frames_and_refuse_a_longer_window() -> None:
    assert window_groups([100, 100, 50, 100, 50, 100], 250) == [[0, 1], [3, 5], [2, 4]]
    assert window_groups([300], 250 + 50) == [[0]]
    assert window_groups([], 10) == []
    with pytest.raises(ValueError, match="exceed the window"):
        window_groups([100, 251], 250)


def test_a_window_longer_than_the_networks_window_is_refused(campplus) -> None:
    with pytest.raises(ValueError, match="exceed the window"):
        campplus.embed_windows([np.zeros((campplus.config.campplus.window_frames + 1, 80), np.float32)])


def test_the_batched_graph_is_loaded_only_when_first_needed_and_hash_checked(tmp_path, prepared_model_dir,
                                                                            windows) -> None:
    copy = tmp_path / "model"
    shutil.copytree(prepared_model_dir, copy)
    graph = copy / json.loads((copy / "campplus.json").read_text())["windows_graph"]
    assert graph.name == "campplus-windows.mindir"
    graph.chmod(0o600)
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    model = CampplusModel.load(EngineConfig(model_dir=copy), verify_hash=True)  # single recordings: unaffected
    assert not model.windows_loaded
    model.embed_features(windows[:2])
    with pytest.raises(ModelIntegrityError) as caught:
        model.embed_windows(windows[:2])
    assert caught.value.code == "model_integrity_error" and "sha256" in caught.value.message
    assert not model.windows_loaded
