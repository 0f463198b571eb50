"""CAM++ on MindSpore: the segment pooling and zero padding exact for every length, the exported graph equal to
the network it came from, parity with the PyTorch definition (tests/fixtures/campplus_reference.npz) at every
length including the 100-frame segment boundaries and a 44 s input, one compilation for every length, and the
model object the orchestrator plugs in (features, forward, the collapse-point guard)."""
from __future__ import annotations

import dataclasses
import gc
import itertools
from concurrent.futures import ThreadPoolExecutor

import mindspore as ms
import numpy as np
import pytest

from inference import EngineConfig
from inference.campplus import (
    CamPlusPlus,
    dynamic_inputs,
    frame_inputs,
    segment_inputs,
    strided_frames,
)
from inference.campplus_model import CampplusModel
from inference.config import CampplusConfig
from inference.embedder import prepare_audio, prepare_waveform
from inference.errors import AudioTooShortError, DegenerateAudioError
from inference.kaldi_fbank import compute_features, fbank
from inference.scoring import cosine, l2_normalise

# Measured: cosine >= 0.9999999 to the PyTorch network on all 102 clips, every cut and the 44 s input.
PARITY = 0.9999
EXACT = 0.99999


def _avg_pool_ceil(x: np.ndarray, size: int) -> np.ndarray:
    """PyTorch's ``avg_pool1d(kernel=stride=size, ceil_mode=True)`` of ``(C, T)``, each segment repeated over its frames."""
    out = np.empty_like(x)
    for start in range(0, x.shape[1], size):
        out[:, start:start + size] = x[:, start:start + size].mean(axis=1, keepdims=True)
    return out


