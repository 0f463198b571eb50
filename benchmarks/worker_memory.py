"""A served worker's memory and compile stalls after recordings of every length from 1 to 60 s.

``python -m benchmarks.worker_memory [--lengths 1 2 ... 60] [--trim-above BYTES] [--models ecapa,campplus]
[--diarize SECONDS]``

Starts gunicorn with one worker (the repository's configuration otherwise) on a fresh database
with two enrolled speakers, waits until it is ready, then sends a verify of real speech of each
length twice. For every length it records the first and the second answer's time, and the
worker's CPU time for each (from /proc: what the worker itself spent, which other processes on
a shared machine do not inflate). A compilation, or anything else only the first request of a
length pays, shows as first minus second (on a shared machine both figures are noisy: the
worker's log counts the graph compilations exactly). At the end it prints the worker's
resident memory and its peak. Targets (issue 10): RSS <= 1.0 GB, no stall over 0.5 s. With
``--diarize``, a conversation of that many seconds (the fixture speakers' recordings end to end) then
goes to ``/api/v1/diarize`` twice (the first call loads the batched windows graph), and the memory is
printed again.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from benchmarks.common import children, machine_note, rss_mb, speech_of, wav_bytes
from benchmarks.service import Deployment

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker_memory", description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=list(range(1, 61)), help="seconds of speech")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--trim-above", type=int, default=None,
                        help="VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES for the worker (0: never trim; default: the setting's)")
    parser.add_argument("--models", default="ecapa", help="VOICEPRINT_MODELS of the deployment (ecapa,campplus: fused)")
    parser.add_argument("--diarize", type=float, default=0.0,
                        help="then diarize a conversation of this many seconds twice (0: no diarization)")
    parser.add_argument("--diarize-windows", choices=("campplus", "ecapa"), default="campplus",
                        help="VOICEPRINT_DIARIZE_WINDOWS of the deployment (the network of diarization's windows)")
    args = parser.parse_args(argv)

    deployment = Deployment.create(VOICEPRINT_MODELS=args.models, VOICEPRINT_DIARIZE_WINDOWS=args.diarize_windows)
    trim = {} if args.trim_above is None else {"VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES": str(args.trim_above)}
    server = deployment.start(workers=1, GUNICORN_ACCESSLOG="", **trim)
    try:
        ready_s = server.wait_ready()
        deployment.enroll(server)
        worker = children(server.process.pid)[0]
        print(f"{machine_note()}; models {args.models}; diarization's windows {args.diarize_windows}; one gunicorn worker, ready {ready_s:.1f} s after start; RSS then {rss_mb(worker):.0f} MB")
        print(f"{'seconds':>8}{'1st ms':>9}{'2nd ms':>9}{'stall ms':>10}{'1st CPU':>9}{'2nd CPU':>9}{'CPU stall':>11}{'RSS MB':>8}")
        calls = []
        for seconds in args.lengths:
            files = [("audio", "probe.wav", wav_bytes(speech_of(seconds)))]
            row = {"seconds": seconds}
            for label in ("first", "second"):
                cpu, started = cpu_seconds(worker), time.perf_counter()
                status, body = server.upload("/api/v1/verify", {"speaker_id": deployment.speakers["alice"]}, files)
                row[f"{label}_ms"] = (time.perf_counter() - started) * 1e3
                row[f"{label}_cpu_ms"] = (cpu_seconds(worker) - cpu) * 1e3
                if status != 200:
                    raise SystemExit(f"{seconds} s: {status} {body}")
            row["rss_mb"] = rss_mb(worker)
            calls.append(row)
            print(f"{seconds:>8}{row['first_ms']:>9.0f}{row['second_ms']:>9.0f}{row['first_ms'] - row['second_ms']:>10.0f}"
                  f"{row['first_cpu_ms']:>9.0f}{row['second_cpu_ms']:>9.0f}{row['first_cpu_ms'] - row['second_cpu_ms']:>11.0f}"
                  f"{row['rss_mb']:>8.0f}")
        final, peak = rss_mb(worker), rss_mb(worker, "VmHWM")
        if args.diarize:
            files = [("audio", "conversation.wav", wav_bytes(speech_of(args.diarize)))]
            for label in ("first", "second"):
                started = time.perf_counter()
                status, body = server.upload("/api/v1/diarize", {}, files)
                if status != 200:
                    raise SystemExit(f"diarize: {status} {body}")
                print(f"diarize {args.diarize:.0f} s ({label}): {(time.perf_counter() - started) * 1e3:.0f} ms, "
                      f"{len(body['segments'])} segments; worker RSS {rss_mb(worker):.0f} MB (peak {rss_mb(worker, 'VmHWM'):.0f} MB)")
            calls.append({"diarize_s": args.diarize, "rss_mb": rss_mb(worker)})
        verified = [row for row in calls if "seconds" in row]
        worst = max(verified, key=lambda r: r["first_ms"] - r["second_ms"])
        worst_cpu = max(verified, key=lambda r: r["first_cpu_ms"] - r["second_cpu_ms"])
        print(f"worker RSS after every length: {final:.0f} MB (peak {peak:.0f} MB; target <= 1024 MB)")
        if args.diarize:
            final, peak = rss_mb(worker), rss_mb(worker, "VmHWM")
            print(f"worker RSS after diarizing too: {final:.0f} MB (peak {peak:.0f} MB; target <= 1024 MB)")
        print(f"largest first-call stall: {worst['first_ms'] - worst['second_ms']:.0f} ms wall at {worst['seconds']} s, "
              f"{worst_cpu['first_cpu_ms'] - worst_cpu['second_cpu_ms']:.0f} ms of the worker's CPU at "
              f"{worst_cpu['seconds']} s (target <= 500 ms)")
        log = server.log_path.read_text(errors="replace")
        compilations = log.count("compiled the network") + log.count("compiled CAM++")
        print(f"graph compilations in the worker's log: {compilations} (one per network at load; a compilation per "
              "length would add more)")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump({"calls": calls, "rss_mb": final, "peak_rss_mb": peak, "compilations": compilations}, fh, indent=2)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
