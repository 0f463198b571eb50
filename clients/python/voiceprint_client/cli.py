"""``voiceprint``: enroll, verify, identify, compare and list speakers from a shell.

The server is ``VOICEPRINT_URL`` (default http://127.0.0.1:8000, or ``--url``) and the key
``VOICEPRINT_API_KEY`` (``python manage.py create_api_key NAME --scopes enroll verify identify manage``).
Output is for people; ``--json`` prints the server's JSON instead (one object per line per file).
Progress of several files goes to stderr.

Exit status: 0 accepted / match / done; 1 rejected / no match / some files refused; 2 usage or error
(unreachable server, refused key, unusable recording...).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from . import __version__, models
from .client import DEFAULT_URL, VoiceprintClient
from .errors import AuthenticationFailed, VoiceprintConnectionError, VoiceprintError

OK, NO, ERROR = 0, 1, 2
EPILOG = """exit status: 0 accepted, a match, or done; 1 rejected, no match, or some files refused;
2 usage or error (server unreachable, key refused, recording unusable).
environment: VOICEPRINT_URL (default http://127.0.0.1:8000), VOICEPRINT_API_KEY, VOICEPRINT_MODEL_DIR (--local)."""


class Output:
    """Where results go: stdout for results (people or --json), stderr for progress and errors."""

    def __init__(self, *, as_json: bool, quiet: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet

    def line(self, text: str = "") -> None:
        sys.stdout.write(text + "\n")

    def json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, default=str) + "\n")

    def progress(self, index: int, total: int, name: str) -> None:
        if total > 1 and not self.quiet:
            sys.stderr.write(f"[{index}/{total}] {name}\n")
            sys.stderr.flush()

    def error(self, exc: VoiceprintError, *, file: str | None = None) -> None:
        where = f"{file}: " if file else ""
        sys.stderr.write(f"error: {where}{exc.code}: {exc.message}{_hint(exc)}\n")
        if self.as_json:
            self.json({**({"file": file} if file else {}), "error": exc.to_json()})


def _hint(exc: VoiceprintError) -> str:
    if isinstance(exc, VoiceprintConnectionError):
        return " (is the server running? `make serve` starts one; VOICEPRINT_URL names it)"
    if isinstance(exc, AuthenticationFailed):
        return (" (set VOICEPRINT_API_KEY; `python manage.py create_api_key NAME --scopes enroll verify identify "
                "manage` makes one)")
    figures = {k: v for k, v in exc.detail.items() if k not in {"filename", "field"} and not isinstance(v, (dict, list))}
    return f" [{', '.join(f'{k}={v}' for k, v in figures.items())}]" if figures else ""


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# --- commands ---------------------------------------------------------------------------------------------

