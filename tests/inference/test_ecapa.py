"""The MindSpore ECAPA-TDNN: reflect padding at the utterance's ends, the exported graph equal to
the network it was exported from at every length, and the size of the converted network."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest

from inference.ecapa import EcapaTdnn, dynamic_inputs, frame_inputs, reflect_index
from inference.features import compute_features
from inference.scoring import cosine, l2_normalise

EXACT = 0.99999


@pytest.mark.parametrize("length", [5, 6, 17, 100])
@pytest.mark.parametrize("offset", [-4, -3, -2, -1, 0, 1, 2, 3, 4])
def test_reflect_index_is_numpys_reflect_padding(length, offset) -> None:
    index = reflect_index(length, offset)
    assert index.shape == (length,) and index.dtype == np.int32
    width = abs(offset)
    padded = np.pad(np.arange(length), width, mode="reflect")
    np.testing.assert_array_equal(index, padded[np.arange(length) + width + offset])


def test_frame_inputs_unfold_the_first_layer_and_index_every_dilation() -> None:
    features = np.arange(12 * 80, dtype=np.float32).reshape(12, 80)
    feats, index = frame_inputs(features)
    assert feats.shape == (1, 400, 1, 12) and index.shape == (6, 12) and index.dtype == np.int32
    np.testing.assert_array_equal(feats[0, 160:240, 0, :], features.T)  # the middle tap is x(t)
    np.testing.assert_array_equal(feats[0, :80, 0, 0], features[2])  # x(t-2) at t=0 reflects to frame 2
    np.testing.assert_array_equal(index[5], reflect_index(12, 4))


def test_frame_inputs_refuses_utterances_too_short_for_the_dilations() -> None:
    with pytest.raises(ValueError):
        frame_inputs(np.zeros((4, 80), np.float32))  # not longer than the largest dilation


@pytest.fixture(scope="module")
def python_network(prepared_model_dir):
    """The network built from the Python source with the converted checkpoint (traced here, not the exported graph)."""
    network = EcapaTdnn()
    ms.load_param_into_net(network, ms.load_checkpoint(str(prepared_model_dir / "ecapa.ckpt")), strict_load=True)
    network.set_train(False)
    network.set_inputs(*dynamic_inputs())
    return network


@pytest.mark.parametrize(("name", "frames"), [("a_snt1", None), ("b_snt3", None), ("a_snt1", 37), ("b_snt3", 150)])
def test_the_exported_graph_computes_what_the_python_network_does_at_any_length(
    clips, network, python_network, name, frames
) -> None:
    features = compute_features(clips.wave(name))[:frames]
    inputs = [ms.Tensor(a) for a in frame_inputs(features)]
    exported = l2_normalise(network(*inputs).asnumpy()[0])
    traced = l2_normalise(python_network(*inputs).asnumpy()[0])
    assert cosine(exported, traced) > EXACT


def test_the_converted_network_has_the_20_8_million_parameters_of_ecapa_tdnn_c1024(python_network, prepared_model_dir) -> None:
    in_network = sum(int(np.prod(p.shape)) for p in python_network.get_parameters())
    checkpoint = ms.load_checkpoint(str(prepared_model_dir / "ecapa.ckpt"))
    in_checkpoint = sum(int(np.prod(p.shape)) for p in checkpoint.values())
    assert in_network == in_checkpoint
    assert in_network == pytest.approx(20.8e6, abs=0.1e6)
