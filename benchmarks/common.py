"""What the benchmarks share: real speech of any length, WAV bytes, memory of a process, medians."""
from __future__ import annotations

import io
import os
import socket
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SPEECH = REPO / "tests" / "fixtures" / "speech"
RATE = 16_000


def speech_of(seconds: float) -> np.ndarray:
    """``seconds`` of real speech: the fixture recordings joined end to end (repeated), cut to length."""
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(SPEECH.glob("*.wav"))]
    joined = np.concatenate(clips)
    while joined.size < seconds * RATE:
        joined = np.concatenate([joined, joined])
    return joined[: int(seconds * RATE)]


def wav_bytes(wave: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    """A process's resident memory (``VmRSS``) or its peak (``VmHWM``) in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} for process {pid}")


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (gunicorn's workers)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def median(values) -> float:
    return statistics.median(values)


def reference_interpreter(requested: str | None) -> str | None:
    """The interpreter with torch + speechbrain: ``--reference-python``, else ``$REFERENCE_PYTHON``."""
    return requested or os.environ.get("REFERENCE_PYTHON") or None


def machine_note() -> str:
    load = os.getloadavg()
    return f"{os.cpu_count()} cores; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) at the start"


@contextmanager
def milvus_lite_server(directory: Path, timeout: float = 30.0) -> Iterator[str]:
    """milvus-lite's engine serving ``directory/milvus.db`` on a free 127.0.0.1 port; yields its URI.

    The same Milvus engine as a standalone server, reachable by every process of a test (a
    local ``.db`` URI is opened by one process only). Used by the multi-process tests and
    ``benchmarks/service_scale.py --milvus``.
    """
    from milvus_lite.server import Server

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Server(str(directory / "milvus.db"), address=f"127.0.0.1:{port}")
    if not (server.init() and server.start()):
        raise AssertionError("milvus-lite did not start")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"milvus-lite did not listen on port {port} within {timeout} s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        if server._p is not None:  # noqa: SLF001 - stop the engine at once, not after stop()'s grace period
            server._p.terminate()  # noqa: SLF001
        server.stop()
