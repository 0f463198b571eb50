"""ECAPA-TDNN in MindSpore, numerically equal to SpeechBrain's ``ECAPA_TDNN``.

Why not mindaudio's ``EcapaTDNN``: with the same weights it computes other numbers. It pads
with zeros where SpeechBrain reflects, builds the global-context input of the attentive
pooling but never feeds it in, ``squeeze()``s the batch axis away for batch 1 and ignores
its BatchNorm arguments; and its dilated ``Conv1d`` (a ``Conv2d`` with a ``(1, k)`` kernel)
runs ~16x slower on CPU than the same maths written as shifted copies + one 1x1 convolution.
Patching all of that leaves nothing of the original, so this module is a rewrite of the
same architecture (Desplanques et al., 2020) in a layout fast on CPU.

Layout and the dynamic time axis
--------------------------------
One utterance at a time, activations ``(1, C, 1, T)``: every convolution is one 1x1 ``Conv2d``
(oneDNN; about twice as fast as ``MatMul`` here). A ``k=3`` convolution with dilation ``d`` is
a 1x1 convolution of ``[x(t-d), x(t), x(t+d)]`` stacked on the channel axis, where the shifted
copies are gathered with precomputed indices that reflect at the utterance's ends (SpeechBrain
pads with ``reflect``). The time axis ``T`` is dynamic: the network is compiled once, for every
length (``dynamic_inputs`` declares it; ``prepare.py`` exports that graph as MINDIR), so nothing
is padded and no length waits for a compilation of its own.

Broadcasting element-wise operations are slow on a dynamic axis (MindSpore's CPU kernels
broadcast through an explicit copy: a per-channel ``x * s`` measured 7.7 ms against 0.8 ms for
a same-shape product), so per-channel scales are depthwise 1x1 convolutions and per-channel
offsets ``BiasAdd``: the same arithmetic, one multiply or add per element.

Windows of one length at once
-----------------------------
``EcapaTdnn(batched=True)`` is the same network on ``(1, C, B, T)``: ``B`` utterances of one length
on the third axis (diarization's windows; one call instead of ``B``). The convolutions, gathers
and the softmax act per row as they stand; what is per utterance (the SE gates, the attentive
pooling's statistics and context) is computed per row with the same matrix-vector sums and put
back over the time axis as an outer product with ones (a same-shape product, no broadcasting
kernel). It is exported as a second graph (``batch_inputs``: ``B`` and ``T`` dynamic) and equals
the one-utterance graph to float rounding (tests/inference/test_ecapa_windows.py). On 64 windows
of 1.5 s it took 0.66x the time of 64 one-utterance calls; on one utterance it is slower (1.4x),
so single recordings keep the one-utterance graph.

Shapes: ``T`` frames, ``F`` = 80 mel bins, ``C`` channels, ``B`` utterances of one length.
"""
from __future__ import annotations

from collections.abc import Callable

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from inference.config import ModelConfig

_BN_EPS = 1e-5
_ASP_EPS = 1e-12


def _param(shape: tuple[int, ...], name: str) -> ms.Parameter:
    return ms.Parameter(ms.Tensor(np.zeros(shape, dtype=np.float32)), name=name, requires_grad=False)


Transform = Callable[..., np.ndarray]


class _Leaf(nn.Cell):
    """A cell whose parameters come from one prefix of the SpeechBrain state dict.

    ``source`` maps each parameter attribute to ``(source key suffixes, transform)``; the
    transform takes those PyTorch arrays and returns the array in this cell's layout.
    """

    source: dict[str, tuple[tuple[str, ...], Transform]] = {}

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        """The PyTorch shape every source key of this cell must have (checked before any transform)."""
        raise NotImplementedError

    def source_arrays(self, state: dict[str, np.ndarray]) -> dict[str, tuple[list[str], np.ndarray]]:
        """Return ``{attribute: (source keys used, array in this cell's layout)}``.

        Raises
        ------
        KeyError
            A source key is missing (the key is the argument).
        ValueError
            A source array does not have the PyTorch shape this architecture needs.
        """
        shapes = {f"{self.prefix}.{suffix}": shape for suffix, shape in self.source_shapes().items()}
        out = {}
        for attr, (suffixes, transform) in self.source.items():
            keys = [f"{self.prefix}.{suffix}" for suffix in suffixes]
            for key in keys:
                if key not in state:
                    raise KeyError(key)
                if tuple(state[key].shape) != shapes[key]:
                    raise ValueError(f"{key}: source shape {tuple(state[key].shape)} does not fit the expected {shapes[key]}")
            out[attr] = (keys, np.ascontiguousarray(transform(*(state[k] for k in keys)), dtype=np.float32))
        return out


