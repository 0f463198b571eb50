"""Fair share by cost: one key's short request beside another key's long batches (issue 18 item 3).

``python -m benchmarks.fair_share [--probe verify|compare] [--repeats 15] [--pause 1.0] [--batches 2] [--files 9]
[--seconds 59] [--workers N] [--engine-threads N] [--server gunicorn|runserver]``

The server (gunicorn with the repository's layout for this host unless ``--workers`` /
``--engine-threads`` say otherwise, 4 request threads per worker; or ``--server runserver``), a fresh
database with Alice enrolled, and two keys. The figure is the median time of one key's short
request: a verify of Alice with 3 s of her speech (one forward pass of 3 s; the recent-probe replay
check is off so the same probe can be sent again), or a compare of two 3 s recordings (two forward
passes): first alone, then while another key keeps ``--batches``
batch-verify requests of ``--files`` recordings of ``--seconds`` s each running (each sent again as
soon as it is answered), and the ratio of the two. The audio budget is off for this run
(VOICEPRINT_AUDIO_SECONDS_PER_MINUTE=0): this measures the queue in front of the inference
thread, not the refusal; the batch key's throughput in recordings/s is printed beside it.

The short requests are sent one after the other with a random pause of up to ``--pause`` seconds
between them (the same in both cases), so they arrive at any point of the other key's forward
passes, as an independent client's would. ``--pause 0`` sends them back to back: each then arrives
just after the other key's next window has started, the worst case (it waits for a whole window).
"""
from __future__ import annotations

import argparse
import random
import statistics
import threading
import time

import numpy as np
import soundfile as sf

from benchmarks.common import SPEECH, machine_note, speech_of, wav_bytes
from benchmarks.service import Deployment, Server, call, multipart


def short_request(server: Server, probe: str) -> tuple[str, bytes, str]:
    """(path, multipart body, content type) of the short request timed."""
    if probe == "verify":
        alice = np.concatenate([sf.read(SPEECH / f"{n}.wav", dtype="float32")[0] for n in ("a_snt5", "a_snt6")])
        body, content_type = multipart({"speaker_id": server.deployment.speakers["alice"]},
                                       [("audio", "probe.wav", wav_bytes(alice[:3 * 16_000]))])
        return "/api/v1/verify", body, content_type
    short = speech_of(6.0)
    body, content_type = multipart({}, [("reference", "ref.wav", wav_bytes(short[:3 * 16_000])),
                                        ("test", "test.wav", wav_bytes(short[3 * 16_000:]))])
    return "/api/v1/compare", body, content_type


def request_ms(server: Server, key: str, request: tuple[str, bytes, str], pause: float = 0.0) -> float:
    path, body, content_type = request
    time.sleep(random.uniform(0.0, pause))
    started = time.perf_counter()
    status, answer = call(server.port, "POST", path, key=key, body=body, content_type=content_type)
    if status != 200:
        raise SystemExit(f"{path} answered {status}: {answer}")
    return (time.perf_counter() - started) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probe", choices=("verify", "compare"), default="verify")
    parser.add_argument("--repeats", type=int, default=15, help="compares timed alone, and again under load")
    parser.add_argument("--pause", type=float, default=1.0, help="longest random pause between short requests, s")
    parser.add_argument("--batches", type=int, default=2, help="concurrent batch requests of the other key")
    parser.add_argument("--files", type=int, default=9, help="recordings per batch request (reference included)")
    parser.add_argument("--seconds", type=float, default=59.0, help="length of each batch recording")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (default: the host's layout)")
    parser.add_argument("--engine-threads", type=int, default=None, help="MindSpore threads per worker")
    parser.add_argument("--server", choices=("gunicorn", "runserver"), default="gunicorn")
    args = parser.parse_args()

    deployment = Deployment.create(VOICEPRINT_AUDIO_SECONDS_PER_MINUTE="0", VOICEPRINT_REPLAY_CHECK="true",
                                   VOICEPRINT_REPLAY_RECENT_PROBES="0")
    batch_key = deployment.manage("create_api_key", "batch", "--scopes", "verify").strip().splitlines()[-1]
    server = deployment.start(workers=args.workers, threads=4, engine_threads=args.engine_threads, server=args.server)
    try:
        server.wait_ready()
        deployment.enroll(server)
        long_speech = speech_of(args.seconds * args.files + 10)
        step = int(args.seconds * 16_000)
        batch_files = [wav_bytes(long_speech[i * step:(i + 1) * step]) for i in range(args.files)]
        batch_body, batch_type = multipart({}, [("reference", "ref.wav", batch_files[0])]
                                           + [("tests", f"t{i}.wav", data) for i, data in enumerate(batch_files[1:])])
        probe = short_request(server, args.probe)

        for _ in range(3):  # warm: the first requests of a process pay for imports and caches
            request_ms(server, deployment.key, probe)
        random.seed(0)
        alone = [request_ms(server, deployment.key, probe, args.pause) for _ in range(args.repeats)]

        stop = threading.Event()
        recordings_done = [0]
        failures: list[str] = []

        def batches() -> None:
            while not stop.is_set():
                status, answer = call(server.port, "POST", "/api/v1/batch-verify", key=batch_key, body=batch_body,
                                      content_type=batch_type, timeout=600)
                if status != 200:
                    failures.append(f"{status} {answer}")
                    return
                recordings_done[0] += args.files

        loaders = [threading.Thread(target=batches, daemon=True) for _ in range(args.batches)]
        load_started = time.perf_counter()
        for loader in loaders:
            loader.start()
        time.sleep(2.0)  # both batches are in their forward passes
        loaded = [request_ms(server, deployment.key, probe, args.pause) for _ in range(args.repeats)]
        stop.set()
        for loader in loaders:
            loader.join(timeout=600)
        load_s = time.perf_counter() - load_started
        if failures:
            raise SystemExit(f"a batch request failed: {failures[0]}")
    finally:
        server.stop()

    median_alone, median_loaded = statistics.median(alone), statistics.median(loaded)
    print(machine_note())
    what = "verify of 3 s" if args.probe == "verify" else "compare of 3 s + 3 s"
    layout = (f"{args.workers or 'layout'} worker(s) x {args.engine_threads or 'layout'} MindSpore thread(s)"
              if args.server == "gunicorn" else "one process")
    print(f"server: {args.server}, {layout}, 4 request threads; {args.repeats} requests per case, "
          f"a random pause of up to {args.pause:g} s before each")
    print(f"{what} alone: median {median_alone:7.0f} ms (p90 {statistics.quantiles(alone, n=10)[-1]:.0f} ms)")
    print(f"{what} beside {args.batches} batch requests of {args.files} x {args.seconds:g} s (other key): "
          f"median {median_loaded:7.0f} ms (p90 {statistics.quantiles(loaded, n=10)[-1]:.0f} ms)")
    print(f"ratio loaded / alone: {median_loaded / median_alone:.2f}x (target <= 3x)")
    print(f"batch key meanwhile: {recordings_done[0]} recordings of {args.seconds:g} s in {load_s:.1f} s "
          f"({recordings_done[0] / load_s:.2f} recordings/s)")


if __name__ == "__main__":
    main()
