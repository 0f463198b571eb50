"""Helpers of the client's tests. They run against a real voiceprint server: ``manage.py runserver`` of the repository around
this folder, on a free port, with its own SQLite file and the real model (or, with VOICEPRINT_TEST_URL and
VOICEPRINT_TEST_API_KEY, a server you started; the tests then make speakers of their own and delete them)."""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from voiceprint_client import VoiceprintClient, VoiceprintConnectionError

REPO = Path(__file__).resolve().parents[3]
SPEECH = REPO / "tests" / "fixtures" / "speech"
START_TIMEOUT_S = 180


@dataclass
class LiveServer:
    url: str
    api_key: str
    verify_only_key: str = ""
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout.strip()


def start_server(work: Path, **settings: str) -> LiveServer:
    """``manage.py runserver`` on a free port with its own SQLite file, migrated, and two keys; waits until ready."""
    if not (REPO / "manage.py").is_file():
        pytest.skip("these tests start the voiceprint server of the repository around the client; outside it, set "
                    "VOICEPRINT_TEST_URL and VOICEPRINT_TEST_API_KEY")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}", "PYTHONUNBUFFERED": "1",
           "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings",
           # the client tests send the same recordings many times on purpose; the server's replay memory of
           # accepted probes would refuse them (the server's own tests cover replays)
           "VOICEPRINT_REPLAY_RECENT_PROBES": "0", **settings}
    _manage(env, "migrate", "--noinput")
    key = _manage(env, "create_api_key", "client-tests", "--scopes", "enroll", "verify", "identify", "manage",
                  "watchlist")
    verify_only = _manage(env, "create_api_key", "client-tests-verify", "--scopes", "verify")
    port = _free_port()
    log_path = work / "server.log"
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                               cwd=REPO, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    server = LiveServer(url=f"http://127.0.0.1:{port}", api_key=key, verify_only_key=verify_only, process=process,
                        log_path=log_path, env=env)
    wait_until_ready(server, model=settings.get("VOICEPRINT_WARMUP", "true") != "false")
    return server


def wait_until_ready(server: LiveServer, *, model: bool = True) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with VoiceprintClient(server.url, api_key=server.api_key, timeout=5) as client:
        while True:
            assert server.process is None or server.process.poll() is None, f"the server exited:\n{server.log_tail()}"
            try:
                if client.ready().ready or not model and client.health().database == "ok":
                    return
            except VoiceprintConnectionError:
                pass
            assert time.monotonic() < deadline, f"not ready in {START_TIMEOUT_S} s:\n{server.log_tail()}"
            time.sleep(0.2)


def stop_server(server: LiveServer) -> None:
    if server.process is not None and server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=30)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@dataclass
class Enrolled:
    alice: str
    bob: str
    alice_external_id: str
    bob_external_id: str


def silence_wav(seconds: float = 2.0, rate: int = 16_000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def run_async(coroutine):
    """``asyncio.run`` in a thread of its own: a test session may hold an event loop in the main thread already
    (Playwright's sync API keeps one running for the browser tests), and asyncio.run refuses to nest."""
    import asyncio
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def conversation_wav(wav, path, names=("a_snt4", "b_snt5", "a_snt5", "b_snt6"), pause_s=0.7):
    """The fixture recordings taking turns with pauses, as one 16 kHz 16-bit WAV (stdlib only)."""
    import wave

    frames = b""
    for name in names:
        with wave.open(str(wav(name))) as clip:
            frames += clip.readframes(clip.getnframes()) + b"\0\0" * int(pause_s * clip.getframerate())
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16_000)
        out.writeframes(frames)
    return path