def _conv_weight(w: np.ndarray) -> np.ndarray:
    """PyTorch Conv1d weight ``(out, in, k)`` -> 1x1 Conv2d weight ``(out, k*in, 1, 1)``.

    The input channels are ordered tap-major: ``[x(t-..), .., x(t+..)]``, each ``in`` wide.
    """
    out_ch, in_ch, k = w.shape
    return w.transpose(0, 2, 1).reshape(out_ch, k * in_ch, 1, 1)


def _bn_scale(gamma: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Eval-mode BatchNorm as ``x * scale + shift``: ``scale = gamma / sqrt(var + eps)``."""
    return gamma / np.sqrt(var.astype(np.float64) + _BN_EPS)


def _bn_shift(gamma: np.ndarray, beta: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return beta - mean * (gamma / np.sqrt(var.astype(np.float64) + _BN_EPS))


def _bn_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}


def _conv(x: ms.Tensor, weight: ms.Tensor, bias: ms.Tensor) -> ms.Tensor:
    """1x1 convolution over ``(1, C_in, 1, T) -> (1, C_out, 1, T)``; bias ``(C_out,)`` (fused into the conv)."""
    return ops.conv2d(x, weight, bias)


class TdnnBlock(_Leaf):
    """Conv1d (a 1x1 conv over pre-shifted inputs) -> ReLU -> BatchNorm (eval).

    The BatchNorm runs as MindSpore's fused inference kernel on the original statistics (one
    pass over the activations, where a folded ``x * scale + shift`` takes two).
    """

    source = {
        "weight": (("conv.conv.weight",), _conv_weight),
        "bias": (("conv.conv.bias",), lambda b: b),
        "bn_gamma": (("norm.norm.weight",), lambda v: v),
        "bn_beta": (("norm.norm.bias",), lambda v: v),
        "bn_mean": (("norm.norm.running_mean",), lambda v: v),
        "bn_var": (("norm.norm.running_var",), lambda v: v),
    }

    def __init__(self, prefix: str, in_features: int, out_channels: int, kernel_size: int = 1) -> None:
        super().__init__(prefix)
        self.kernel_size = kernel_size
        self.weight = _param((out_channels, in_features, 1, 1), "weight")
        self.bias = _param((out_channels,), "bias")
        self.bn_gamma = _param((out_channels,), "bn_gamma")
        self.bn_beta = _param((out_channels,), "bn_beta")
        self.bn_mean = _param((out_channels,), "bn_mean")
        self.bn_var = _param((out_channels,), "bn_var")
        self.batch_norm = ops.BatchNorm(is_training=False, epsilon=_BN_EPS)

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        out_ch, in_features = self.weight.shape[0], self.weight.shape[1]
        return {
            "conv.conv.weight": (out_ch, in_features // self.kernel_size, self.kernel_size),
            "conv.conv.bias": (out_ch,),
            **_bn_shapes("norm.norm", out_ch),
        }

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        """``(1, in_features, 1, T) -> (1, out_channels, 1, T)``."""
        y = ops.relu(_conv(x, self.weight, self.bias))
        return self.batch_norm(y, self.bn_gamma, self.bn_beta, self.bn_mean, self.bn_var)[0]


class Dense(_Leaf):
    """A kernel-1 Conv1d without activation, on pooled vectors: ``(B, in) -> (B, out)``."""

    source = {
        "weight": (("conv.weight",), lambda w: w[:, :, 0].T),
        "bias": (("conv.bias",), lambda b: b),
    }

    def __init__(self, prefix: str, in_channels: int, out_channels: int) -> None:
        super().__init__(prefix)
        self.weight = _param((in_channels, out_channels), "weight")
        self.bias = _param((out_channels,), "bias")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        in_ch, out_ch = self.weight.shape
        return {"conv.weight": (out_ch, in_ch, 1), "conv.bias": (out_ch,)}

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return ops.matmul(x, self.weight) + self.bias


class Res2NetBlock(nn.Cell):
    """Hierarchical residual-like convolutions over ``scale`` channel groups (group 0 passes through)."""

    def __init__(self, prefix: str, channels: int, scale: int) -> None:
        super().__init__()
        width = channels // scale
        self.scale = scale
        self.width = width
        self.convs = nn.CellList([TdnnBlock(f"{prefix}.blocks.{i}", 3 * width, width, 3) for i in range(scale - 1)])

    def construct(self, x: ms.Tensor, left: ms.Tensor, right: ms.Tensor) -> ms.Tensor:
        """``x (1, C, 1, T)``; ``left``/``right`` ``(T,)`` frame indices of ``t-d`` and ``t+d`` (reflected)."""
        chunks = ops.split(x, self.width, axis=1)
        outputs = [chunks[0]]
        y = chunks[0]
        for i, conv in enumerate(self.convs):
            z = chunks[i + 1] if i == 0 else chunks[i + 1] + y
            y = conv(ops.concat((ops.gather(z, left, 3), z, ops.gather(z, right, 3)), axis=1))
            outputs.append(y)
        return ops.concat(outputs, axis=1)


def _time_sum(x: ms.Tensor) -> ms.Tensor:
    """``(1, C, 1, T) -> (1, C)``: the sum over time, as a matrix-vector product.

    MindSpore's CPU ``ReduceSum``/``ReduceMean`` over the time axis are slower (measured in the
    whole network: 10% of its time at 3 s).
    """
    ones = ops.ones((ops.shape(x)[3], 1), ms.float32)
    return ops.reshape(ops.matmul(ops.reshape(x, (x.shape[1], -1)), ones), (1, -1))


def _time_mean(x: ms.Tensor) -> ms.Tensor:
    """``(1, C, 1, T) -> (1, C)``: the mean over time."""
    return _time_sum(x) / ops.cast(ops.shape(x)[3], ms.float32)


def _row_sums(x: ms.Tensor) -> ms.Tensor:
    """``(1, C, B, T) -> (B, C)``: the sum over time of each row, as one matrix-vector product."""
    ones = ops.ones((ops.shape(x)[3], 1), ms.float32)
    sums = ops.matmul(ops.reshape(x, (-1, ops.shape(x)[3])), ones)  # (C*B, 1)
    return ops.transpose(ops.reshape(sums, (x.shape[1], -1)), (1, 0))


def _row_means(x: ms.Tensor) -> ms.Tensor:
    """``(1, C, B, T) -> (B, C)``: the mean over time of each row."""
    return _row_sums(x) / ops.cast(ops.shape(x)[3], ms.float32)


def _over_time(values: ms.Tensor, like: ms.Tensor) -> ms.Tensor:
    """``(B, C)`` per-row values -> ``(1, C, B, T)`` shaped as ``like``: an outer product with ones over time."""
    ones = ops.ones((1, ops.shape(like)[3]), ms.float32)
    column = ops.reshape(ops.transpose(values, (1, 0)), (-1, 1))  # (C*B, 1)
    return ops.reshape(ops.matmul(column, ones), ops.shape(like))


def _scale_channels(x: ms.Tensor, scale: ms.Tensor, shift: ms.Tensor | None = None) -> ms.Tensor:
    """``x * scale (+ shift)`` per channel: ``x (1, C, 1, T)``, ``scale``/``shift`` ``(C,)``.

    A depthwise 1x1 convolution: on the dynamic time axis a broadcasting ``Mul`` copies the
    scale out to the full shape first and runs ~5x slower. One multiply per element either way.
    """
    return ops.conv2d(x, ops.reshape(scale, (-1, 1, 1, 1)), shift, groups=scale.shape[0])


class SqueezeExcitation(nn.Cell):
    """Channel gates from the time-average: ``x * sigmoid(W2 relu(W1 mean_t(x)))``."""

    def __init__(self, prefix: str, channels: int, se_channels: int, batched: bool = False) -> None:
        super().__init__()
        self.batched = batched
        self.conv1 = Dense(f"{prefix}.conv1", channels, se_channels)
        self.conv2 = Dense(f"{prefix}.conv2", se_channels, channels)

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        """``(1, C, B, T)`` -> same shape (``B`` = 1 unless batched)."""
        if self.batched:
            s = ops.sigmoid(self.conv2(ops.relu(self.conv1(_row_means(x)))))  # (B, C)
            return x * _over_time(s, x)
        s = ops.sigmoid(self.conv2(ops.relu(self.conv1(_time_mean(x)))))
        return _scale_channels(x, ops.reshape(s, (-1,)))


class SERes2NetBlock(nn.Cell):
    """TDNN(1x1) -> Res2Net(k=3, dilation d) -> TDNN(1x1) -> SE, plus the residual."""

    def __init__(self, prefix: str, channels: int, scale: int, se_channels: int, batched: bool = False) -> None:
        super().__init__()
        self.tdnn1 = TdnnBlock(f"{prefix}.tdnn1", channels, channels)
        self.res2net = Res2NetBlock(f"{prefix}.res2net_block", channels, scale)
        self.tdnn2 = TdnnBlock(f"{prefix}.tdnn2", channels, channels)
        self.se = SqueezeExcitation(f"{prefix}.se_block", channels, se_channels, batched)

    def construct(self, x: ms.Tensor, left: ms.Tensor, right: ms.Tensor) -> ms.Tensor:
        """``x (1, C, 1, T)`` -> same shape."""
        h = self.tdnn2(self.res2net(self.tdnn1(x), left, right))
        return self.se(h) + x


def _split_context(part: int) -> Transform:
    """One third of the attention TDNN's ``[x, mean, std]`` input weight."""

    def take(w: np.ndarray) -> np.ndarray:
        c = w.shape[1] // 3
        return w[:, part * c : (part + 1) * c, 0]

    return take


