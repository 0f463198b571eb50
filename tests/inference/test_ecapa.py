"""The MindSpore ECAPA-TDNN: reflect padding at each utterance's real end, padding to a bucket
and batching that change nothing, and the size of the converted network."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from inference.ecapa import frame_inputs, reflect_index
from inference.features import compute_features
from inference.scoring import cosine, l2_normalise

EXACT = 0.99999


@pytest.mark.parametrize("length", [5, 6, 17, 100])
@pytest.mark.parametrize("offset", [-4, -3, -2, -1, 0, 1, 2, 3, 4])
def test_reflect_index_is_numpys_reflect_padding_and_padded_frames_point_at_themselves(length, offset) -> None:
    frames = length + 7
    index = reflect_index(np.array([length]), frames, offset)
    assert index.shape == (frames,) and index.dtype == np.int32
    width = abs(offset)
    padded = np.pad(np.arange(length), width, mode="reflect")
    np.testing.assert_array_equal(index[:length], padded[np.arange(length) + width + offset])
    np.testing.assert_array_equal(index[length:], np.arange(length, frames))


def test_reflect_index_keeps_every_utterance_of_a_batch_in_its_own_rows() -> None:
    lengths, frames, offset = np.array([9, 5, 12]), 12, 3
    index = reflect_index(lengths, frames, offset).reshape(3, frames)
    for i, n in enumerate(lengths):
        alone = reflect_index(np.array([n]), frames, offset)
        np.testing.assert_array_equal(index[i], alone + i * frames)
        assert index[i].min() >= i * frames and index[i].max() < (i + 1) * frames


def test_frame_inputs_refuses_utterances_that_do_not_fit_the_bucket() -> None:
    with pytest.raises(ValueError):
        frame_inputs([np.zeros((120, 80), np.float32)], 101)
    with pytest.raises(ValueError):
        frame_inputs([np.zeros((4, 80), np.float32)], 101)  # not longer than the largest dilation


@pytest.mark.parametrize(("name", "buckets"), [("a_snt1", (301, 401)), ("b_snt3", (201, 401))])
def test_the_bucket_an_utterance_is_padded_to_does_not_change_its_embedding(clips, embedder_with, name, buckets) -> None:
    features = compute_features(clips.wave(name))
    tight, wide = embedder_with(buckets[:1]), embedder_with(buckets[1:])
    in_tight, in_wide = tight.embed_features([features])[0], wide.embed_features([features])[0]
    assert tight.compiled_shapes == {buckets[0]} and wide.compiled_shapes == {buckets[1]}
    assert buckets[1] - features.shape[0] > 100  # a lot of padding
    assert cosine(in_tight, in_wide) > EXACT


def test_a_batch_of_three_lengths_equals_each_utterance_alone(clips, embedder, separate_embedder, reference_embeddings) -> None:
    utterances = {
        "b_snt2": compute_features(clips.wave("b_snt2")),
        "b_snt3": compute_features(clips.wave("b_snt3")),
        "a_snt1 (first 1.2 s)": compute_features(clips.wave("a_snt1")[:19_200]),
    }
    assert sorted(u.shape[0] for u in utterances.values()) == [121, 177, 189]
    # a network of its own: the (3 x 201)-frame graph is freed after the test
    network = separate_embedder((201,))._network
    inputs = frame_inputs(list(utterances.values()), 201)
    batch = l2_normalise(network(*(ms.Tensor(a) for a in inputs)).asnumpy())
    assert batch.shape == (3, 192)
    for row, (name, features) in zip(batch, utterances.items()):
        alone = embedder.embed_features([features])[0]
        assert cosine(row, alone) > EXACT, name
    # and the full clips stay on SpeechBrain's embeddings of each clip alone (its own zero-padded
    # batch drifts to 0.9994: the padding leaks through its convolutions, ours does not)
    for row, name in zip(batch[:2], ["b_snt2", "b_snt3"]):
        assert cosine(row, reference_embeddings[f"dev/{name}.wav"]) > 0.9999


def test_the_converted_network_has_the_20_8_million_parameters_of_ecapa_tdnn_c1024(network, prepared_model_dir) -> None:
    in_network = sum(int(np.prod(p.shape)) for p in network.get_parameters())
    checkpoint = ms.load_checkpoint(str(prepared_model_dir / "ecapa.ckpt"))
    in_checkpoint = sum(int(np.prod(p.shape)) for p in checkpoint.values())
    assert in_network == in_checkpoint
    assert in_network == pytest.approx(20.8e6, abs=0.1e6)
