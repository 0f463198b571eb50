"""CAM++ in MindSpore, numerically equal to 3D-Speaker's PyTorch ``CAMPPlus`` on the same weights.

The architecture (Wang et al., "CAM++: A Fast and Efficient Network for Speaker Verification
Using Context-Aware Masking", Interspeech 2023), as 3D-Speaker publishes it:

* **FCM head** on the mel x time plane: a 3x3 convolution to 32 channels, two stages of two
  residual blocks (the first of each halves the mel axis), a strided 3x3 convolution halving it
  once more: ``(1, 80, T) -> (32, 10, T)``, flattened to 320 channels (channel-major).
* **TDNN**: kernel 5, time stride 2, to 128 channels (``T' = ceil(T / 2)`` frames from here on).
* **Three D-TDNN blocks** of 12, 24 and 16 layers. Each layer sees every earlier output of its
  block (dense connections), runs BN-ReLU, a 1x1 bottleneck to 128 channels, BN-ReLU and the
  **CAM layer**: a kernel-3 convolution (dilation 1, 2, 2 per block) to 32 channels, multiplied
  by a sigmoid mask computed from its input's context, the utterance mean plus the mean of the
  100-frame segment the frame falls in (the last segment is the mean of the frames it has).
  A **transit layer** (BN-ReLU, 1x1) halves the channels after each block.
* BN-ReLU, **statistics pooling** (mean and unbiased std over time), a **dense** layer to 192
  batch-normalised without affine. 3D-Speaker's network ends there (a copy that adds a ReLU
  zeroes half the embedding; this one does not).

Layout and the dynamic time axis
--------------------------------
As in :mod:`inference.ecapa`: one utterance at a time, the 1-d part in ``(1, C, 1, T')`` with
every 1x1 convolution a ``Conv2d``; every BatchNorm that follows a convolution is folded into its
weights at conversion, every one that precedes a ReLU (pre-activation) is a per-channel
scale and shift (a depthwise 1x1 convolution: fast on a dynamic axis). The time axis is dynamic
(one compiled graph for every length) and everything that depends on the length comes in as
small inputs computed in numpy by :func:`frame_inputs`:

* the kernel-3 convolutions of the CAM layers are ``Conv2d`` with a ``(1, 3)`` kernel, dilated and
  zero-padded like PyTorch's ``Conv1d``: with 128 channels in and 32 out, one kernel measured as fast
  as a 1x1 convolution of the three taps and the eight gathers, shifts and adds that align them, and
  the graph is a fifth smaller (it compiles faster);
* the segment pooling is exact for every length: ``weights (T', S)`` holds ``1/|segment|`` for
  the frames of each of the ``S`` segments plus ``1/T'`` everywhere (so one product gives the
  context ``mean + segment mean`` of every segment), and ``expand (S, T')`` is one where a frame
  belongs to a segment. The mask is computed once per segment, not once per frame, and copied out
  to the frames by a product with ``expand``. Products are 2-d ``MatMul`` primitives with their
  transposes folded in (``ops.matmul`` adds broadcasts and transposes on a dynamic axis).

``CamPlusPlus(batched=True)`` is the same network on ``B`` utterances of one length at once
(diarization's windows: one call instead of ``B``), on the batch axis: ``(B, 1, F, T)`` in,
``(B, C, 1, T')`` in the 1-d part. Convolutions act per utterance as they stand; the CAM context is
one ``(B*C, T') x (T', S)`` product (the same ``weights`` and ``expand`` serve every utterance of the
length), its two 1x1 layers are convolutions on ``(B, C, 1, S)``, and the statistics are per row.
It is exported as a second graph (:func:`batch_inputs`: ``B`` and ``T`` dynamic) and equals the
one-utterance graph row by row (tests/inference/test_campplus_windows.py).

Shapes: ``T`` feature frames, ``F`` = 80 mel bins, ``C`` channels, ``T'`` frames after the stride,
``B`` utterances of a batch.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from inference.config import CampplusConfig
from inference.ecapa import _bn_scale, _bn_shapes, _bn_shift, _Leaf, _param, _scale_channels, _time_mean, _time_sum

_BN_EPS = 1e-5


# -- conversion transforms (PyTorch arrays -> this network's layout) ----------------------------


def _folded_weight(w: np.ndarray, gamma: np.ndarray, var: np.ndarray) -> np.ndarray:
    """A convolution weight ``(out, ...)`` times the following BatchNorm's per-channel scale."""
    scale = _bn_scale(gamma, var)
    return w * scale.reshape((-1,) + (1,) * (w.ndim - 1))