class AttentiveStatisticsPooling(_Leaf):
    """Attentive statistics pooling with global context (mean and std of the utterance fed in).

    SpeechBrain concatenates ``[x, mean, std]`` (``3C`` channels) before its attention TDNN; the
    mean and std parts are constant over time, so their product with the weight is computed
    once per utterance (the convolution's bias) instead of once per frame: same numbers, a
    third of the work. Second moments are taken about the utterance mean (``d = x - mean``), so
    the attention's weighted variance is ``E_p[d^2] - E_p[d]^2`` without cancellation trouble,
    and each full-size pass over the ``(C, T)`` features is made once.
    """

    source = {
        "tdnn_wx": (("tdnn.conv.conv.weight",), lambda w: _split_context(0)(w)[:, :, None, None]),
        "tdnn_wm": (("tdnn.conv.conv.weight",), lambda w: _split_context(1)(w).T),
        "tdnn_ws": (("tdnn.conv.conv.weight",), lambda w: _split_context(2)(w).T),
        "tdnn_bias": (("tdnn.conv.conv.bias",), lambda b: b),
        "bn_scale": (("tdnn.norm.norm.weight", "tdnn.norm.norm.running_var"), _bn_scale),
        "bn_shift": (
            ("tdnn.norm.norm.weight", "tdnn.norm.norm.bias", "tdnn.norm.norm.running_mean", "tdnn.norm.norm.running_var"),
            _bn_shift,
        ),
        "conv_w": (("conv.conv.weight",), _conv_weight),
        "conv_b": (("conv.conv.bias",), lambda b: b),
    }

    def __init__(self, prefix: str, channels: int, attention_channels: int, batched: bool = False) -> None:
        super().__init__(prefix)
        self.batched = batched
        self.tdnn_wx = _param((attention_channels, channels, 1, 1), "tdnn_wx")
        self.tdnn_wm = _param((channels, attention_channels), "tdnn_wm")
        self.tdnn_ws = _param((channels, attention_channels), "tdnn_ws")
        self.tdnn_bias = _param((attention_channels,), "tdnn_bias")
        self.bn_scale = _param((attention_channels,), "bn_scale")
        self.bn_shift = _param((attention_channels,), "bn_shift")
        self.conv_w = _param((channels, attention_channels, 1, 1), "conv_w")
        self.conv_b = _param((channels,), "conv_b")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        attention, channels = self.tdnn_wx.shape[0], self.tdnn_wx.shape[1]
        return {
            "tdnn.conv.conv.weight": (attention, 3 * channels, 1),
            "tdnn.conv.conv.bias": (attention,),
            **_bn_shapes("tdnn.norm.norm", attention),
            "conv.conv.weight": (channels, attention, 1),
            "conv.conv.bias": (channels,),
        }

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        """``x (1, C, 1, T)`` -> pooled ``(1, 2C)``: the attention-weighted mean and std."""
        if self.batched:
            return self._rows(x)
        mean = _time_mean(x)  # (1, C)
        d = ops.bias_add(x, -ops.reshape(mean, (-1,)))
        d2 = ops.square(d)
        std = ops.sqrt(ops.clamp(_time_mean(d2), min=_ASP_EPS))
        context = ops.matmul(mean, self.tdnn_wm) + ops.matmul(std, self.tdnn_ws) + self.tdnn_bias  # (1, A)
        h = ops.relu(ops.conv2d(x, self.tdnn_wx, ops.reshape(context, (-1,))))  # (1, A, 1, T)
        h = ops.tanh(_scale_channels(h, self.bn_scale, self.bn_shift))
        attn = ops.softmax(_conv(h, self.conv_w, self.conv_b), axis=3)  # (1, C, 1, T), sums to 1 over T
        shift = _time_sum(d * attn)  # E_p[d]
        var = _time_sum(d2 * attn) - ops.square(shift)
        return ops.concat((mean + shift, ops.sqrt(ops.clamp(var, min=_ASP_EPS))), axis=1)

    def _rows(self, x: ms.Tensor) -> ms.Tensor:
        """``x (1, C, B, T)`` -> ``(B, 2C)``: :meth:`construct` for each row (the same arithmetic)."""
        mean = _row_means(x)  # (B, C)
        d = x - _over_time(mean, x)
        d2 = ops.square(d)
        std = ops.sqrt(ops.clamp(_row_means(d2), min=_ASP_EPS))
        context = ops.matmul(mean, self.tdnn_wm) + ops.matmul(std, self.tdnn_ws) + self.tdnn_bias  # (B, A)
        h = ops.conv2d(x, self.tdnn_wx)
        h = ops.relu(h + _over_time(context, h))
        h = ops.tanh(_scale_channels(h, self.bn_scale, self.bn_shift))
        attn = ops.softmax(_conv(h, self.conv_w, self.conv_b), axis=3)  # sums to 1 over each row's T
        shift = _row_sums(d * attn)
        var = _row_sums(d2 * attn) - ops.square(shift)
        return ops.concat((mean + shift, ops.sqrt(ops.clamp(var, min=_ASP_EPS))), axis=1)


