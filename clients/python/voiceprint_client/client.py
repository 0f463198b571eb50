"""The HTTP API as typed methods: :class:`VoiceprintClient` (blocking) and :class:`AsyncVoiceprintClient`.

Each route is written once, in :class:`Routes`, as a :class:`~voiceprint_client._http.Call`; the two
clients only send it differently (the async one's methods return awaitables of the same results).
Adding a route is one method here (and its result dataclass in ``models.py``).

    from voiceprint_client import VoiceprintClient

    with VoiceprintClient("http://127.0.0.1:8000", api_key="vp_...") as vp:
        alice = vp.ensure_speaker("alice")
        vp.enroll(alice.id, "a1.wav", "a2.wav", "a3.wav")
        print(vp.verify(alice.id, "probe.wav").accepted)
"""
from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from . import models
from ._http import Audio, Call, Retry, audio_part, form_value, send_async, send_sync
from .audio import read_wav
from .codes import ExternalIdTakenError, SpeakerNotFoundError
from .errors import NotFound
from .streaming import (
    AsyncPcmStream,
    AsyncRecordingsSession,
    PcmStream,
    RecordingsSession,
    StreamOptions,
    StreamResult,
    websocket_url,
)

DEFAULT_URL = "http://127.0.0.1:8000"
_UNSET: Any = object()


def _model(cls: type[models.Model]):
    return cls.from_json


def _models(cls: type[models.Model]):
    return lambda items: [cls.from_json(item) for item in items]


def _nothing(_: Any) -> None:
    return None


def _fields(**values: Any) -> dict[str, str]:
    return {name: form_value(value) for name, value in values.items() if value is not None}


