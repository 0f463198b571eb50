"""Reference runner: SpeechBrain's PyTorch ECAPA-TDNN (spkrec-ecapa-voxceleb).

DEV-ONLY. This module is NOT a runtime dependency of the service: torch and
speechbrain are never installed in the project venv. They live in a separate
developer venv (see ``requirements-reference.txt`` and ``tests/reference/``),
and are imported lazily inside the functions below, so importing this module
without torch works (only using it needs torch).

It is used to
  * write the parity fixtures in ``tests/fixtures/reference_*.npz``
    (``tests/reference/make_reference.py``), and
  * time the PyTorch reference in the benchmark (``set_threads`` + ``embed``).

The computation is exactly SpeechBrain's ``EncoderClassifier.encode_batch``
(speechbrain/inference/classifiers.py):

    feats = compute_features(wavs)            # Fbank(n_mels=80)
    feats = mean_var_norm(feats, wav_lens)    # InputNormalization(sentence, std_norm=False)
    emb   = embedding_model(feats, wav_lens)  # ECAPA_TDNN(...)

with the modules built from the model's hyperparams.yaml and the weights of
``embedding_model.ckpt`` (a plain state dict) loaded directly, so nothing is
fetched from any hub. Embeddings are returned L2-normalised (cosine scoring).
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from typing import Sequence

import numpy as np

from inference.prepare import sha256_file

SAMPLE_RATE = 16000
N_MELS = 80
EMBEDDING_DIM = 192

# Shape of the pretrained spkrec-ecapa-voxceleb model (hyperparams.yaml).
ECAPA_KWARGS = dict(
    input_size=N_MELS,
    channels=[1024, 1024, 1024, 1024, 3072],
    kernel_sizes=[5, 3, 3, 3, 1],
    dilations=[1, 2, 3, 4, 1],
    attention_channels=128,
    lin_neurons=EMBEDDING_DIM,
)

# Marker set on the stub module so it can be recognised.
_STUB_MARKER = "__speaker_reference_stub__"


def install_torchaudio_stub() -> bool:
    """Make ``import torchaudio`` succeed, with an empty module if it is missing.

    speechbrain 1.1.2 imports torchaudio at module level (speechbrain.nnet.CNN,
    speechbrain.utils.torch_audio_backend) but the parts used here (Fbank,
    InputNormalization, ECAPA_TDNN) never call it. torchaudio has no build for
    the pinned torch, so an empty module is injected into ``sys.modules``.
    Its ``__version__`` is set to a parseable >= 2.9 string only so that
    speechbrain's backend check does not log a warning on every import.

    Returns True if the stub was installed, False if a torchaudio was importable.
    """
    if "torchaudio" in sys.modules:
        return bool(getattr(sys.modules["torchaudio"], _STUB_MARKER, False))
    try:
        importlib.import_module("torchaudio")
        return False
    except ImportError:
        pass
    stub = types.ModuleType("torchaudio")
    stub.__doc__ = "Empty stand-in for torchaudio (speechbrain reference runner)."
    stub.__version__ = "2.9.0+stub"
    setattr(stub, _STUB_MARKER, True)
    sys.modules["torchaudio"] = stub
    return True


def set_threads(n: int) -> None:
    """Set torch's intra-op thread count (and inter-op, where still allowed)."""
    import torch

    torch.set_num_threads(int(n))
    try:
        torch.set_num_interop_threads(int(n))
    except RuntimeError:
        # Only settable once, before any parallel work has started.
        pass


def versions(model_dir: Path | None = None) -> dict[str, str]:
    """torch / speechbrain versions (and the checkpoint hash if model_dir is given)."""
    install_torchaudio_stub()
    import speechbrain
    import torch

    out = {"torch": torch.__version__, "speechbrain": speechbrain.__version__}
    if model_dir is not None:
        out["embedding_model.ckpt.sha256"] = sha256_file(Path(model_dir) / "embedding_model.ckpt")
    return out


def _as_wave(wave: np.ndarray) -> np.ndarray:
    w = np.asarray(wave, dtype=np.float32)
    if w.ndim != 1:
        raise ValueError(f"expected a 1-D mono waveform, got shape {w.shape}")
    if w.size == 0:
        raise ValueError("empty waveform")
    return w