@pytest.mark.parametrize("frames", [1, 2, 99, 100, 101, 199, 200, 250, 1001])
def test_the_segment_inputs_give_the_utterance_mean_plus_each_frames_segment_mean(frames) -> None:
    x = np.random.default_rng(frames).standard_normal((8, frames))
    weights, expand = segment_inputs(frames, 100)
    segments = -(-frames // 100)
    assert weights.shape == (frames, segments) and expand.shape == (segments, frames)
    assert (expand.sum(axis=0) == 1).all() and set(np.unique(expand)) <= {0.0, 1.0}
    context = (x @ weights.astype(np.float64)) @ expand  # per segment, then copied out to its frames
    expected = x.mean(axis=1, keepdims=True) + _avg_pool_ceil(x, 100)
    np.testing.assert_allclose(context, expected, rtol=1e-5, atol=1e-6)


def test_frame_inputs_cover_the_strided_axis_and_refuse_fewer_than_three_frames() -> None:
    feats, weights, expand = frame_inputs(np.zeros((401, 80), np.float32))
    assert feats.shape == (1, 1, 80, 401) and strided_frames(401) == 201
    assert weights.shape == (201, 3) and expand.shape == (3, 201)
    assert expand[2].tolist() == [0.0] * 200 + [1.0]  # frame 200 alone in the last segment
    with pytest.raises(ValueError):
        frame_inputs(np.zeros((2, 80), np.float32))


@pytest.fixture(scope="module")
def python_network(prepared_model_dir):
    """The network built from the Python source with the converted checkpoint (traced here, not the exported graph)."""
    network = CamPlusPlus()
    ms.load_param_into_net(network, ms.load_checkpoint(str(prepared_model_dir / "campplus.ckpt")), strict_load=True)
    network.set_train(False)
    network.set_inputs(*dynamic_inputs())
    return network


@pytest.mark.parametrize(("name", "frames"), [("a_snt1", None), ("b_snt3", 3), ("a_snt2", 201), ("b_snt1", 150)])
def test_the_exported_graph_computes_what_the_python_network_does_at_any_length(
    clips, campplus, python_network, name, frames
) -> None:
    inputs = [ms.Tensor(a) for a in frame_inputs(compute_features(clips.wave(name)[: None if frames is None
                                                                                   else 400 + 160 * (frames - 1)]))]
    exported = l2_normalise(campplus._network(*inputs).asnumpy()[0])
    traced = l2_normalise(python_network(*inputs).asnumpy()[0])
    assert cosine(exported, traced) > EXACT


def test_the_converted_network_has_the_parameters_of_cam_plus_plus(python_network, prepared_model_dir) -> None:
    in_network = sum(int(np.prod(p.shape)) for p in python_network.get_parameters())
    in_checkpoint = sum(int(np.prod(p.shape)) for p in ms.load_checkpoint(str(prepared_model_dir / "campplus.ckpt")).values())
    assert in_network == in_checkpoint
    # 7.18 M in the source, less the BatchNorm statistics folded into the convolutions
    assert in_network == pytest.approx(6.84e6, abs=0.01e6)


def _reference(campplus_reference, name: str) -> np.ndarray:
    names = [str(n) for n in campplus_reference["names"]]
    return campplus_reference["embeddings"][names.index(name)]


def test_our_network_on_our_features_matches_pytorch_on_every_clip(campplus, clips, campplus_reference) -> None:
    names = [str(n) for n in campplus_reference["names"]]
    if not clips.multi_dir.is_dir():
        names = [n for n in names if n.startswith("dev/")]
    assert len(names) in (12, 102)
    scores = {}
    for name in names:
        path = clips.path(name[4:-4]) if name.startswith("dev/") else clips.multi_dir / name.removeprefix("multi/")
        scores[name] = cosine(campplus.embed_features([compute_features(clips.wave(path))])[0],
                              _reference(campplus_reference, name))
    worst = min(scores, key=scores.get)
    assert scores[worst] >= PARITY, f"{worst}: cosine {scores[worst]:.6f} to the reference"


def _multi_wave(clips, name: str) -> np.ndarray:
    if not clips.multi_dir.is_dir():
        pytest.skip(f"{clips.multi_dir} is not there (CI keeps ../shared beside the clone)")
    return clips.wave(clips.multi_dir / name.removeprefix("multi/"))


def test_it_matches_pytorch_at_every_length_around_the_segment_boundaries(campplus, clips, campplus_reference) -> None:
    """3 frames (the shortest), 199-203 (the 100th and 101st segment frame after the stride), 399-402, 1001."""
    full = fbank(_multi_wave(clips, str(campplus_reference["cut_names"][0])))
    for frames, expected in zip(campplus_reference["cut_frames"].tolist(), campplus_reference["cut_embeddings"]):
        cut = full[:frames] - full[:frames].mean(axis=0, keepdims=True)
        score = cosine(campplus.embed_features([cut])[0], expected)
        assert score >= PARITY, f"{frames} frames: cosine {score:.6f}"


def test_it_matches_pytorch_on_a_44_second_input_in_one_pass(prepared_model_dir, clips, campplus_reference) -> None:
    features = compute_features(np.concatenate([_multi_wave(clips, str(n)) for n in campplus_reference["long_names"]]))
    assert features.shape[0] > 4000
    config = EngineConfig(model_dir=prepared_model_dir, campplus=CampplusConfig(window_frames=features.shape[0]))
    long_model = CampplusModel.load(config)  # its own graph: the long pass's working memory goes with it
    try:
        assert cosine(long_model.embed_features([features])[0], campplus_reference["long_embedding"]) >= PARITY
    finally:
        del long_model
        gc.collect()


def test_the_graph_is_compiled_once_at_load_and_serves_every_length(campplus, clips) -> None:
    assert campplus.ready
    features = compute_features(clips.wave("a_snt2"))
    for frames in (3, 4, 57, 199, 200, 201, features.shape[0]):
        row = campplus.embed_features([features[:frames]])[0]
        assert np.linalg.norm(row) == pytest.approx(1.0, abs=1e-5)
    # one compiled phase: a graph without the dynamic axis compiles a second one for a second length
    assert len(campplus._network.compile_cache) == 1


# -- the model object -------------------------------------------------------------------------


def test_the_full_path_matches_pytorch_on_the_dev_clips(campplus, clips, campplus_reference) -> None:
    """Decode and VAD shared with ECAPA, then CAM++ (the reference embeds the whole clip without VAD)."""
    for name in clips.dev_names:
        prepared = prepare_audio(clips.bytes(name), campplus.config)
        vector = campplus.forward(campplus.features(prepared))
        campplus.check(vector)
        assert cosine(vector, _reference(campplus_reference, f"dev/{name}.wav")) >= 0.999, name


def test_dev_scores_separate_the_two_speakers(campplus, clips) -> None:
    vectors = {n: campplus.embed_prepared(prepare_audio(clips.bytes(n), campplus.config)) for n in clips.dev_names}
    same, different = [], []
    for x, y in itertools.combinations(sorted(vectors), 2):
        (same if x[0] == y[0] else different).append(cosine(vectors[x], vectors[y]))
    assert min(same) > max(different) + 0.2


def test_speech_longer_than_the_window_is_cut_into_equal_normalised_windows(campplus, clips) -> None:
    wave = np.concatenate([clips.wave(n) for n in clips.dev_names])  # ~28 s
    prepared = prepare_waveform(wave, 16_000, campplus.config)
    windows = campplus.features(prepared)
    window = campplus.config.campplus.window_frames
    assert len(windows) == -(-sum(w.shape[0] for w in windows) // window) >= 2
    assert max(w.shape[0] for w in windows) <= window
    for w in windows:
        np.testing.assert_allclose(w.mean(axis=0), 0.0, atol=1e-4)
    vector = campplus.forward(windows)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        campplus.embed_features([np.zeros((window + 1, 80), np.float32)])


def test_speech_shorter_than_three_frames_is_refused_as_too_short(campplus, clips) -> None:
    prepared = prepare_waveform(clips.wave("a_snt1"), 16_000, campplus.config)
    short = dataclasses.replace(prepared, speech=prepared.speech[:600])
    with pytest.raises(AudioTooShortError) as caught:
        campplus.features(short)
    assert caught.value.code == "audio_too_short"


def test_a_vector_at_the_collapse_point_is_refused_and_real_speech_is_far_from_it(campplus, campplus_reference) -> None:
    point = campplus.collapse_point()
    with pytest.raises(DegenerateAudioError):
        campplus.check(point)
    # measured: real speech at most 0.21 from it (the guard refuses above 0.6)
    assert float(np.max(campplus_reference["embeddings"] @ point)) < 0.3


def test_a_click_that_dominates_the_filterbank_is_refused_as_for_ecapa(campplus, clips) -> None:
    wave = clips.wave("a_snt1").copy()
    wave[8000] = 1.0e4
    prepared = prepare_waveform(wave, 16_000, campplus.config)
    with pytest.raises(DegenerateAudioError):
        campplus.features(prepared)


def test_concurrent_callers_get_the_same_vectors_as_sequential_ones(campplus, clips) -> None:
    names = ["a_snt1", "b_snt1", "a_snt5", "b_snt5"]
    prepared = {n: prepare_audio(clips.bytes(n), campplus.config) for n in names}
    sequential = {n: campplus.forward(campplus.features(prepared[n])) for n in names}
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda n: campplus.forward(campplus.features(prepared[n])), names))
    for name, vector in zip(names, concurrent):
        np.testing.assert_array_equal(vector, sequential[name])


def test_its_version_is_the_model_name_and_the_source_hash(campplus) -> None:
    assert campplus.model_version == "campplus-sv-zh-en-16k-common-advanced@92f29b94"