def looks_like_id(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


class Routes:
    """Every route of the server, built as a :class:`Call` and handed to ``_call`` (sync or async)."""

    def _call(self, call: Call) -> Any:  # pragma: no cover - each client sends
        raise NotImplementedError

    # --- health ------------------------------------------------------------------------------------
    def health(self) -> models.Health:
        """``GET /api/v1/health`` (no key); a 503 ``unavailable`` is an answer too, not an error."""
        return self._call(Call("GET", "/api/v1/health", _model(models.Health), answers=(200, 503), retry=False))

    def ready(self) -> models.Readiness:
        """``GET /api/v1/ready``: ``ready`` is False (HTTP 503) until this process answers without waiting."""
        return self._call(Call("GET", "/api/v1/ready", _model(models.Readiness), answers=(200, 503), retry=False))

    def policy(self) -> models.Policy:
        """``GET /api/v1/policy`` (scope manage): the calibration, operating points and quality gates in force."""
        return self._call(Call("GET", "/api/v1/policy", _model(models.Policy)))

    def schema(self) -> dict[str, Any]:
        """``GET /api/v1/schema``: the OpenAPI 3 document."""
        return self._call(Call("GET", "/api/v1/schema", dict, params={"format": "json"}))

    # --- speakers -----------------------------------------------------------------------------------
    def create_speaker(self, *, external_id: str | None = None, display_name: str | None = None,
                       metadata: dict[str, Any] | None = None, consent: dict[str, Any] | None = None) -> models.Speaker:
        """``POST /api/v1/speakers`` (all fields optional; ``external_id`` is your own unique id in your tenant;
        ``consent``: ``{"reference": ..., "notice_version": ..., "purpose": ..., "given_at": ...}``)."""
        body = {k: v for k, v in {"external_id": external_id, "display_name": display_name,
                                  "metadata": metadata, "consent": consent}.items() if v is not None}
        return self._call(Call("POST", "/api/v1/speakers", _model(models.Speaker), json=body, answers=(201,)))

    def list_speakers(self, *, page: int | None = None, page_size: int | None = None,
                      external_id: str | None = None, voiceprint_status: str | None = None) -> models.SpeakerPage:
        """``GET /api/v1/speakers``: one page (``count``, ``next``, ``previous``, ``results``); ``voiceprint_status``
        (``outdated``, ``incomplete``...) keeps only the speakers whose voiceprint has it."""
        params = {k: v for k, v in {"page": page, "page_size": page_size, "external_id": external_id,
                                    "voiceprint_status": voiceprint_status}.items() if v is not None}
        return self._call(Call("GET", "/api/v1/speakers", _model(models.SpeakerPage), params=params))

    def get_speaker(self, speaker_id: str) -> models.Speaker:
        return self._call(Call("GET", f"/api/v1/speakers/{speaker_id}", _model(models.Speaker)))

    def update_speaker(self, speaker_id: str, *, external_id: str | None = _UNSET, display_name: str = _UNSET,
                       metadata: dict[str, Any] = _UNSET) -> models.Speaker:
        """``PATCH``: only the fields given change (``external_id=None`` clears it)."""
        body = {k: v for k, v in {"external_id": external_id, "display_name": display_name,
                                  "metadata": metadata}.items() if v is not _UNSET}
        return self._call(Call("PATCH", f"/api/v1/speakers/{speaker_id}", _model(models.Speaker), json=body))

    def delete_speaker(self, speaker_id: str) -> None:
        """``DELETE``: the speaker, every enrollment and the voiceprint (from every server's index)."""
        return self._call(Call("DELETE", f"/api/v1/speakers/{speaker_id}", _nothing, answers=(204,)))

    # --- consent, opt-out, export (docs/api.md "Consent, opt-out, export and retention") ----------------
    def set_consent(self, speaker_id: str, *, reference: str, notice_version: str | None = None,
                    purpose: str | None = None, given_at: str | None = None) -> models.Speaker:
        """``PUT .../consent``: record (or change) the person's consent."""
        body = {k: v for k, v in {"reference": reference, "notice_version": notice_version, "purpose": purpose,
                                  "given_at": given_at}.items() if v is not None}
        return self._call(Call("PUT", f"/api/v1/speakers/{speaker_id}/consent", _model(models.Speaker), json=body))

    def withdraw_consent(self, speaker_id: str) -> models.Speaker:
        """``DELETE .../consent``: consent was withdrawn; the speaker's biometric data is deleted, the profile kept."""
        return self._call(Call("DELETE", f"/api/v1/speakers/{speaker_id}/consent", _model(models.Speaker)))

    def opt_out(self, speaker_id: str) -> None:
        """``POST .../opt-out``: delete the speaker and everything about them, and block their external id."""
        return self._call(Call("POST", f"/api/v1/speakers/{speaker_id}/opt-out", _nothing, answers=(204,)))

    def export_speaker(self, speaker_id: str) -> dict[str, Any]:
        """``GET .../export``: everything stored about the speaker (never a vector), as the server words it."""
        return self._call(Call("GET", f"/api/v1/speakers/{speaker_id}/export", dict))

    # --- the fraud watchlist (scope watchlist) ---------------------------------------------------------
    def list_watchlist(self, *, page: int | None = None, page_size: int | None = None) -> models.WatchlistPage:
        params = {k: v for k, v in {"page": page, "page_size": page_size}.items() if v is not None}
        return self._call(Call("GET", "/api/v1/watchlist", _model(models.WatchlistPage), params=params))

    def add_to_watchlist(self, label: str, *audio: Audio, notes: str | None = None,
                         speaker_id: str | None = None) -> models.WatchlistEntry:
        """``POST /api/v1/watchlist``: a voice from recordings, or (``speaker_id``) an enrolled speaker's voiceprint."""
        if bool(audio) == (speaker_id is not None):
            raise ValueError("give recordings or a speaker_id, not both")
        if speaker_id is not None:
            body = {k: v for k, v in {"label": label, "notes": notes, "speaker_id": speaker_id}.items() if v is not None}
            return self._call(Call("POST", "/api/v1/watchlist", _model(models.WatchlistEntry), json=body,
                                   answers=(201,)))
        return self._call(Call("POST", "/api/v1/watchlist", _model(models.WatchlistEntry),
                               data=_fields(label=label, notes=notes), files=[audio_part("audio", a) for a in audio],
                               answers=(201,)))

    def get_watchlist_entry(self, entry_id: str) -> models.WatchlistEntry:
        return self._call(Call("GET", f"/api/v1/watchlist/{entry_id}", _model(models.WatchlistEntry)))

    def remove_from_watchlist(self, entry_id: str) -> None:
        return self._call(Call("DELETE", f"/api/v1/watchlist/{entry_id}", _nothing, answers=(204,)))

    # --- enrollments ---------------------------------------------------------------------------------
    def enroll(self, speaker_id: str, *audio: Audio) -> models.EnrollResult:
        """``POST .../enrollments``: one or more recordings (at most the server's VOICEPRINT_MAX_FILES per call).

        Refused files are listed in ``refused``; when every file is refused the call raises that error.
        """
        if not audio:
            raise ValueError("enroll needs at least one recording")
        return self._call(Call("POST", f"/api/v1/speakers/{speaker_id}/enrollments", _model(models.EnrollResult),
                               files=[audio_part("audio", a) for a in audio], answers=(201,)))

    def list_enrollments(self, speaker_id: str) -> list[models.Enrollment]:
        return self._call(Call("GET", f"/api/v1/speakers/{speaker_id}/enrollments", _models(models.Enrollment)))

    def delete_enrollment(self, speaker_id: str, enrollment_id: str) -> None:
        return self._call(Call("DELETE", f"/api/v1/speakers/{speaker_id}/enrollments/{enrollment_id}", _nothing,
                               answers=(204,)))

    # --- decisions -----------------------------------------------------------------------------------
    def verify(self, speaker_id: str, audio: Audio, *, asnorm: bool | None = None) -> models.VerifyResult:
        """``POST /api/v1/verify`` (1:1): is this recording the speaker's voice? ``accepted``, ``score``, ``threshold``."""
        return self._call(Call("POST", "/api/v1/verify", _model(models.VerifyResult),
                               data=_fields(speaker_id=speaker_id, asnorm=asnorm), files=[audio_part("audio", audio)]))

    def identify(self, audio: Audio, *, top_k: int | None = None, asnorm: bool | None = None) -> models.IdentifyResult:
        """``POST /api/v1/identify`` (1:N, open set): ``candidates`` best first, ``match`` or None."""
        return self._call(Call("POST", "/api/v1/identify", _model(models.IdentifyResult),
                               data=_fields(top_k=top_k, asnorm=asnorm), files=[audio_part("audio", audio)]))

    def compare(self, reference: Audio, test: Audio, *, asnorm: bool | None = None) -> models.CompareResult:
        """``POST /api/v1/compare``: two recordings, nothing stored."""
        return self._call(Call("POST", "/api/v1/compare", _model(models.CompareResult), data=_fields(asnorm=asnorm),
                               files=[audio_part("reference", reference), audio_part("test", test)]))

    def diarize(self, audio: Audio, *, num_speakers: int | None = None, max_speakers: int | None = None,
                asnorm: bool | None = None) -> models.DiarizeResult:
        """``POST /api/v1/diarize``: who spoke when in one conversation, each voice named or ``unknown-k``."""
        return self._call(Call("POST", "/api/v1/diarize", _model(models.DiarizeResult),
                               data=_fields(num_speakers=num_speakers, max_speakers=max_speakers, asnorm=asnorm),
                               files=[audio_part("audio", audio)]))

    def batch_verify(self, reference: Audio, tests: list[Audio], *,
                     asnorm: bool | None = None) -> models.BatchVerifyResult:
        """``POST /api/v1/batch-verify``: one reference, many tests; a refused test has its ``error``."""
        return self._call(Call("POST", "/api/v1/batch-verify", _model(models.BatchVerifyResult),
                               data=_fields(asnorm=asnorm),
                               files=[audio_part("reference", reference), *(audio_part("tests", t) for t in tests)]))

    def classic_verify_speaker(self, reference: Audio, test: Audio) -> models.ClassicVerifyResult:
        """``POST /v1/verify-speaker``, the classic ECAPA demo API's shape."""
        return self._call(Call("POST", "/v1/verify-speaker", _model(models.ClassicVerifyResult),
                               files=[audio_part("reference", reference), audio_part("test", test)]))

    def classic_batch_verify(self, reference: Audio, tests: list[Audio]) -> models.ClassicBatchResult:
        """``POST /v1/batch-verify``, the classic ECAPA demo API's shape."""
        return self._call(Call("POST", "/v1/batch-verify", _model(models.ClassicBatchResult),
                               files=[audio_part("reference", reference), *(audio_part("tests", t) for t in tests)]))


class _Base(Routes):
    def __init__(self, base_url: str | None, api_key: str | None, timeout: float, retry: Retry | None) -> None:
        self.base_url = (base_url or os.environ.get("VOICEPRINT_URL") or DEFAULT_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("VOICEPRINT_API_KEY")
        self.timeout = timeout
        self.retry = retry or Retry()

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "voiceprint-client"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        return headers

    def _stream_options(self, path: str) -> StreamOptions:
        return StreamOptions(url=websocket_url(self.base_url, path), api_key=self.api_key, timeout=self.timeout)


class VoiceprintClient(_Base):
    """Blocking client. ``base_url`` defaults to ``VOICEPRINT_URL`` (else http://127.0.0.1:8000), ``api_key`` to
    ``VOICEPRINT_API_KEY``. Answers 429/503 are retried as ``retry`` says (``Retry-After`` honoured, bounded)."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 120.0,
                 retry: Retry | None = None, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout, retry)
        self._http = httpx.Client(base_url=self.base_url, headers=self._headers(), timeout=timeout, transport=transport)

    def _call(self, call: Call) -> Any:
        return send_sync(self._http, call, self.retry)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VoiceprintClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- several calls ---------------------------------------------------------------------------------
    def iter_speakers(self, *, page_size: int = 500, external_id: str | None = None,
                      voiceprint_status: str | None = None) -> Iterator[models.Speaker]:
        """Every speaker (of that voiceprint status), page after page."""
        page = 1
        while True:
            batch = self.list_speakers(page=page, page_size=page_size, external_id=external_id,
                                       voiceprint_status=voiceprint_status)
            yield from batch.results
            if not batch.next:
                return
            page += 1

    def find_speaker(self, external_id: str) -> models.Speaker | None:
        """The speaker with this external id, or None."""
        return next(iter(self.list_speakers(external_id=external_id).results), None)

    def resolve_speaker(self, reference: str) -> models.Speaker:
        """A speaker by id or external id (an id is tried first); raises SpeakerNotFoundError."""
        if looks_like_id(reference):
            try:
                return self.get_speaker(reference)
            except NotFound:
                pass
        found = self.find_speaker(reference)
        if found is None:
            raise SpeakerNotFoundError(f"no speaker has the id or external id {reference!r}", status=404,
                                       detail={"speaker": reference})
        return found

    def ensure_speaker(self, external_id: str, *, display_name: str | None = None,
                       metadata: dict[str, Any] | None = None) -> models.Speaker:
        """The speaker with this external id, created when missing."""
        found = self.find_speaker(external_id)
        if found is not None:
            return found
        try:
            return self.create_speaker(external_id=external_id, display_name=display_name, metadata=metadata)
        except ExternalIdTakenError:  # created meanwhile by someone else
            return self.resolve_speaker(external_id)

    # --- streaming -------------------------------------------------------------------------------------
    def stream_verify(self, speaker_id: str | None = None, *, sample_rate: int = 16_000, encoding: str = "s16le",
                      reference_speech_s: float | None = None, asnorm: bool | None = None) -> PcmStream:
        """Open ``/ws/v1/stream-verify`` (raw PCM as it is spoken; rolling scores). Returns after ``ready``.

        Without ``speaker_id`` the first ``reference_speech_s`` of speech in the stream is the reference.
        """
        return PcmStream.open(self._stream_options("/ws/v1/stream-verify"), speaker_id=speaker_id,
                              sample_rate=sample_rate, encoding=encoding, reference_speech_s=reference_speech_s,
                              asnorm=asnorm)

    def recordings_session(self) -> RecordingsSession:
        """Open ``/ws/stream-verify`` (the original protocol: whole recordings, the first is the reference)."""
        return RecordingsSession.open(self._stream_options("/ws/stream-verify"))

    def stream_file(self, path: str | os.PathLike[str], speaker_id: str | None = None, *, chunk_s: float = 0.1,
                    realtime: bool = False, reference_speech_s: float | None = None, asnorm: bool | None = None,
                    on_message: Callable[[models.Model], None] | None = None) -> StreamResult:
        """Stream a 16-bit WAV file through ``/ws/v1/stream-verify`` as a live caller would, ``chunk_s`` at a time
        (``realtime``: paced like speech; otherwise as fast as the server reads). Returns every message."""
        pcm = read_wav(path)
        chunk = max(2, int(pcm.sample_rate * chunk_s) * 2)
        with self.stream_verify(speaker_id, sample_rate=pcm.sample_rate, reference_speech_s=reference_speech_s,
                                asnorm=asnorm) as stream:
            if on_message is not None:
                on_message(stream.ready)
            started = time.monotonic()
            for offset in range(0, len(pcm.data), chunk):
                stream.send(pcm.data[offset:offset + chunk])
                for message in stream.poll():
                    if on_message is not None:
                        on_message(message)
                if realtime:
                    due = started + (offset + chunk) / 2 / pcm.sample_rate
                    time.sleep(max(0.0, due - time.monotonic()))
            seen = len(stream.result.messages)
            stream.end()
            if on_message is not None:
                for message in stream.result.messages[seen:]:
                    on_message(message)
            return stream.result


class AsyncVoiceprintClient(_Base):
    """The same API for asyncio: every route method returns an awaitable of the same result."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 120.0,
                 retry: Retry | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(base_url, api_key, timeout, retry)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers(), timeout=timeout,
                                       transport=transport)

    def _call(self, call: Call) -> Any:
        return send_async(self._http, call, self.retry)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncVoiceprintClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def iter_speakers(self, *, page_size: int = 500, external_id: str | None = None,
                            voiceprint_status: str | None = None) -> AsyncIterator[models.Speaker]:
        page = 1
        while True:
            batch = await self.list_speakers(page=page, page_size=page_size, external_id=external_id,
                                             voiceprint_status=voiceprint_status)
            for speaker in batch.results:
                yield speaker
            if not batch.next:
                return
            page += 1

    async def find_speaker(self, external_id: str) -> models.Speaker | None:
        return next(iter((await self.list_speakers(external_id=external_id)).results), None)

    async def resolve_speaker(self, reference: str) -> models.Speaker:
        if looks_like_id(reference):
            try:
                return await self.get_speaker(reference)
            except NotFound:
                pass
        found = await self.find_speaker(reference)
        if found is None:
            raise SpeakerNotFoundError(f"no speaker has the id or external id {reference!r}", status=404,
                                       detail={"speaker": reference})
        return found

    async def ensure_speaker(self, external_id: str, *, display_name: str | None = None,
                             metadata: dict[str, Any] | None = None) -> models.Speaker:
        found = await self.find_speaker(external_id)
        if found is not None:
            return found
        try:
            return await self.create_speaker(external_id=external_id, display_name=display_name, metadata=metadata)
        except ExternalIdTakenError:
            return await self.resolve_speaker(external_id)

    async def stream_verify(self, speaker_id: str | None = None, *, sample_rate: int = 16_000,
                            encoding: str = "s16le", reference_speech_s: float | None = None,
                            asnorm: bool | None = None) -> AsyncPcmStream:
        return await AsyncPcmStream.open(self._stream_options("/ws/v1/stream-verify"), speaker_id=speaker_id,
                                         sample_rate=sample_rate, encoding=encoding,
                                         reference_speech_s=reference_speech_s, asnorm=asnorm)

    async def recordings_session(self) -> AsyncRecordingsSession:
        return await AsyncRecordingsSession.open(self._stream_options("/ws/stream-verify"))
