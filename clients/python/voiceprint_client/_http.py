"""One request of the API, described once and sent by either client (sync or async).

A route is a :class:`Call` (method, path, fields, files, what answer is a result and how to read it).
:class:`~voiceprint_client.client.Routes` builds the calls; the sync and async clients only differ in
how they send them (:func:`send_sync`, :func:`send_async`): same retries, same errors.
"""
from __future__ import annotations

import asyncio
import email.utils
import io
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Union

import httpx

from .errors import UnexpectedResponse, VoiceprintConnectionError, VoiceprintError, error_from_json

# A recording: a path, raw bytes, an open binary file, or (filename, bytes).
Audio = Union[str, "os.PathLike[str]", bytes, IO[bytes], tuple[str, bytes]]
RETRY_STATUSES = (429, 503)


@dataclass(frozen=True)
class Retry:
    """Retries of an answer 429 or 503 (the server refused before doing anything, so a retry is safe).

    The wait is the server's ``Retry-After`` when it sends one, else ``backoff_s`` doubling. A wait
    longer than ``max_wait_s`` is not waited for: the error is raised at once, with ``retry_after``.
    """

    attempts: int = 3
    backoff_s: float = 0.5
    max_wait_s: float = 30.0

    def wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based), or None to give up."""
        if attempt > self.attempts:
            return None
        asked = retry_after(response)
        wait = asked if asked is not None else self.backoff_s * 2 ** (attempt - 1)
        return wait if wait <= self.max_wait_s else None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    read: Callable[[Any], Any]  # the answer's JSON -> the result
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, str] | None = None
    files: Sequence[tuple[str, tuple[str, bytes, str]]] | None = None
    answers: tuple[int, ...] = (200,)  # statuses that carry a result (health: 503 too)
    retry: bool = True


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def audio_part(field: str, audio: Audio) -> tuple[str, tuple[str, bytes, str]]:
    """A multipart file part of a recording given as a path, bytes, a binary file or (filename, bytes)."""
    if isinstance(audio, tuple):
        name, data = audio
    elif isinstance(audio, (bytes, bytearray, memoryview)):
        name, data = "recording.wav", bytes(audio)
    elif isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        name, data = path.name, path.read_bytes()
    elif isinstance(audio, io.IOBase) or hasattr(audio, "read"):
        data = audio.read()
        name = Path(getattr(audio, "name", "recording.wav")).name
    else:
        raise TypeError(f"not a recording: {type(audio).__name__} (give a path, bytes or a binary file)")
    return field, (name, data, "application/octet-stream")


def form_value(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _result(call: Call, response: httpx.Response) -> Any:
    if response.status_code in call.answers:
        if response.status_code == 204 or not response.content:
            return call.read(None)
        try:
            return call.read(response.json())
        except ValueError as exc:
            raise UnexpectedResponse(f"{call.method} {call.path} answered {response.status_code} with a body that "
                                     "is not JSON", status=response.status_code) from exc
    raise error_of(response)


def error_of(response: httpx.Response) -> VoiceprintError:
    """The exception for an error answer (the API's one shape; anything else is an unexpected response)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    wait = retry_after(response)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return error_from_json(body["error"], status=response.status_code, retry_after=wait)
    return UnexpectedResponse(f"{response.request.method} {response.request.url.path} answered HTTP "
                              f"{response.status_code} without the API's error object (is the URL a voiceprint "
                              f"server?)", status=response.status_code, retry_after=wait)


def _request_kwargs(call: Call) -> dict[str, Any]:
    return {"params": call.params, "json": call.json, "data": call.data, "files": list(call.files) if call.files else None}


def _connection_error(client: httpx.Client | httpx.AsyncClient, exc: httpx.TransportError) -> VoiceprintConnectionError:
    kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "cannot be reached"
    return VoiceprintConnectionError(f"the voiceprint server at {client.base_url} {kind}: {exc}",
                                     detail={"url": str(client.base_url)})


def send_sync(client: httpx.Client, call: Call, retry: Retry, sleep: Callable[[float], None] = time.sleep) -> Any:
    attempt = 0
    while True:
        try:
            response = client.request(call.method, call.path, **_request_kwargs(call))
        except httpx.TransportError as exc:
            raise _connection_error(client, exc) from exc
        if call.retry and response.status_code in RETRY_STATUSES and response.status_code not in call.answers:
            attempt += 1
            wait = retry.wait(response, attempt)
            if wait is not None:
                sleep(wait)
                continue
        return _result(call, response)


async def send_async(client: httpx.AsyncClient, call: Call, retry: Retry) -> Any:
    attempt = 0
    while True:
        try:
            response = await client.request(call.method, call.path, **_request_kwargs(call))
        except httpx.TransportError as exc:
            raise _connection_error(client, exc) from exc
        if call.retry and response.status_code in RETRY_STATUSES and response.status_code not in call.answers:
            attempt += 1
            wait = retry.wait(response, attempt)
            if wait is not None:
                await asyncio.sleep(wait)
                continue
        return _result(call, response)
