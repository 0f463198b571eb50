"""Helpers for the API tests: the error-shape assertion, and real server processes over HTTP."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.common import milvus_lite_server  # noqa: F401 - re-exported: one helper for tests and benchmarks

if TYPE_CHECKING:
    from speakers.models import Speaker

REPO = Path(__file__).resolve().parents[2]

# Enough recordings for a complete voiceprint (VOICEPRINT_ENROLL_TARGET_SPEECH_S = 6 s of speech):
# a_snt1..3 hold 8.7 s, b_snt1..4 7.1 s (b's clips are short: 1.6-1.9 s of speech each).
ENROLLED = {"a": ("a_snt1", "a_snt2", "a_snt3"), "b": ("b_snt1", "b_snt2", "b_snt3", "b_snt4")}


def assert_error(response, status: int, code: str) -> dict:
    """The response has the one error shape, this status and this code; returns the error object."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "detail"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["detail"], dict)
    return body["error"]


# --- real servers ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the (test) database this process uses."""
    if settings_dict["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{settings_dict['NAME']}"
    user = settings_dict.get("USER") or ""
    password = settings_dict.get("PASSWORD") or ""
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    return (f"postgres://{auth}{settings_dict.get('HOST') or '127.0.0.1'}:{settings_dict.get('PORT') or 5432}"
            f"/{settings_dict['NAME']}")


@dataclass
class HttpResponse:
    status: int
    body: dict[str, Any]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen
    log_path: Path
    api_key: str = ""

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def request(self, method: str, path: str, *, json_body: dict | None = None,
                fields: dict[str, str] | None = None, files: list[tuple[str, str, bytes]] | None = None,
                timeout: float = 120.0) -> HttpResponse:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        data = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif files is not None or fields is not None:
            data, content_type = encode_multipart(fields or {}, files or [])
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        return HttpResponse(status=status, body=json.loads(raw) if raw else {})

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def encode_multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, content in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: audio/wav\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def server_env(database: str, **overrides: str) -> dict[str, str]:
    from django.conf import settings

    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database,
        "DATABASE_CONN_MAX_AGE": "0",
        "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "VOICEPRINT_ENCRYPTION_KEYS": ",".join(settings.VOICEPRINT_ENCRYPTION_KEYS),
        "VOICEPRINT_MODEL_DIR": str(settings.VOICEPRINT_MODEL_DIR),
        "VOICEPRINT_WARMUP": "true",
        # as in-process (conftest): no memory of accepted probes unless a test asks (recordings repeat on purpose)
        "VOICEPRINT_REPLAY_RECENT_PROBES": "0",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


def start_runserver(name: str, database: str, log_dir: Path, **env: str) -> Server:
    port = free_port()
    log_path = log_dir / f"{name}.log"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=REPO, env=server_env(database, **env), stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    return Server(name=name, url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


def start_gunicorn(name: str, database: str, log_dir: Path, *, workers: int = 1, threads: int = 4,
                   asgi: bool = False, **env: str) -> Server:
    """gunicorn with threaded WSGI workers, or (``asgi``) with uvicorn workers as `make serve-gunicorn` runs it."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    app = ["-k", "voiceprint_project.asgi_server.UvicornWorker", "voiceprint_project.asgi:application"] if asgi else \
        ["--threads", str(threads), "voiceprint_project.wsgi:application"]
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "voiceprint_project/gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *app],
        cwd=REPO, env=server_env(database, **env), stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    return Server(name=name, url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


def wait_until(condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05,
               message: str = "the condition") -> Any:
    """Poll ``condition()`` until it returns something truthy (returned), or fail after ``timeout`` seconds.

    Tests wait on what they need to be true, never on a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} did not hold within {timeout} s")
        time.sleep(interval)


def wait_until_healthy(server: Server, timeout: float = 90.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.name} exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            response = server.request("GET", "/api/v1/health", timeout=5)
            if response.status == 200:
                return response.body
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"{server.name} did not answer /api/v1/health within {timeout} s:\n{server.log_tail()}")


# --- the calibrated decision, computed independently of the service ------------------------------

def calibrated_verdict(*, enroll_vector, enroll_quality, probe, scale: str = "cosine", asnorm=None):
    """What the shipped calibration makes of a pair: ``probe`` an EmbeddingResult, the enrollment side given."""
    from inference.quality_calibration import SideQuality
    from speakers.selectors import decision_policy

    policy = decision_policy(model_version=probe.model_version, tenant=None)
    score = float(enroll_vector @ probe.vector)
    if scale == "asnorm":
        score = asnorm.normalise(score, enroll_vector, probe.vector)
    probe_quality = SideQuality(probe.speech_s, probe.quality.snr_db, probe.quality.bandwidth_hz)
    return policy.calibration.verify(scale=scale, score=score, enroll=enroll_quality, probe=probe_quality,
                                     far=policy.far_target)


