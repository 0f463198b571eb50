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


@pytest.mark.parametrize(("name", "default_bucket"), [("a_snt1", 301), ("b_snt3", 201)])
def test_the_bucket_an_utterance_is_padded_to_does_not_change_its_embedding(
    clips, embedder, embedder_with, name, default_bucket
) -> None:
    features = compute_features(clips.wave(name))
    wide = embedder_with((401,))
    in_default = embedder.embed_features([features])[0]
    in_wide = wide.embed_features([features])[0]
    assert (1, default_bucket) in embedder.compiled_shapes and wide.compiled_shapes == {(1, 401)}
    assert cosine(in_default, in_wide) > EXACT


def test_a_batch_of_three_lengths_equals_each_utterance_alone(clips, network, embedder_with, reference_embeddings) -> None:
    names = ["a_snt1", "b_snt2", "a_snt4"]  # the batch SpeechBrain's reference_batch.npz was made from
    utterances = [compute_features(clips.wave(name)) for name in names]
    assert len({u.shape[0] for u in utterances}) == 3
    inputs = frame_inputs(utterances, 401)
    batch = l2_normalise(network(*(ms.Tensor(a) for a in inputs)).asnumpy())
    assert batch.shape == (3, 192)
    one_by_one = embedder_with((401,))
    for row, features, name in zip(batch, utterances, names):
        alone = one_by_one.embed_features([features])[0]
        assert cosine(row, alone) > EXACT
        # SpeechBrain's own zero-padded batch drifts to 0.9994; ours stays on the reference
        assert cosine(row, reference_embeddings[f"dev/{name}.wav"]) > 0.9999


def test_the_converted_network_has_the_20_8_million_parameters_of_ecapa_tdnn_c1024(network, prepared_model_dir) -> None:
    in_network = sum(int(np.prod(p.shape)) for p in network.get_parameters())
    checkpoint = ms.load_checkpoint(str(prepared_model_dir / "ecapa.ckpt"))
    in_checkpoint = sum(int(np.prod(p.shape)) for p in checkpoint.values())
    assert in_network == in_checkpoint
    assert in_network == pytest.approx(20.8e6, abs=0.1e6)
