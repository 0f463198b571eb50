"""Locust clients for ``benchmarks.serving``: each simulated client sends one request after another
(no think time), a verify or an identify of a fixed real-speech probe, to the served API.

Configured by the environment (``benchmarks.serving`` sets it): ``BENCH_OPERATION`` (verify or
identify), ``BENCH_PROBE`` (a WAV file), ``BENCH_API_KEY``, ``BENCH_SPEAKER_ID`` (for verify).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from locust import FastHttpUser, constant, task

OPERATION = os.environ.get("BENCH_OPERATION", "verify")
PROBE = Path(os.environ.get("BENCH_PROBE", "tests/fixtures/speech/a_snt1.wav")).read_bytes()
KEY = os.environ.get("BENCH_API_KEY", "")
SPEAKER = os.environ.get("BENCH_SPEAKER_ID", "")


def _body() -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    if OPERATION == "verify":
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="speaker_id"\r\n\r\n{SPEAKER}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="probe.wav"\r\n'
                 "Content-Type: audio/wav\r\n\r\n".encode() + PROBE + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


BODY, CONTENT_TYPE = _body()


class ApiClient(FastHttpUser):
    wait_time = constant(0)

    @task
    def call(self) -> None:
        with self.client.post(f"/api/v1/{OPERATION}", data=BODY, name=OPERATION, catch_response=True,
                              headers={"Content-Type": CONTENT_TYPE, "X-API-Key": KEY}) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {response.text[:200]}")