def cmd_speakers(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    speakers = list(client.iter_speakers(external_id=args.external_id))
    if out.as_json:
        for speaker in speakers:
            out.json(speaker.raw)
        return OK
    if not speakers:
        out.line("no speakers yet (enroll one: voiceprint enroll NAME a.wav b.wav c.wav)")
        return OK
    rows = [("ID", "EXTERNAL ID", "NAME", "VOICEPRINT", "SPEECH")]
    rows += [(s.id, s.external_id or "-", s.display_name or "-", s.voiceprint_status,
              s.enrollment_progress.text if s.enrollment_progress else "-") for s in speakers]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.line("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    out.line(f"{len(speakers)} speaker(s)")
    return OK


def cmd_enroll(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    speaker = client.find_speaker(args.name)
    if speaker is None:
        speaker = client.create_speaker(external_id=args.name, display_name=args.display_name or args.name)
        if not out.as_json:
            out.line(f"created speaker {args.name} ({speaker.id})")
    batches = [args.files[i:i + args.per_request] for i in range(0, len(args.files), args.per_request)]
    accepted, refused, result, done = 0, 0, None, 0
    for batch in batches:
        if len(batches) > 1 and not out.quiet:
            sys.stderr.write(f"[{done + 1}-{done + len(batch)}/{len(args.files)}] enrolling {len(batch)} file(s)\n")
        try:
            result = client.enroll(speaker.id, *batch)
        except VoiceprintError as exc:  # every file of this request refused: the next request may still enroll
            out.error(exc, file=", ".join(os.path.basename(f) for f in batch))
            refused += len(batch)
            done += len(batch)
            continue
        done += len(batch)
        accepted += len(result.accepted)
        refused += len(result.refused)
        if out.as_json:
            out.json(result.raw)
        for refusal in result.refused:
            sys.stderr.write(f"refused: {refusal.filename}: {refusal.error.code}: {refusal.error.message}\n")
    if result is None:
        return ERROR
    progress = result.enrollment_progress
    if not out.as_json:
        state = "complete: it can be verified and identified" if progress.complete else "incomplete: enroll more"
        out.line(f"{args.name}: enrolled {accepted} of {len(args.files)} recording(s); voiceprint {progress.text} "
                 f"of speech ({state})")
    return OK if refused == 0 and progress.complete else NO


def _each_file(files: Sequence[str], out: Output, run: Callable[[str], int]) -> int:
    """Run ``run`` on every file (progress on stderr); the worst outcome decides the exit status."""
    worst = OK
    for index, path in enumerate(files, 1):
        out.progress(index, len(files), path)
        try:
            worst = max(worst, run(path))
        except VoiceprintConnectionError:
            raise
        except VoiceprintError as exc:
            out.error(exc, file=path)
            worst = ERROR
    return worst


def cmd_verify(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    speaker = client.resolve_speaker(args.speaker)

    def one(path: str) -> int:
        result = client.verify(speaker.id, path, asnorm=args.asnorm)
        if out.as_json:
            out.json({"file": path, **result.raw})
        else:
            verdict = "accepted" if result.accepted else "rejected"
            relation = ">=" if result.accepted else "<"
            out.line(f"{verdict}: {path} {'is' if result.accepted else 'is not'} {speaker.name} "
                     f"(score {_fmt(result.score)} {relation} threshold {_fmt(result.threshold)}; "
                     f"cosine {result.raw_score:.3f})")
        return OK if result.accepted else NO

    return _each_file(args.files, out, one)


def cmd_identify(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    def one(path: str) -> int:
        result = client.identify(path, top_k=args.top_k, asnorm=args.asnorm)
        if out.as_json:
            out.json({"file": path, **result.raw})
        elif result.match is not None and result.matched_by == "lead":
            out.line(f"match: {path} is {result.match.name} (score {_fmt(result.match.score)} < threshold "
                     f"{_fmt(result.threshold)}, but far ahead of every other voice: lead {_fmt(result.lead)} >= "
                     f"{_fmt(result.lead_required)} sd)")
        elif result.match is not None:
            lead = "" if result.runner_up_score is None else \
                f", lead {result.match.score - result.runner_up_score:.2f} >= margin {result.margin:.2f}"
            out.line(f"match: {path} is {result.match.name} (score {_fmt(result.match.score)} >= threshold "
                     f"{_fmt(result.threshold)}{lead})")
        else:
            best = result.candidates[0] if result.candidates else None
            nearest = f"; nearest {best.name}, score {_fmt(best.score)}, threshold {_fmt(result.threshold)}" \
                if best else ""
            out.line(f"no match: {path} ({result.no_match_reason}{nearest})")
        return OK if result.match is not None else NO

    return _each_file(args.files, out, one)


def cmd_diarize(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    def one(path: str) -> int:
        result = client.diarize(path, num_speakers=args.num_speakers, max_speakers=args.max_speakers,
                                asnorm=args.asnorm)
        if out.as_json:
            out.json({"file": path, **result.raw})
            return OK
        out.line(f"{path}: {len(result.speakers)} voice(s) in {result.duration_s:.1f} s")
        for segment in result.segments:
            out.line(f"  {segment.start_s:8.2f} - {segment.end_s:8.2f}  {segment.label}")
        for voice in result.speakers:
            out.line(f"  {voice.label}: {voice.speaking_s:.1f} s in {voice.turns} turn(s)")
        return OK

    return _each_file(args.files, out, one)


def cmd_compare(client: VoiceprintClient | None, args: argparse.Namespace, out: Output) -> int:
    if args.local:
        from .local import local_compare

        if args.asnorm:
            raise VoiceprintError("--local decides on the cosine scale only (AS-norm needs a server)",
                                  code="usage_error")
        result = local_compare(args.reference, args.test, model_dir=args.model_dir)
    else:
        assert client is not None
        result = client.compare(args.reference, args.test, asnorm=args.asnorm)
    if out.as_json:
        out.json(result.raw)
    else:
        verdict = "same speaker" if result.accepted else "different speakers"
        relation = ">=" if result.accepted else "<"
        where = (f"; this machine's engine, {result.raw.get('calibration_source')}" if args.local else "")
        out.line(f"{verdict}: score {_fmt(result.score)} {relation} threshold {_fmt(result.threshold)} "
                 f"(cosine {result.similarity:.3f}; {result.model_version}{where})")
    return OK if result.accepted else NO


def cmd_health(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    health = client.health()
    if out.as_json:
        out.json(health.raw)
    else:
        out.line(f"{health.status}: model {health.model_version or '-'} "
                 f"({'loaded' if health.model_loaded else 'not loaded'}), database {health.database}, "
                 f"{health.enrolled_speakers if health.enrolled_speakers is not None else '?'} enrolled speaker(s)")
    return OK if health.status in {"ready", "ok", "degraded"} else NO


def cmd_stream(client: VoiceprintClient, args: argparse.Namespace, out: Output) -> int:
    speaker = client.resolve_speaker(args.speaker) if args.speaker else None

    def show(message: models.Model) -> None:
        if out.as_json:
            out.json(message.raw)
        elif isinstance(message, models.StreamScore):
            out.line(f"{message.audio_s:6.2f} s  score {message.score:6.2f}  threshold {message.threshold:6.2f}  "
                     f"{'accepted' if message.accepted else 'rejected'}")
        elif isinstance(message, models.StreamEvent):
            out.line(f"{message.at_s:6.2f} s  {message.event}")
        elif isinstance(message, models.StreamReference):
            out.line(f"{message.audio_s:6.2f} s  reference taken ({message.speech_s:.1f} s of speech)")

    result = client.stream_file(args.file, speaker.id if speaker else None, realtime=args.realtime, on_message=show)
    final = result.summary.final if result.summary else None
    if not out.as_json:
        if final is None:
            out.line("no decision: too little speech after the reference")
        else:
            out.line(f"final: {'accepted' if final.accepted else 'rejected'} (score {final.score:.2f}, threshold "
                     f"{final.threshold:.2f}; {result.summary.accepted_scores} of {result.summary.scores} windows "
                     "accepted)")
    return OK if final is not None and final.accepted else NO


# --- the parser -----------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None, help=f"the server (default: $VOICEPRINT_URL or {DEFAULT_URL})")
    common.add_argument("--json", action="store_true", help="print the server's JSON (one object per line)")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress on stderr")
    common.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for an answer (default 120)")
    scale = argparse.ArgumentParser(add_help=False)
    scale.add_argument("--asnorm", action=argparse.BooleanOptionalAction, default=None,
                       help="score with AS-norm (default: the server's setting)")

    parser = argparse.ArgumentParser(prog="voiceprint", description=__doc__.split("\n")[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, run, help_text: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        command = sub.add_parser(name, parents=[common, *parents], help=help_text, description=help_text,
                                 epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
        command.set_defaults(run=run)
        return command

    command = add("speakers", cmd_speakers, "list the speakers (every page)")
    command.add_argument("--external-id", help="only the speaker with this external id")

    command = add("enroll", cmd_enroll, "create the speaker NAME (an external id) if missing, then enroll recordings")
    command.add_argument("name", metavar="NAME")
    command.add_argument("files", nargs="+", metavar="FILE")
    command.add_argument("--display-name", help="when the speaker is created (default: NAME)")
    command.add_argument("--per-request", type=int, default=10,
                         help="files per request (the server takes at most VOICEPRINT_MAX_FILES, 10 by default)")

    command = add("verify", cmd_verify, "is each recording the voice of SPEAKER (an id or an external id)?", scale)
    command.add_argument("speaker", metavar="SPEAKER")
    command.add_argument("files", nargs="+", metavar="FILE")

    command = add("identify", cmd_identify, "who is speaking in each recording (or nobody enrolled)?", scale)
    command.add_argument("files", nargs="+", metavar="FILE")
    command.add_argument("--top-k", type=int, default=None, help="candidates to show (default: the server's, 5)")

    command = add("diarize", cmd_diarize, "who spoke when in each conversation (enrolled voices by name)", scale)
    command.add_argument("files", nargs="+", metavar="FILE")
    command.add_argument("--num-speakers", type=int, default=None, help="the number of voices, if known")
    command.add_argument("--max-speakers", type=int, default=None, help="at most this many voices")

    command = add("compare", cmd_compare, "are two recordings of the same person? (nothing is stored)", scale)
    command.add_argument("reference", metavar="A")
    command.add_argument("test", metavar="B")
    command.add_argument("--local", action="store_true",
                         help="no server: run the engine here (from the project's checkout and venv), with the shipped "
                              "calibration")
    command.add_argument("--model-dir", default=None, help="with --local: the prepared model (default: "
                                                           "$VOICEPRINT_MODEL_DIR or var/model)")

    add("health", cmd_health, "is the server up, and is its model loaded?")

    command = add("stream", cmd_stream, "stream a 16-bit WAV file through the live protocol and show the rolling "
                                        "scores (against SPEAKER, or the file's first 3 s of speech)")
    command.add_argument("file", metavar="FILE")
    command.add_argument("--speaker", help="an id or an external id (default: the first speech is the reference)")
    command.add_argument("--realtime", action="store_true", help="send at the pace of speech")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Output(as_json=args.json, quiet=args.quiet)
    local = getattr(args, "local", False)
    try:
        if local:
            return args.run(None, args, out)
        with VoiceprintClient(args.url, timeout=args.timeout) as client:
            return args.run(client, args, out)
    except VoiceprintError as exc:
        out.error(exc)
        return ERROR
    except OSError as exc:  # a file that cannot be read
        sys.stderr.write(f"error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