class BatchNorm(_Leaf):
    """Eval-mode BatchNorm on pooled vectors ``(B, C)``."""

    source = {
        "bn_scale": (("norm.weight", "norm.running_var"), _bn_scale),
        "bn_shift": (
            ("norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"),
            _bn_shift,
        ),
    }

    def __init__(self, prefix: str, channels: int) -> None:
        super().__init__(prefix)
        self.bn_scale = _param((channels,), "bn_scale")
        self.bn_shift = _param((channels,), "bn_shift")

    def source_shapes(self) -> dict[str, tuple[int, ...]]:
        return _bn_shapes("norm", self.bn_scale.shape[0])

    def construct(self, x: ms.Tensor) -> ms.Tensor:
        return x * self.bn_scale + self.bn_shift


class EcapaTdnn(nn.Cell):
    """The whole network: unfolded log-mel frames of one utterance -> its 192-d (un-normalised) embedding.

    Inputs (see :func:`frame_inputs`)
    ------
    feats : ``(1, k0*F, 1, T)`` float32, the first layer's input already unfolded over its
        kernel (``k0`` = 5 frames, reflected at the utterance's ends).
    index : ``(2*len(block dilations), T)`` int32, gather positions of ``t-d`` and ``t+d`` per block.

    Returns ``(1, embedding_size)`` float32. With ``batched``: ``feats (1, k0*F, B, T)`` holds ``B``
    utterances of ``T`` frames (one index serves them all) and the result is ``(B, embedding_size)``.
    """

    def __init__(self, config: ModelConfig = ModelConfig(), batched: bool = False) -> None:
        super().__init__()
        ch = config.channels
        if not (len(ch) == 5 and config.kernel_sizes[1:4] == (3, 3, 3) and config.kernel_sizes[4] == 1):
            raise ValueError("this ECAPA-TDNN supports 3 SE-Res2Net blocks with kernel 3 and a 1x1 MFA layer")
        self.config = config
        self.block0 = TdnnBlock("blocks.0", config.kernel_sizes[0] * config.input_size, ch[0], config.kernel_sizes[0])
        self.block1 = SERes2NetBlock("blocks.1", ch[1], config.res2net_scale, config.se_channels, batched)
        self.block2 = SERes2NetBlock("blocks.2", ch[2], config.res2net_scale, config.se_channels, batched)
        self.block3 = SERes2NetBlock("blocks.3", ch[3], config.res2net_scale, config.se_channels, batched)
        self.mfa = TdnnBlock("mfa", ch[1] + ch[2] + ch[3], ch[4])
        self.asp = AttentiveStatisticsPooling("asp", ch[4], config.attention_channels, batched)
        self.asp_bn = BatchNorm("asp_bn", 2 * ch[4])
        self.fc = Dense("fc", 2 * ch[4], config.embedding_size)

    def construct(self, feats: ms.Tensor, index: ms.Tensor) -> ms.Tensor:
        x = self.block0(feats)
        x1 = self.block1(x, index[0], index[1])
        x2 = self.block2(x1, index[2], index[3])
        x3 = self.block3(x2, index[4], index[5])
        x = self.mfa(ops.concat((x1, x2, x3), axis=1))
        return self.fc(self.asp_bn(self.asp(x)))

    def leaves(self) -> list[_Leaf]:
        """Every cell that owns parameters from the source checkpoint."""
        return [cell for _, cell in self.cells_and_names() if isinstance(cell, _Leaf)]


