"""Whole utterance or windows: which is closer to SpeechBrain on long recordings?

``python -m benchmarks.window_parity [--reference-python PY] [--windows 801 1501 2001 3001 6001] [--lengths 10 20 40 60]``

Long recordings are real read speech: the LibriSpeech clips of one speaker of
``shared/speech/multi`` (``--speech-dir``) joined end to end and cut to each length. The
reference is SpeechBrain's embedding of the whole recording (its ``encode_batch``, no VAD, no
windows; run by ``--reference-python``, an interpreter with torch and speechbrain). The engine
embeds the same bytes through its whole path with each window length (the longest stretch of
speech per forward pass; longer speech is cut into equal windows whose embeddings are averaged).
Prints the cosine to the reference per length and window, and the mean over speakers.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.common import RATE, REPO, reference_interpreter, wav_bytes

REFERENCE_CODE = """
import json, sys
import numpy as np, soundfile as sf
from benchmarks.reference_speechbrain import SpeechBrainReference, install_torchaudio_stub
install_torchaudio_stub()
ref = SpeechBrainReference(sys.argv[1])
out = {}
for path in json.loads(sys.argv[2]):
    out[path] = ref.embed_one(sf.read(path, dtype="float32")[0]).tolist()
print(json.dumps(out))
"""


def recordings(speech_dir: Path, lengths: list[int], workdir: Path) -> dict[str, Path]:
    out = {}
    for speaker in sorted(p for p in speech_dir.glob("ls-*") if p.is_dir()):
        joined = np.concatenate([sf.read(f, dtype="float32")[0] for f in sorted(speaker.glob("*.wav"))])
        for seconds in lengths:
            if joined.size >= seconds * RATE:
                path = workdir / f"{speaker.name}-{seconds}s.wav"
                path.write_bytes(wav_bytes(joined[: seconds * RATE]))
                out[f"{speaker.name} {seconds}s"] = path
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.window_parity", description=__doc__.split("\n")[0])
    parser.add_argument("--reference-python")
    parser.add_argument("--speech-dir", type=Path,
                        default=Path(os.environ.get("VOICEPRINT_SHARED_DIR", REPO.parent / "shared")) / "speech" / "multi")
    parser.add_argument("--windows", type=int, nargs="+", default=[801, 1501, 2001, 3001, 6001])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 20, 40, 60])
    parser.add_argument("--model-dir", type=Path, default=REPO / "var" / "model")
    args = parser.parse_args(argv)
    interpreter = reference_interpreter(args.reference_python)
    if not interpreter:
        raise SystemExit("needs --reference-python (or REFERENCE_PYTHON): an interpreter with torch and speechbrain")

    from benchmarks.engine_speed import _reference_source
    from inference import EngineConfig
    from inference.embedder import Embedder

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        files = recordings(args.speech_dir, args.lengths, workdir)
        source = _reference_source(args.model_dir, workdir)
        done = subprocess.run([interpreter, "-c", REFERENCE_CODE, str(source), json.dumps([str(p) for p in files.values()])],
                              cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(done.stderr[-3000:])
        reference = {k: np.array(v, dtype=np.float32) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
        base = Embedder.load(EngineConfig(model_dir=args.model_dir, window_frames=max(args.windows)))
        print("cosine to SpeechBrain's whole-recording embedding (engine: whole path, VAD included)")
        print(f"{'recording':<14}" + "".join(f"{f'window {w / 100:.0f} s':>14}" for w in args.windows))
        table: dict[int, list[float]] = {w: [] for w in args.windows}
        for name, path in files.items():
            data = path.read_bytes()
            row = f"{name:<14}"
            for window in args.windows:
                engine = Embedder(EngineConfig(model_dir=args.model_dir, window_frames=window), base._network, base.manifest)
                score = float(engine.embed(data).vector @ reference[str(path)])
                table[window].append(score)
                row += f"{score:>14.4f}"
            print(row)
        print(f"{'mean':<14}" + "".join(f"{np.mean(table[w]):>14.4f}" for w in args.windows))
        print(f"{'min':<14}" + "".join(f"{np.min(table[w]):>14.4f}" for w in args.windows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