class SpeechBrainReference:
    """SpeechBrain's feature pipeline + ECAPA-TDNN with the pretrained weights, on CPU."""

    def __init__(self, model_dir: Path):
        install_torchaudio_stub()
        import torch
        from speechbrain.lobes.features import Fbank
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
        from speechbrain.processing.features import InputNormalization

        self._torch = torch
        self.model_dir = Path(model_dir)
        self.compute_features = Fbank(n_mels=N_MELS)
        self.mean_var_norm = InputNormalization(norm_type="sentence", std_norm=False)
        self.embedding_model = ECAPA_TDNN(**ECAPA_KWARGS)
        state = torch.load(
            self.model_dir / "embedding_model.ckpt", map_location="cpu", weights_only=True
        )
        # Every key of the checkpoint matches the module (231 tensors); be strict.
        self.embedding_model.load_state_dict(state, strict=True)
        for m in (self.compute_features, self.mean_var_norm, self.embedding_model):
            m.eval()

    # -- features -------------------------------------------------------------

    def features(self, wave: np.ndarray) -> np.ndarray:
        """Raw log-mel Fbank of one waveform, (T, 80) float32, T = 1 + len // 160."""
        torch = self._torch
        with torch.no_grad():
            x = torch.from_numpy(_as_wave(wave)).unsqueeze(0)
            feats = self.compute_features(x)
        return feats[0].numpy().astype(np.float32)

    def normalised_features(self, wave: np.ndarray) -> np.ndarray:
        """Fbank after sentence mean normalisation (no variance norm), (T, 80) float32."""
        torch = self._torch
        with torch.no_grad():
            x = torch.from_numpy(_as_wave(wave)).unsqueeze(0)
            feats = self.compute_features(x)
            feats = self.mean_var_norm(feats, torch.ones(1))
        return feats[0].numpy().astype(np.float32)

    # -- embeddings -----------------------------------------------------------

    @staticmethod
    def pad_batch(waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Zero-pad waveforms at the end to the longest; relative lengths len/max_len.

        Same as speechbrain.dataio.batch.PaddedBatch / padding.batch_pad_right:
        the longest has relative length 1.0.
        """
        ws = [_as_wave(w) for w in waves]
        max_len = max(w.size for w in ws)
        batch = np.zeros((len(ws), max_len), dtype=np.float32)
        for i, w in enumerate(ws):
            batch[i, : w.size] = w
        lens = np.array([w.size / max_len for w in ws], dtype=np.float32)
        return batch, lens

    def embed(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Embed waveforms as ONE batch: (N, 192) float32, L2-normalised rows.

        With one waveform, the relative lengths are ones (as encode_batch with
        wav_lens=None). With several, they are zero-padded to the longest and
        relative lengths are passed, exactly like encode_batch(wavs, wav_lens).
        Note that SpeechBrain's batch path is not bit-identical to embedding each
        waveform alone (padding frames leak into the reflect-padded convolutions
        and the per-sequence top_db clamp): call embed([w]) per utterance for
        the "alone" result.
        """
        if len(waves) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        torch = self._torch
        if len(waves) == 1:
            batch = _as_wave(waves[0])[None, :]
            lens = np.ones(1, dtype=np.float32)
        else:
            batch, lens = self.pad_batch(waves)
        with torch.no_grad():
            wavs = torch.from_numpy(batch).float()
            wav_lens = torch.from_numpy(lens).float()
            feats = self.compute_features(wavs)
            feats = self.mean_var_norm(feats, wav_lens)
            emb = self.embedding_model(feats, wav_lens)  # (N, 1, 192)
        emb = emb.squeeze(1).numpy().astype(np.float64)
        emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb.astype(np.float32)

    def embed_one(self, wave: np.ndarray) -> np.ndarray:
        """(192,) float32 L2-normalised embedding of one full waveform."""
        return self.embed([wave])[0]


def read_wav(path: Path) -> np.ndarray:
    """Read a 16 kHz mono WAV as float32 in [-1, 1] (soundfile)."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if data.ndim != 1:
        raise ValueError(f"{path}: expected mono, got shape {data.shape}")
    if sr != SAMPLE_RATE:
        raise ValueError(f"{path}: expected {SAMPLE_RATE} Hz, got {sr}")
    return data