def dynamic_inputs(config: ModelConfig = ModelConfig()) -> tuple[ms.Tensor, ms.Tensor]:
    """Placeholders of the network's inputs with the time axis left open (``None``): one graph for every length."""
    return (
        ms.Tensor(shape=[1, config.kernel_sizes[0] * config.input_size, 1, None], dtype=ms.float32),
        ms.Tensor(shape=[2 * len(config.dilations[1:4]), None], dtype=ms.int32),
    )


def batch_inputs(config: ModelConfig = ModelConfig()) -> tuple[ms.Tensor, ms.Tensor]:
    """Placeholders of the batched network's inputs: utterances ``B`` and frames ``T`` both open."""
    return (
        ms.Tensor(shape=[1, config.kernel_sizes[0] * config.input_size, None, None], dtype=ms.float32),
        ms.Tensor(shape=[2 * len(config.dilations[1:4]), None], dtype=ms.int32),
    )


def reflect_index(frames: int, offset: int) -> np.ndarray:
    """Frame indices of ``x(t + offset)`` for ``t = 0 .. frames-1``, ``(frames,)`` int32.

    Positions beyond either end are reflected about the first or last frame (``reflect``
    padding, no edge repeat), like SpeechBrain's ``Conv1d(padding_mode="reflect")``.
    """
    n = frames
    j = np.arange(frames) + offset
    j = np.where(j < 0, -j, j)
    j = np.where(j > n - 1, 2 * (n - 1) - j, j)
    return j.astype(np.int32)