def voiceprint_side(speaker_id):
    """A stored speaker's decrypted voiceprint and its quality, as the service reads them."""
    from inference.quality_calibration import SideQuality
    from speakers import crypto
    from speakers.models import Speaker

    speaker = Speaker.objects.get(pk=speaker_id)
    vector = crypto.vector_decrypt(key_id=speaker.voiceprint_key_id, ciphertext=speaker.voiceprint_ciphertext,
                                   context=speaker.crypto_context())
    return vector, SideQuality(speaker.voiceprint_speech_s, speaker.voiceprint_snr_db, speaker.voiceprint_bandwidth_hz)


def seal_speaker(speaker: Speaker, recordings: list[np.ndarray], *, speech_s: float = 3.0) -> None:
    """Give a speaker stored enrollments and a complete voiceprint made of ``recordings`` (as enrollment does)."""
    from django.db import transaction

    from speakers import crypto
    from speakers.models import Enrollment
    from speakers.search.index import index_change_record, index_update_after_commit
    from speakers.selectors import current_model_version
    from speakers.tenancy import tenant_data_key

    model_version = current_model_version()
    key = tenant_data_key(speaker.tenant_id)
    for vector in recordings:
        enrollment = Enrollment(speaker=speaker, model_version=model_version, filename="synthetic.wav",
                                duration_s=speech_s + 0.5, speech_s=speech_s, clipping_ratio=0.0, snr_db=30.0,
                                speech_ratio=0.8, bandwidth_hz=8000.0)
        sealed = crypto.vector_encrypt(vector, context=enrollment.crypto_context(), key=key)
        enrollment.embedding_ciphertext, enrollment.key_id = sealed.ciphertext, sealed.key_id
        enrollment.save()
    voiceprint = np.mean(recordings, axis=0)
    voiceprint /= np.linalg.norm(voiceprint)
    speaker.voiceprint_model_version = model_version
    sealed = crypto.vector_encrypt(voiceprint.astype(np.float32), context=speaker.crypto_context(), key=key)
    speaker.voiceprint_ciphertext, speaker.voiceprint_key_id = sealed.ciphertext, sealed.key_id
    speaker.voiceprint_speech_s, speaker.voiceprint_snr_db, speaker.voiceprint_bandwidth_hz = (
        speech_s * len(recordings), 30.0, 8000.0)
    speaker.enrollment_count = len(recordings)
    with transaction.atomic():
        speaker.save()
        index_change_record(speaker_id=speaker.pk)  # searched like an enrolled speaker
    index_update_after_commit()


def lookalike_population(create_speaker, n: int, *, seed: int = 0, common: float = 0.6) -> list[str]:
    """``n`` speakers whose voices share a common part (strangers score high against each other, as children
    or one telephone line do), two recordings each."""
    from speakers.models import Speaker

    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(192)
    centre /= np.linalg.norm(centre)
    ids = []
    for k in range(n):
        own = rng.standard_normal(192)
        own /= np.linalg.norm(own)
        voice = common * centre + (1 - common) * own
        recordings = []
        for _ in range(2):
            noisy = voice + 0.02 * rng.standard_normal(192)
            recordings.append((noisy / np.linalg.norm(noisy)).astype(np.float32))
        speaker = Speaker.objects.get(pk=create_speaker(external_id=f"pop-{seed}-{k}")["id"])
        seal_speaker(speaker, recordings)
        ids.append(str(speaker.pk))
    return ids


def lead_policy(monkeypatch, *, gap: float, offset_by: float = 40.0) -> None:
    """Identify under a calibration whose threshold no probe reaches (offsets raised by ``offset_by``) and whose lead
    rule asks for ``gap`` in every condition over a low floor (verification's threshold at FAR 10%)."""
    import dataclasses

    from inference.quality_calibration import IDENTIFY_CONDITIONS
    from speakers.services import decisions

    policy_in_force = decisions.decision_policy

    def unreachable(**kwargs):
        policy = policy_in_force(**kwargs)
        cal = policy.calibration.scales["cosine"]
        cosine = dataclasses.replace(
            cal, identify_offset=cal.identify_offset + offset_by,
            identify_offsets=tuple((c, o + offset_by) for c, o in cal.identify_offsets),
            identify_leads=tuple((c, gap) for c in IDENTIFY_CONDITIONS), identify_lead_floor_far=0.1)
        return dataclasses.replace(policy, calibration=dataclasses.replace(
            policy.calibration, scales={**policy.calibration.scales, "cosine": cosine}))

    monkeypatch.setattr(decisions, "decision_policy", unreachable)


# --- shared stores for several processes, without a server install ------------------------------

@contextmanager
def redis_server(directory: Path, timeout: float = 15.0) -> Iterator[str]:
    """A private Redis (Debian's redis-server) on a free port, keeping nothing on disk; yields its URL.

    Skips the test when redis-server is not installed (``apt-get install redis-server``).
    """
    import shutil

    import pytest

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                "--dir", str(directory)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                    probe.sendall(b"PING\r\n")
                    if probe.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not answer on port {port}")
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
