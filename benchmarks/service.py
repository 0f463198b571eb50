"""A served API for the benchmarks: a fresh SQLite database, an API key, two enrolled speakers,
and gunicorn started with the repository's configuration (or the dev server), all on loopback."""
from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import REPO, SPEECH

ENROLL = {"alice": ("a_snt1", "a_snt2", "a_snt3"), "bob": ("b_snt1", "b_snt2", "b_snt3", "b_snt4")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items()]
    for name, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     "Content-Type: audio/wav\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def call(port: int, method: str, path: str, *, key: str = "", body: bytes | None = None,
         content_type: str | None = None, timeout: float = 300.0) -> tuple[int, dict]:
    """One HTTP request to 127.0.0.1:port; raises ConnectionError (refused) before the server listens."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"X-API-Key": key} if key else {}
    if content_type:
        headers["Content-Type"] = content_type
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else {})
    finally:
        conn.close()


@dataclass
class Deployment:
    """A database with a key and enrolled speakers, and the servers started on it."""

    directory: Path
    env: dict[str, str]
    key: str = ""
    speakers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, **env: str) -> Deployment:
        directory = Path(tempfile.mkdtemp(prefix="voiceprint-bench-"))
        environment = dict(os.environ)
        environment.update({
            "DATABASE_URL": f"sqlite:///{directory / 'db.sqlite3'}",
            "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings",
            "PYTHONUNBUFFERED": "1",
            "GUNICORN_ACCESSLOG": "",
            # the probes are cut from the same fixture recordings the speakers are enrolled with, sent again and
            # again: the replay check would refuse them, the audio budget throttle them (both measured apart:
            # docs/replay.md, benchmarks/fair_share.py); a benchmark that wants either sets it back
            "VOICEPRINT_REPLAY_CHECK": "false",
            "VOICEPRINT_AUDIO_SECONDS_PER_MINUTE": "0",
        })
        environment.update(env)
        deployment = cls(directory=directory, env=environment)
        deployment.manage("migrate", "--noinput")
        deployment.key = deployment.manage("create_api_key", "bench", "--scopes", "enroll", "verify", "identify",
                                           "manage").strip().splitlines()[-1]
        return deployment

    def manage(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def start(self, *, workers: int | None = None, threads: int | None = None, engine_threads: int | None = None,
              server: str = "gunicorn", **env: str) -> Server:
        port = free_port()
        environment = dict(self.env, **env)
        if engine_threads:
            environment["VOICEPRINT_ENGINE_THREADS"] = str(engine_threads)
        if server == "gunicorn":
            command = [sys.executable, "-m", "gunicorn", "-c", "voiceprint_project/gunicorn.conf.py",
                       "--bind", f"127.0.0.1:{port}", "voiceprint_project.wsgi:application"]
            if workers:
                command += ["--workers", str(workers)]
            if threads:
                command += ["--threads", str(threads)]
        else:
            command = [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
        log = open(self.directory / f"server-{port}.log", "wb")
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT)
        return Server(self, process, port, started, Path(log.name))

    def enroll(self, server: Server) -> None:
        """Alice and Bob with complete voiceprints (once per database)."""
        for name, clips in ENROLL.items():
            status, body = server.json("POST", "/api/v1/speakers", {"external_id": name})
            if status != 201:
                raise SystemExit(f"creating {name}: {status} {body}")
            files = [("audio", f"{c}.wav", (SPEECH / f"{c}.wav").read_bytes()) for c in clips]
            status, enrolled = server.upload(f"/api/v1/speakers/{body['id']}/enrollments", {}, files)
            if status not in (200, 201):
                raise SystemExit(f"enrolling {name}: {status} {enrolled}")
            self.speakers[name] = body["id"]


@dataclass
class Server:
    deployment: Deployment
    process: subprocess.Popen
    port: int
    started: float
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict]:
        return call(self.port, "GET", path, timeout=timeout)

    def json(self, method: str, path: str, body: dict) -> tuple[int, dict]:
        return call(self.port, method, path, key=self.deployment.key, body=json.dumps(body).encode(),
                    content_type="application/json")

    def upload(self, path: str, fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[int, dict]:
        body, content_type = multipart(fields, files)
        return call(self.port, "POST", path, key=self.deployment.key, body=body, content_type=content_type)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds from start until /api/v1/ready answers 200."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                if self.get("/api/v1/ready")[0] == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit(f"not ready after {timeout} s:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def first_answer(self, path: str, fields: dict[str, str], files: list[tuple[str, str, bytes]],
                     timeout: float = 120.0) -> tuple[float, float]:
        """Send ``path`` as soon as the port takes it, again until it is answered (a request sent while
        the model loads waits for it). Returns seconds from process start to the sending and to the answer."""
        while time.perf_counter() - self.started < timeout:
            sent_at = time.perf_counter() - self.started
            try:
                status, body = self.upload(path, fields, files)
            except OSError:
                time.sleep(0.02)
                continue
            if status != 200:
                raise SystemExit(f"{path} answered {status}: {body}")
            return sent_at, time.perf_counter() - self.started
        raise SystemExit(f"{path} not answered within {timeout} s:\n{self.log_path.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