def frame_inputs(features: np.ndarray, config: ModelConfig = ModelConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The network inputs for one utterance's normalised features ``(T, F)``.

    Returns ``feats (1, k0*F, 1, T)`` and ``index (6, T)``. ``T`` must be larger than the
    largest dilation (reflect padding needs that many frames).
    """
    frames = features.shape[0]
    if frames <= max(config.dilations):
        raise ValueError(f"{frames} frames are too few for the network (more than {max(config.dilations)} needed)")
    k0 = config.kernel_sizes[0]
    half = (k0 - 1) // 2 * config.dilations[0]
    taps = [features[reflect_index(frames, o * config.dilations[0])] for o in range(-half, half + 1)]
    feats = np.ascontiguousarray(np.concatenate(taps, axis=1).T, dtype=np.float32)[None, :, None, :]
    index = np.stack([reflect_index(frames, sign * d) for d in config.dilations[1:4] for sign in (-1, 1)])
    return feats, index


def batch_frame_inputs(utterances: list[np.ndarray], config: ModelConfig = ModelConfig()) -> tuple[np.ndarray, np.ndarray]:
    """The batched network's inputs for utterances of one length ``[(T, F)] * B``.

    Returns ``feats (1, k0*F, B, T)`` (each row :func:`frame_inputs` of one utterance) and the shared ``index (6, T)``.
    """
    if not utterances or len({u.shape for u in utterances}) != 1:
        raise ValueError("a batch holds one or more utterances of one shape")
    rows = [frame_inputs(u, config) for u in utterances]
    return np.ascontiguousarray(np.concatenate([feats for feats, _ in rows], axis=2)), rows[0][1]