def _folded_conv1d(w: np.ndarray, gamma: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Conv1d ``(out, in, 1)`` + BatchNorm -> 1x1 Conv2d ``(out, in, 1, 1)``."""
    return _folded_weight(w, gamma, var)[:, :, :, None]


def _strided_tdnn(w: np.ndarray, gamma: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Conv1d ``(out, in, k)`` + BatchNorm -> Conv2d ``(out, in, 1, k)`` over ``(1, in, 1, T)``."""
    return _folded_weight(w, gamma, var)[:, :, None, :]


def _identity(v: np.ndarray) -> np.ndarray:
    return v


def _bn_names(prefix: str) -> tuple[str, str, str, str]:
    return tuple(f"{prefix}.{name}" for name in ("weight", "bias", "running_mean", "running_var"))


# -- the FCM head (2-d, on the mel x time plane) -------------------------------------------------


def _conv2d(x: ms.Tensor, weight: ms.Tensor, bias: ms.Tensor, stride: tuple[int, int] = (1, 1)) -> ms.Tensor:
    """3x3 convolution, zero padding 1 on both axes: ``(1, C, F, T) -> (1, C', F / stride[0], T)``."""
    return ops.conv2d(x, weight, bias, stride=stride, pad_mode="pad", padding=1)


class StemConv(_Leaf):
    """Conv2d 3x3 (no bias) + BatchNorm2d (folded) + ReLU; ``stride`` on the mel axis only."""

    def __init__(self, prefix: str, conv: str, bn: str, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(prefix)
        self.conv, self.bn, self.stride = conv, bn, (stride, 1)
        self.source = {
            "weight": ((f"{conv}.weight", f"{bn}.weight", f"{bn}.running_var"), _folded_weight),
            "bias": (_bn_names(bn), _bn_shift),
        }
        self.weight = _param((out_channels, in_channels, 3, 3), "weight")
        self.bias = _param((out_channels,), "bias")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        return {f"{self.conv}.weight": tuple(self.weight.shape), **_bn_shapes(self.bn, self.weight.shape[0])}

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return ops.relu(_conv2d(x, self.weight, self.bias, self.stride))


class ResBlock(_Leaf):
    """``relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x))``; the first block of a stage halves the
    mel axis (stride 2) and its shortcut is a strided 1x1 convolution + BatchNorm."""

    def __init__(self, prefix: str, channels: int, stride: int) -> None:
        super().__init__(prefix)
        self.stride = (stride, 1)
        self.has_shortcut = stride != 1
        self.source = {
            "w1": (("conv1.weight", "bn1.weight", "bn1.running_var"), _folded_weight),
            "b1": (_bn_names("bn1"), _bn_shift),
            "w2": (("conv2.weight", "bn2.weight", "bn2.running_var"), _folded_weight),
            "b2": (_bn_names("bn2"), _bn_shift),
        }
        self.w1 = _param((channels, channels, 3, 3), "w1")
        self.b1 = _param((channels,), "b1")
        self.w2 = _param((channels, channels, 3, 3), "w2")
        self.b2 = _param((channels,), "b2")
        if self.has_shortcut:
            self.source = dict(self.source, ws=(("shortcut.0.weight", "shortcut.1.weight", "shortcut.1.running_var"),
                                                _folded_weight),
                               bs=(_bn_names("shortcut.1"), _bn_shift))
            self.ws = _param((channels, channels, 1, 1), "ws")
            self.bs = _param((channels,), "bs")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        c = self.w1.shape[0]
        shapes = {"conv1.weight": (c, c, 3, 3), **_bn_shapes("bn1", c), "conv2.weight": (c, c, 3, 3), **_bn_shapes("bn2", c)}
        if self.has_shortcut:
            shapes.update({"shortcut.0.weight": (c, c, 1, 1), **_bn_shapes("shortcut.1", c)})
        return shapes

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        """``(1, C, F, T) -> (1, C, F / stride, T)``."""
        h = ops.relu(_conv2d(x, self.w1, self.b1, self.stride))
        h = _conv2d(h, self.w2, self.b2)
        shortcut = ops.conv2d(x, self.ws, self.bs, stride=self.stride) if self.has_shortcut else x
        return ops.relu(h + shortcut)


class Fcm(nn.Cell):
    """The FCM head: ``(1, 1, F, T) -> (1, C*F/8, 1, T)`` (channel-major, as 3D-Speaker flattens it);
    batched, ``(B, 1, F, T) -> (B, C*F/8, 1, T)``."""

    def __init__(self, config: CampplusConfig, batched: bool = False) -> None:
        super().__init__()
        self.batched = batched
        c = config.fcm_channels
        self.conv1 = StemConv("head", "conv1", "bn1", 1, c, 1)
        blocks = []
        for stage, count in enumerate(config.fcm_blocks, start=1):
            blocks += [ResBlock(f"head.layer{stage}.{i}", c, 2 if i == 0 else 1) for i in range(count)]
        self.blocks = nn.CellList(blocks)
        self.conv2 = StemConv("head", "conv2", "bn2", c, c, 2)
        self.out_channels = c * (config.input_size // 8)

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        x = self.conv1(x)
        for block in self.blocks:
            x = block(x)
        x = self.conv2(x)
        if self.batched:  # (B, C, F/8, T) -> (B, C*F/8, 1, T)
            return ops.reshape(x, (ops.shape(x)[0], self.out_channels, 1, ops.shape(x)[3]))
        return ops.reshape(x, (1, self.out_channels, 1, -1))


# -- the D-TDNN part (1-d, ``(1, C, 1, T')``) ----------------------------------------------------


class StridedTdnn(_Leaf):
    """Conv1d (kernel 5, stride 2, zero padding 2, no bias) + BatchNorm (folded) + ReLU."""

    source = {
        "weight": (("linear.weight", "nonlinear.batchnorm.weight", "nonlinear.batchnorm.running_var"), _strided_tdnn),
        "bias": (_bn_names("nonlinear.batchnorm"), _bn_shift),
    }

    def __init__(self, prefix: str, in_channels: int, out_channels: int, kernel: int) -> None:
        super().__init__(prefix)
        self.kernel = kernel
        self.weight = _param((out_channels, in_channels, 1, kernel), "weight")
        self.bias = _param((out_channels,), "bias")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        out_ch, in_ch = self.weight.shape[:2]
        return {"linear.weight": (out_ch, in_ch, self.kernel), **_bn_shapes("nonlinear.batchnorm", out_ch)}

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        """``(1, C_in, 1, T) -> (1, C_out, 1, T')``."""
        pad = (self.kernel - 1) // 2
        return ops.relu(ops.conv2d(x, self.weight, self.bias, stride=(1, 2), pad_mode="pad", padding=(0, pad)))


class CamDenseLayer(_Leaf):
    """One D-TDNN layer: BN-ReLU, 1x1 to the bottleneck (+ BN folded), ReLU, then the CAM layer.

    Returns the layer's ``growth`` new channels; the block concatenates them to its input.
    """

    source = {
        "bn_scale": (("nonlinear1.batchnorm.weight", "nonlinear1.batchnorm.running_var"), _bn_scale),
        "bn_shift": (_bn_names("nonlinear1.batchnorm"), _bn_shift),
        "w1": (("linear1.weight", "nonlinear2.batchnorm.weight", "nonlinear2.batchnorm.running_var"), _folded_conv1d),
        "b1": (_bn_names("nonlinear2.batchnorm"), _bn_shift),
        "local": (("cam_layer.linear_local.weight",), lambda w: w[:, :, None, :]),
        "ctx_w1": (("cam_layer.linear1.weight",), lambda w: w[:, :, 0]),
        "ctx_b1": (("cam_layer.linear1.bias",), _identity),
        "ctx_w2": (("cam_layer.linear2.weight",), lambda w: w[:, :, 0]),
        "ctx_b2": (("cam_layer.linear2.bias",), _identity),
    }

    def __init__(self, prefix: str, in_channels: int, bottleneck: int, growth: int, kernel: int, dilation: int,
                 reduction: int, batched: bool = False) -> None:
        super().__init__(prefix)
        self.batched = batched
        self.growth = growth
        self.kernel = kernel
        self.dilation = dilation
        self.bn_scale = _param((in_channels,), "bn_scale")
        self.bn_shift = _param((in_channels,), "bn_shift")
        self.w1 = _param((bottleneck, in_channels, 1, 1), "w1")
        self.b1 = _param((bottleneck,), "b1")
        self.local = _param((growth, bottleneck, 1, kernel), "local")
        self.ctx_w1 = _param((bottleneck // reduction, bottleneck), "ctx_w1")
        self.ctx_b1 = _param((bottleneck // reduction,), "ctx_b1")
        self.ctx_w2 = _param((growth, bottleneck // reduction), "ctx_w2")
        self.ctx_b2 = _param((growth,), "ctx_b2")
        # 2-d products without the batch machinery of ops.matmul (broadcasts and transposes on a dynamic axis)
        self.matmul_tt = ops.MatMul(transpose_a=True, transpose_b=True)
        self.matmul_nt = ops.MatMul(transpose_b=True)
        self.matmul_tn = ops.MatMul(transpose_a=True)
        self.matmul = ops.MatMul()

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        bottleneck, in_ch = self.w1.shape[:2]
        reduced = self.ctx_w1.shape[0]
        return {
            **_bn_shapes("nonlinear1.batchnorm", in_ch),
            "linear1.weight": (bottleneck, in_ch, 1),
            **_bn_shapes("nonlinear2.batchnorm", bottleneck),
            "cam_layer.linear_local.weight": (self.growth, bottleneck, self.kernel),
            "cam_layer.linear1.weight": (reduced, bottleneck, 1),
            "cam_layer.linear1.bias": (reduced,),
            "cam_layer.linear2.weight": (self.growth, reduced, 1),
            "cam_layer.linear2.bias": (self.growth,),
        }

    def construct(self, x: ms.Tensor, weights: ms.Tensor, expand: ms.Tensor) -> ms.Tensor:
        """``x (1, C_in, 1, T')``; ``weights (T', S)``, ``expand (S, T')`` (see the module's docstring).
        Returns ``(1, growth, 1, T')``."""
        h = ops.relu(_scale_channels(x, self.bn_scale, self.bn_shift))
        h = ops.relu(ops.conv2d(h, self.w1, self.b1))  # (1, B, 1, T')
        pad = (self.kernel - 1) // 2 * self.dilation
        local = ops.conv2d(h, self.local, pad_mode="pad", padding=(0, pad), dilation=(1, self.dilation))
        if self.batched:
            return local * self._batched_mask(h, weights, expand)
        context = self.matmul_tt(weights, ops.reshape(h, (h.shape[1], -1)))  # (S, B): mean + segment mean
        gate = ops.relu(ops.bias_add(self.matmul_nt(context, self.ctx_w1), self.ctx_b1))
        mask = ops.sigmoid(ops.bias_add(self.matmul_nt(gate, self.ctx_w2), self.ctx_b2))  # (S, growth)
        return local * ops.reshape(self.matmul_tn(mask, expand), (1, self.growth, 1, -1))

    def _batched_mask(self, h: ms.Tensor, weights: ms.Tensor, expand: ms.Tensor) -> ms.Tensor:
        """The CAM mask of ``h (B, C, 1, T')`` per utterance -> ``(B, growth, 1, T')``: the same arithmetic
        as the one-utterance path, the context laid out ``(B, C, 1, S)`` so its two dense layers are 1x1
        convolutions."""
        frames, bottleneck = ops.shape(h)[3], h.shape[1]
        context = self.matmul(ops.reshape(h, (-1, frames)), weights)  # (B*C, S)
        context = ops.reshape(context, (-1, bottleneck, 1, ops.shape(weights)[1]))
        gate = ops.relu(ops.conv2d(context, ops.reshape(self.ctx_w1, (-1, bottleneck, 1, 1)), self.ctx_b1))
        mask = ops.sigmoid(ops.conv2d(gate, ops.reshape(self.ctx_w2, (self.growth, -1, 1, 1)), self.ctx_b2))
        spread = self.matmul(ops.reshape(mask, (-1, ops.shape(mask)[3])), expand)  # (B*growth, T')
        return ops.reshape(spread, (-1, self.growth, 1, frames))


class Transit(_Leaf):
    """BN-ReLU then a 1x1 convolution without bias (halves the channels after a dense block)."""

    source = {
        "bn_scale": (("nonlinear.batchnorm.weight", "nonlinear.batchnorm.running_var"), _bn_scale),
        "bn_shift": (_bn_names("nonlinear.batchnorm"), _bn_shift),
        "weight": (("linear.weight",), lambda w: w[:, :, :, None]),
    }

    def __init__(self, prefix: str, in_channels: int, out_channels: int) -> None:
        super().__init__(prefix)
        self.bn_scale = _param((in_channels,), "bn_scale")
        self.bn_shift = _param((in_channels,), "bn_shift")
        self.weight = _param((out_channels, in_channels, 1, 1), "weight")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        out_ch, in_ch = self.weight.shape[:2]
        return {**_bn_shapes("nonlinear.batchnorm", in_ch), "linear.weight": (out_ch, in_ch, 1)}

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return ops.conv2d(ops.relu(_scale_channels(x, self.bn_scale, self.bn_shift)), self.weight)


class BnRelu(_Leaf):
    """The last BN-ReLU before pooling."""

    source = {
        "bn_scale": (("batchnorm.weight", "batchnorm.running_var"), _bn_scale),
        "bn_shift": (_bn_names("batchnorm"), _bn_shift),
    }

    def __init__(self, prefix: str, channels: int) -> None:
        super().__init__(prefix)
        self.bn_scale = _param((channels,), "bn_scale")
        self.bn_shift = _param((channels,), "bn_shift")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        return _bn_shapes("batchnorm", self.bn_scale.shape[0])

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return ops.relu(_scale_channels(x, self.bn_scale, self.bn_shift))


def _affine_free_scale(w: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Dense ``(out, in, 1)`` followed by BatchNorm without affine -> ``(in, out)`` scaled columns."""
    return (w[:, :, 0] / np.sqrt(var.astype(np.float64) + _BN_EPS)[:, None]).T


def _affine_free_shift(mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -mean / np.sqrt(var.astype(np.float64) + _BN_EPS)


class Embedding(_Leaf):
    """Dense layer (no bias) + BatchNorm without affine, folded: ``(1, in) -> (1, out)``."""

    source = {
        "weight": (("linear.weight", "nonlinear.batchnorm.running_var"), _affine_free_scale),
        "bias": (("nonlinear.batchnorm.running_mean", "nonlinear.batchnorm.running_var"), _affine_free_shift),
    }

    def __init__(self, prefix: str, in_channels: int, out_channels: int) -> None:
        super().__init__(prefix)
        self.weight = _param((in_channels, out_channels), "weight")
        self.bias = _param((out_channels,), "bias")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        in_ch, out_ch = self.weight.shape
        return {
            "linear.weight": (out_ch, in_ch, 1),
            "nonlinear.batchnorm.running_mean": (out_ch,),
            "nonlinear.batchnorm.running_var": (out_ch,),
        }

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return ops.matmul(x, self.weight) + self.bias


def _stats_pool(x: ms.Tensor) -> ms.Tensor:
    """``(1, C, 1, T') -> (1, 2C)``: mean and unbiased standard deviation over time (``T' >= 2``)."""
    mean = _time_mean(x)
    d = ops.bias_add(x, -ops.reshape(mean, (-1,)))
    var = _time_sum(ops.square(d)) / (ops.cast(ops.shape(x)[3], ms.float32) - 1.0)
    return ops.concat((mean, ops.sqrt(var)), axis=1)


def _row_stats_pool(x: ms.Tensor) -> ms.Tensor:
    """``(B, C, 1, T') -> (B, 2C)``: :func:`_stats_pool` of each utterance (sums as matrix-vector products)."""
    frames, channels = ops.shape(x)[3], x.shape[1]
    ones = ops.ones((frames, 1), ms.float32)
    count = ops.cast(frames, ms.float32)
    mean = ops.reshape(ops.matmul(ops.reshape(x, (-1, frames)), ones), (-1, channels)) / count  # (B, C)
    d = x - ops.reshape(mean, (-1, channels, 1, 1))
    var = ops.reshape(ops.matmul(ops.reshape(ops.square(d), (-1, frames)), ones), (-1, channels)) / (count - 1.0)
    return ops.concat((mean, ops.sqrt(var)), axis=1)


class CamPlusPlus(nn.Cell):
    """The whole network: mean-normalised Kaldi fbank of one utterance -> its 192-d (un-normalised) embedding.

    Inputs (see :func:`frame_inputs`)
    ------
    feats : ``(1, 1, F, T)`` float32, the features with time last.
    weights : ``(T', S)`` float32, ``1/|segment|`` on each frame's segment plus ``1/T'``.
    expand : ``(S, T')`` float32, one where frame ``t`` is in segment ``s``.

    Returns ``(1, embedding_size)`` float32. With ``batched``: ``feats (B, 1, F, T)`` holds ``B``
    utterances of one length (:func:`batch_frame_inputs`) and the result is ``(B, embedding_size)``.
    """

    def __init__(self, config: CampplusConfig = CampplusConfig(), batched: bool = False) -> None:
        super().__init__()
        self.config = config
        self.batched = batched
        self.head = Fcm(config, batched)
        self.tdnn = StridedTdnn("xvector.tdnn", self.head.out_channels, config.init_channels, config.tdnn_kernel)
        channels = config.init_channels
        bottleneck = config.bn_size * config.growth_rate
        blocks, transits = [], []
        for b, (layers, dilation) in enumerate(zip(config.block_layers, config.dilations), start=1):
            blocks.append(nn.CellList([
                CamDenseLayer(f"xvector.block{b}.tdnnd{i + 1}", channels + i * config.growth_rate, bottleneck,
                              config.growth_rate, config.kernel_size, dilation, config.cam_reduction, batched)
                for i in range(layers)
            ]))
            channels += layers * config.growth_rate
            transits.append(Transit(f"xvector.transit{b}", channels, channels // 2))
            channels //= 2
        self.blocks = nn.CellList(blocks)
        self.transits = nn.CellList(transits)
        self.out = BnRelu("xvector.out_nonlinear", channels)
        self.dense = Embedding("xvector.dense", 2 * channels, config.embedding_size)

    def construct(self, feats: ms.Tensor, weights: ms.Tensor, expand: ms.Tensor) -> ms.Tensor:
        x = self.tdnn(self.head(feats))
        for b in range(len(self.blocks)):
            for layer in self.blocks[b]:
                x = ops.concat((x, layer(x, weights, expand)), axis=1)
            x = self.transits[b](x)
        pool = _row_stats_pool if self.batched else _stats_pool
        return self.dense(pool(self.out(x)))

    def leaves(self) -> list[_Leaf]:
        """Every cell that owns parameters from the source checkpoint."""
        return [cell for _, cell in self.cells_and_names() if isinstance(cell, _Leaf)]


def dynamic_inputs(config: CampplusConfig = CampplusConfig()) -> tuple[ms.Tensor, ...]:
    """Placeholders of the network's inputs with the time axes (and the segment count) left open."""
    return (
        ms.Tensor(shape=[1, 1, config.input_size, None], dtype=ms.float32),
        ms.Tensor(shape=[None, None], dtype=ms.float32),
        ms.Tensor(shape=[None, None], dtype=ms.float32),
    )


def batch_inputs(config: CampplusConfig = CampplusConfig()) -> tuple[ms.Tensor, ...]:
    """Placeholders of the batched network's inputs: utterances ``B`` and frames ``T`` both open."""
    return (
        ms.Tensor(shape=[None, 1, config.input_size, None], dtype=ms.float32),
        ms.Tensor(shape=[None, None], dtype=ms.float32),
        ms.Tensor(shape=[None, None], dtype=ms.float32),
    )


def strided_frames(frames: int) -> int:
    """Frames after the TDNN's stride 2 (kernel 5, padding 2): ``ceil(T / 2)``."""
    return (frames + 1) // 2


def segment_inputs(frames: int, segment_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """``weights (T', S)`` and ``expand (S, T')`` float32 of the CAM context for ``T'`` frames.

    Frame ``t`` belongs to segment ``t // segment_frames``; the last segment may be shorter and
    is averaged over the frames it has (PyTorch's ``avg_pool1d(ceil_mode=True)`` without
    padding). ``x @ weights`` is then ``mean(x) + mean of each segment``, and ``m @ expand``
    copies each segment's column of ``m`` out to its frames.
    """
    segment = np.arange(frames) // segment_frames
    counts = np.bincount(segment)
    weights = np.full((frames, counts.size), 1.0 / frames)
    weights[np.arange(frames), segment] += 1.0 / counts[segment]
    expand = np.zeros((counts.size, frames), dtype=np.float32)
    expand[segment, np.arange(frames)] = 1.0
    return weights.astype(np.float32), expand


def frame_inputs(features: np.ndarray, config: CampplusConfig = CampplusConfig()) -> tuple[np.ndarray, ...]:
    """The network inputs for one utterance's normalised features ``(T, F)`` (``T >= 3``).

    Returns ``feats (1, 1, F, T)``, ``weights (T', S)``, ``expand (S, T')``.
    """
    frames = features.shape[0]
    if frames < 3:
        raise ValueError(f"{frames} frames are too few for CAM++ (at least 3: two after the stride, for the std)")
    feats = np.ascontiguousarray(features.T, dtype=np.float32)[None, None]
    weights, expand = segment_inputs(strided_frames(frames), config.segment_frames)
    return feats, weights, expand


def batch_frame_inputs(utterances: list[np.ndarray], config: CampplusConfig = CampplusConfig()) -> tuple[np.ndarray, ...]:
    """The batched network's inputs for utterances of one length ``[(T, F)] * B`` (``T >= 3``).

    Returns ``feats (B, 1, F, T)``, ``weights (T', S)``, ``expand (S, T')`` (shared by every utterance).
    """
    if not utterances or len({u.shape for u in utterances}) != 1:
        raise ValueError("a batch holds one or more utterances of one shape")
    frames = utterances[0].shape[0]
    if frames < 3:
        raise ValueError(f"{frames} frames are too few for CAM++ (at least 3: two after the stride, for the std)")
    feats = np.ascontiguousarray(np.stack(utterances).transpose(0, 2, 1), dtype=np.float32)[:, None]
    weights, expand = segment_inputs(strided_frames(frames), config.segment_frames)
    return feats, weights, expand
