"""Streaming verification: latency from the end of speech to the score, and what one worker holds.

Starts ``manage.py runserver --noreload`` (uvicorn, one process: one worker) on a free port against
a scratch SQLite database, warms it up, then over real WebSocket connections:

1. **latency**: N concurrent sessions (1, 4, 8) stream recordings in real time (20 ms messages),
   first-audio reference; the time from the last audio message (followed at once by
   ``{"type": "end"}``) to the final score, and the server's per-score ``latency_ms``;
2. **capacity**: sessions stream as fast as the server reads (limits on speed and message rate
   lifted) 20 ms messages: audio seconds, messages (frames) and scores per wall-clock second, and
   the server process's CPU time per audio second;
3. **framing**: the same with silence (no speech, so nothing for the network): messages per second
   and the server's CPU time per message, i.e. what the event loop spends on a frame.

Prints medians over the rounds. Wall-clock rates depend on what else runs on the machine; the CPU
time per audio second / per message (from /proc) does much less, so it is printed beside them.

    python -m benchmarks.streaming [--rounds 3] [--sessions 1 4 8] [--audio-dir tests/fixtures/speech]
    python -m benchmarks.streaming --server daphne --only framing   # the same app under daphne (pip install daphne)
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import soundfile as sf
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parents[1]
FRAME_BYTES = 640  # 20 ms of 16 kHz s16le


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pcm(paths: list[Path]) -> bytes:
    parts = []
    for path in paths:
        samples, rate = sf.read(path, dtype="int16")
        assert rate == 16000 and samples.ndim == 1, path
        parts.append(samples.astype("<i2").tobytes())
    return b"".join(parts)


class Service:
    """A runserver process on a scratch database with one API key."""

    def __init__(self, work: Path, server: str = "uvicorn") -> None:
        self.port = _free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{work / 'bench.sqlite3'}", PYTHONUNBUFFERED="1",
                   VOICEPRINT_STREAM_MAX_SPEED="100000", VOICEPRINT_STREAM_MAX_MESSAGES_PER_S="1000000",
                   VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY="64", VOICEPRINT_STREAM_MAX_SESSIONS="64",
                   VOICEPRINT_STREAM_IDLE_TIMEOUT_S="60", VOICEPRINT_RATE_PER_KEY="100000/min")
        self.env = env
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([sys.executable, "manage.py", "create_api_key", "bench", "--scopes", "verify"], cwd=REPO,
                             env=env, check=True, capture_output=True, text=True).stdout
        self.key = next(word for word in out.split() if word.startswith("vp_"))
        self.log = (work / "server.log").open("wb")
        command = ["manage.py", "runserver", "--noreload", f"127.0.0.1:{self.port}"] if server == "uvicorn" else \
            ["-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "voiceprint_project.asgi:application"]
        self.process = subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def wait_warm(self, sample: Path) -> None:
        """Healthy, then one compare: it waits behind the warm-up's compilations on the inference thread."""
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/v1/health", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.5)
        data = sample.read_bytes()
        boundary = "benchboundary"
        body = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="x.wav"\r\n\r\n'.encode()
            + data + b"\r\n" for name in ("reference", "test")) + f"--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/api/v1/compare", data=body, method="POST",
                                         headers={"X-API-Key": self.key,
                                                  "Content-Type": f"multipart/form-data; boundary={boundary}"})
        urllib.request.urlopen(request, timeout=600).read()

    def cpu_s(self) -> float:
        """CPU time (user + system, all threads) the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _session(url: str, key: str, audio: bytes, *, realtime: bool) -> dict:
    """Stream ``audio`` in 20 ms messages; returns timings and counts."""
    scores: list[dict] = []
    async with connect(f"{url}/ws/v1/stream-verify", additional_headers={"X-API-Key": key}, max_size=2 ** 22) as ws:
        await ws.send(json.dumps({"type": "start", "reference_speech_s": 2.0}))
        json.loads(await ws.recv())  # ready
        done = asyncio.get_running_loop().create_future()
        speech_end: dict[str, float] = {}

        async def read() -> None:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "score":
                    message["received_at"] = time.perf_counter()
                    scores.append(message)
                elif message["type"] == "summary":
                    done.set_result(message)

        reader = asyncio.create_task(read())
        started = time.perf_counter()
        for i, offset in enumerate(range(0, len(audio), FRAME_BYTES)):
            if realtime:
                delay = started + i * 0.02 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await ws.send(audio[offset:offset + FRAME_BYTES])
        speech_end["t"] = time.perf_counter()
        await ws.send(json.dumps({"type": "end"}))
        summary = await asyncio.wait_for(done, 300)
        finished = time.perf_counter()
        reader.cancel()
    return {"end_to_final_ms": (scores[-1]["received_at"] - speech_end["t"]) * 1000 if scores else None,
            "server_latency_ms": [s["latency_ms"] for s in scores], "scores": len(scores),
            "audio_s": summary["audio_s"], "messages": -(-len(audio) // FRAME_BYTES), "wall_s": finished - started}


async def _concurrent(url: str, key: str, audios: list[bytes], *, realtime: bool) -> tuple[list[dict], float]:
    started = time.perf_counter()
    results = await asyncio.gather(*(_session(url, key, a, realtime=realtime) for a in audios))
    return list(results), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--audio-dir", type=Path, default=REPO / "tests" / "fixtures" / "speech")
    parser.add_argument("--server", choices=["uvicorn", "daphne"], default="uvicorn",
                        help="uvicorn: manage.py runserver (what make serve runs); daphne: for comparison")
    parser.add_argument("--only", choices=["latency", "capacity", "framing"], nargs="+",
                        default=["latency", "capacity", "framing"])
    args = parser.parse_args()
    clips = sorted(args.audio_dir.glob("*.wav"))
    # one session's audio: three recordings of one speaker (about 8 s, 6-7 s of speech)
    by_speaker: dict[str, list[Path]] = {}
    for clip in clips:
        by_speaker.setdefault(clip.name.split("_")[0], []).append(clip)
    audios = [_pcm(paths[i:i + 3]) for paths in by_speaker.values() for i in (0, 3) if len(paths[i:i + 3]) == 3]

    with tempfile.TemporaryDirectory() as work:
        service = Service(Path(work), args.server)
        try:
            service.wait_warm(clips[0])
            print(f"server: {args.server} (1 process) on {os.cpu_count()} cores, load average "
                  f"{os.getloadavg()[0]:.1f} at the start; "
                  f"{len(audios)} streams of {statistics.mean(len(a) for a in audios) / 32000:.1f} s; "
                  f"{args.rounds} rounds; medians")
            print("\nlatency, sessions streaming in real time (20 ms messages):")
            print("sessions | end of speech -> final score (ms) | per-score latency_ms | scores/session")
            for count in args.sessions if "latency" in args.only else []:
                ends, per_score, counts = [], [], []
                for _ in range(args.rounds):
                    results, _ = asyncio.run(_concurrent(service.url, service.key,
                                                         [audios[i % len(audios)] for i in range(count)], realtime=True))
                    ends += [r["end_to_final_ms"] for r in results if r["end_to_final_ms"] is not None]
                    per_score += [ms for r in results for ms in r["server_latency_ms"]]
                    counts += [r["scores"] for r in results]
                print(f"{count:8d} | {statistics.median(ends):33.0f} | {statistics.median(per_score):20.0f} | "
                      f"{statistics.median(counts):.0f}")
            print("\ncapacity, sessions streaming speech as fast as the server reads (limits lifted):")
            print("sessions | audio s per s | messages (20 ms frames) per s | scores per s | server CPU ms per audio s")
            for count in args.sessions if "capacity" in args.only else []:
                rates = []
                for _ in range(args.rounds):
                    cpu = service.cpu_s()
                    results, wall = asyncio.run(_concurrent(service.url, service.key,
                                                            [audios[i % len(audios)] for i in range(count)],
                                                            realtime=False))
                    audio_s = sum(r["audio_s"] for r in results)
                    rates.append((audio_s / wall, sum(r["messages"] for r in results) / wall,
                                  sum(r["scores"] for r in results) / wall, (service.cpu_s() - cpu) * 1000 / audio_s))
                audio, frames, scores, cpu_ms = (statistics.median(x) for x in zip(*rates))
                print(f"{count:8d} | {audio:13.1f} | {frames:29.0f} | {scores:12.1f} | {cpu_ms:25.0f}")
            print("\nframing, sessions streaming silence as fast as the server reads (no windows to score):")
            print("sessions | messages per s | audio s per s | server CPU us per message")
            silence = bytes(len(audios[0]))
            for count in args.sessions if "framing" in args.only else []:
                rates = []
                for _ in range(args.rounds):
                    cpu = service.cpu_s()
                    results, wall = asyncio.run(_concurrent(service.url, service.key, [silence] * count,
                                                            realtime=False))
                    messages = sum(r["messages"] for r in results)
                    rates.append((messages / wall, sum(r["audio_s"] for r in results) / wall,
                                  (service.cpu_s() - cpu) * 1e6 / messages))
                frames, audio, cpu_us = (statistics.median(x) for x in zip(*rates))
                print(f"{count:8d} | {frames:14.0f} | {audio:13.1f} | {cpu_us:25.0f}")
        finally:
            service.stop()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
