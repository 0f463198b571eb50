"""Helpers for the browser tests: the recordings the fake microphone plays."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"


def read_wav(name: str) -> np.ndarray:
    with wave.open(str(SPEECH / f"{name}.wav")) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float32) / 32768.0


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    pcm = (np.clip(samples, -1.0, 32767 / 32768) * 32768.0).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def joined(*names: str, gap_s: float = 0.3) -> np.ndarray:
    """The recordings one after another with short pauses, as one person reading sentences."""
    gap = np.zeros(int(gap_s * 16_000), dtype=np.float32)
    parts: list[np.ndarray] = []
    for name in names:
        parts += [read_wav(name), gap]
    return np.concatenate(parts)




def api_call(server, method: str, path: str, *, json_body: dict | None = None,
             files: list[tuple[str, str, bytes]] | None = None) -> dict:
    """One API request with the server's key (to set up what a test does not do through the page)."""
    import json
    import urllib.request
    import uuid

    headers = {"X-API-Key": server.api_key}
    data = None
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif files:
        boundary = uuid.uuid4().hex
        data = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                        f"Content-Type: audio/wav\r\n\r\n".encode() + content + b"\r\n"
                        for field, name, content in files) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(server.url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=300) as response:
        body = response.read()
        return json.loads(body) if body else {}  # a DELETE answers 204 with no body


def enroll_speaker(server, display_name: str, *names: str) -> str:
    """Create a speaker and enroll the fixture recordings ``names`` through the API; returns its id."""
    speaker = api_call(server, "POST", "/api/v1/speakers", json_body={"display_name": display_name})
    api_call(server, "POST", f"/api/v1/speakers/{speaker['id']}/enrollments",
             files=[("audio", f"{n}.wav", (SPEECH / f"{n}.wav").read_bytes()) for n in names])
    return speaker["id"]
