"""The HTTP client against a real server: every route, typed results, errors by code, retries."""
from __future__ import annotations

import http.server
import json
import threading
import time

import pytest
import voiceprint_client as vc
from clienttools import conversation_wav, run_async, silence_wav, start_server, stop_server, unique
from voiceprint_client import AsyncVoiceprintClient, Retry, VoiceprintClient, models

pytestmark = pytest.mark.servers


def test_health_and_readiness_answer_without_a_key(voiceprint_server):
    with VoiceprintClient(voiceprint_server.url, api_key="") as anonymous:
        health = anonymous.health()
        assert isinstance(health, models.Health) and health.model_loaded and health.database == "ok"
        assert health.outdated_voiceprints == 0
        assert anonymous.ready() == models.Readiness(ready=True, status="ready")


def test_a_speaker_is_created_listed_page_by_page_updated_and_deleted(client):
    names = [unique("page") for _ in range(3)]
    made = [client.create_speaker(external_id=name, display_name=name.upper(), metadata={"n": i})
            for i, name in enumerate(names)]
    assert made[0].voiceprint_status == "none" and made[0].enrolled is False
    assert made[0].enrollment_progress.complete is False and made[0].created_at.tzinfo is not None

    first = client.list_speakers(page_size=2)
    assert first.count >= 3 and len(first.results) == 2 and first.next and first.previous is None
    everyone = {s.id for s in client.iter_speakers(page_size=2)}
    assert {s.id for s in made} <= everyone
    assert [s.id for s in client.list_speakers(external_id=names[1]).results] == [made[1].id]
    without = {s.id for s in client.iter_speakers(page_size=2, voiceprint_status="none")}
    assert {s.id for s in made} <= without
    assert not {s.id for s in made} & {s.id for s in client.iter_speakers(voiceprint_status="complete")}

    renamed = client.update_speaker(made[0].id, display_name="Renamed")
    assert renamed.display_name == "Renamed" and renamed.metadata == {"n": 0} and renamed.external_id == names[0]
    assert client.get_speaker(made[0].id).display_name == "Renamed"
    for speaker in made:
        client.delete_speaker(speaker.id)
    with pytest.raises(vc.SpeakerNotFoundError) as caught:
        client.get_speaker(made[0].id)
    assert caught.value.status == 404 and isinstance(caught.value, vc.NotFound)


def test_ensure_speaker_creates_once_and_resolve_takes_an_id_or_an_external_id(client):
    name = unique("carol")
    carol = client.ensure_speaker(name, display_name="Carol")
    assert client.ensure_speaker(name).id == carol.id
    assert client.resolve_speaker(carol.id).id == carol.id == client.resolve_speaker(name).id
    with pytest.raises(vc.SpeakerNotFoundError):
        client.resolve_speaker(unique("nobody"))
    with pytest.raises(vc.ExternalIdTakenError) as caught:
        client.create_speaker(external_id=name)
    assert caught.value.status == 409 and isinstance(caught.value, vc.Conflict)
    client.delete_speaker(carol.id)


def test_enroll_verify_identify_and_compare_give_typed_decisions(client, enrolled, wav):
    accepted = client.verify(enrolled.alice, wav("a_snt5"))
    assert isinstance(accepted, models.VerifyResult)
    assert accepted.accepted and accepted.score >= accepted.threshold and accepted.score_normalisation == "none"
    rejected = client.verify(enrolled.alice, wav("b_snt5"))
    assert not rejected.accepted and rejected.score < rejected.threshold

    found = client.identify(wav("b_snt6"), top_k=2)
    assert found.match is not None and found.match.speaker_id == enrolled.bob and found.no_match_reason is None
    assert found.match.external_id == enrolled.bob_external_id and len(found.candidates) <= 2

    same = client.compare(wav("a_snt1"), wav("a_snt6"))
    different = client.compare(("a.wav", wav("a_snt1").read_bytes()), open(wav("b_snt6"), "rb"))
    assert same.accepted and not different.accepted and same.similarity == same.raw_score


def test_enrollments_are_listed_and_one_is_deleted(client, wav):
    dave = client.ensure_speaker(unique("dave"))
    result = client.enroll(dave.id, wav("a_snt1"), ("silence.wav", silence_wav()))
    assert [e.filename for e in result.accepted] == ["a_snt1.wav"]
    assert [(r.filename, r.error.code) for r in result.refused] == [("silence.wav", "no_speech")]
    assert isinstance(result.refused[0].error.exception(), vc.NoSpeechError)
    assert result.enrollment_progress.complete is False and result.speaker.enrollment_count == 1
    listed = client.list_enrollments(dave.id)
    assert [e.id for e in listed] == [result.accepted[0].id] and listed[0].quality.snr_db > 0
    client.delete_enrollment(dave.id, listed[0].id)
    assert client.list_enrollments(dave.id) == []
    with pytest.raises(vc.EnrollmentNotFoundError):
        client.delete_enrollment(dave.id, listed[0].id)
    client.delete_speaker(dave.id)


def test_an_unusable_recording_raises_the_class_of_its_code_with_the_servers_detail(client, enrolled):
    with pytest.raises(vc.NoSpeechError) as caught:
        client.verify(enrolled.alice, ("quiet.wav", silence_wav()))
    error = caught.value
    assert isinstance(error, vc.RecordingRefused) and isinstance(error, vc.VoiceprintError)
    assert error.status == 422 and error.code == "no_speech" and error.detail["filename"] == "quiet.wav"
    with pytest.raises(vc.AudioNotAudioError):
        client.compare(("a.txt", b"not audio at all" * 100), ("b.txt", b"nor this" * 100))


def test_verifying_an_incomplete_voiceprint_is_a_conflict_that_says_how_much_is_missing(client, wav):
    erin = client.ensure_speaker(unique("erin"))
    client.enroll(erin.id, wav("b_snt1"))
    with pytest.raises(vc.EnrollmentIncompleteError) as caught:
        client.verify(erin.id, wav("b_snt5"))
    assert caught.value.detail["enrollment_progress"]["complete"] is False
    client.delete_speaker(erin.id)


def test_keys_missing_wrong_or_without_the_scope_raise_their_own_classes(voiceprint_server, wav):
    with VoiceprintClient(voiceprint_server.url, api_key="") as anonymous, pytest.raises(vc.MissingApiKeyError):
        anonymous.list_speakers()
    with VoiceprintClient(voiceprint_server.url, api_key="vp_nope.nope") as wrong, \
            pytest.raises(vc.AuthenticationFailed) as caught:
        wrong.list_speakers()
    assert caught.value.code == "invalid_api_key"
    if voiceprint_server.verify_only_key:
        with VoiceprintClient(voiceprint_server.url, api_key=voiceprint_server.verify_only_key) as limited, \
                pytest.raises(vc.InsufficientScopeError) as caught:
            limited.identify(wav("a_snt1"))
        assert "identify" in caught.value.detail["required_scopes"]


def test_batch_verify_and_the_classic_endpoints(client, wav):
    batch = client.batch_verify(wav("a_snt1"), [wav("a_snt2"), wav("b_snt2"), ("silence.wav", silence_wav())])
    assert [item.accepted for item in batch.results] == [True, False, None]
    assert batch.results[2].error.code == "no_speech" and batch.results[0].error is None
    classic = client.classic_verify_speaker(wav("a_snt1"), wav("a_snt2"))
    assert classic.verification_result is True and -1 <= classic.similarity <= 1
    classic_batch = client.classic_batch_verify(wav("a_snt1"), [wav("a_snt2"), wav("b_snt2")])
    assert classic_batch.total_count == 2 and [r.result for r in classic_batch.batch_results] == [True, False]


def test_the_policy_and_the_openapi_schema(client):
    policy = client.policy()
    assert policy.far_target == 0.01 and policy.calibration_source.startswith("shipped:")
    assert policy.quality_gates["probe_min_speech_s"] == 1.0
    assert "/api/v1/verify" in client.schema()["paths"]


def test_an_answer_keeps_its_raw_json_for_fields_this_client_does_not_name(client, enrolled, wav):
    result = client.verify(enrolled.alice, wav("a_snt4"))
    assert result.raw["speaker_id"] == enrolled.alice and set(result.raw) >= {"score", "threshold", "accepted"}


def test_the_async_client_gives_the_same_answers(voiceprint_server, enrolled, wav):
    async def run():
        async with AsyncVoiceprintClient(voiceprint_server.url, api_key=voiceprint_server.api_key) as vp:
            verify = await vp.verify(enrolled.alice, wav("a_snt5"))
            speaker = await vp.resolve_speaker(enrolled.bob_external_id)
            ids = [s.id async for s in vp.iter_speakers(page_size=1)]
            with pytest.raises(vc.NoSpeechError):
                await vp.identify(("quiet.wav", silence_wav()))
            return verify, speaker, ids

    verify, speaker, ids = run_async(run())
    assert verify.accepted and speaker.id == enrolled.bob and {enrolled.alice, enrolled.bob} <= set(ids)


def test_an_unreachable_server_is_a_connection_error_that_names_it():
    with VoiceprintClient("http://127.0.0.1:9", timeout=5) as nowhere, \
            pytest.raises(vc.VoiceprintConnectionError) as caught:
        nowhere.health()
    assert "127.0.0.1:9" in caught.value.message


# --- retries -------------------------------------------------------------------------------------------------

class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers from a script of (status, headers, body); records when each request arrived."""

    script: list[tuple[int, dict[str, str], dict]] = []
    arrivals: list[float] = []

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).arrivals.append(time.monotonic())
        status, headers, body = type(self).script.pop(0)
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def play(*answers):
        _Scripted.script, _Scripted.arrivals = list(answers), []
        return f"http://127.0.0.1:{server.server_address[1]}", _Scripted.arrivals

    yield play
    server.shutdown()
    server.server_close()


THROTTLED = {"error": {"code": "throttled", "message": "Request was throttled.", "detail": {}}}
PAGE = {"count": 0, "next": None, "previous": None, "results": []}


def test_a_429_is_retried_after_the_seconds_retry_after_asks(scripted):
    url, arrivals = scripted((429, {"Retry-After": "1"}, THROTTLED), (200, {}, PAGE))
    with VoiceprintClient(url, api_key="k") as vp:
        assert vp.list_speakers().count == 0
    assert len(arrivals) == 2 and arrivals[1] - arrivals[0] >= 0.95


def test_a_wait_longer_than_the_bound_is_not_waited_for(scripted):
    url, arrivals = scripted((429, {"Retry-After": "120"}, THROTTLED))
    with VoiceprintClient(url, api_key="k", retry=Retry(max_wait_s=5)) as vp, \
            pytest.raises(vc.ThrottledError) as caught:
        vp.list_speakers()
    assert len(arrivals) == 1 and caught.value.retry_after == 120 and isinstance(caught.value, vc.RateLimited)


def test_a_503_without_retry_after_backs_off_a_bounded_number_of_times(scripted):
    unavailable = {"error": {"code": "database_unavailable", "message": "down", "detail": {}}}
    url, arrivals = scripted(*[(503, {}, unavailable)] * 3)
    with VoiceprintClient(url, api_key="k", retry=Retry(attempts=2, backoff_s=0.05)) as vp, \
            pytest.raises(vc.DatabaseUnavailableError) as caught:
        vp.list_speakers()
    assert len(arrivals) == 3 and isinstance(caught.value, vc.ServiceUnavailable)


def test_the_real_servers_throttle_reaches_the_caller_with_its_retry_after(tmp_path):
    server = start_server(tmp_path, VOICEPRINT_RATE_PER_KEY="2/min", VOICEPRINT_WARMUP="false")
    try:
        with VoiceprintClient(server.url, api_key=server.api_key, retry=Retry(max_wait_s=1)) as vp:
            vp.list_speakers()
            vp.list_speakers()
            with pytest.raises(vc.ThrottledError) as caught:
                vp.list_speakers()
        assert caught.value.status == 429 and caught.value.retry_after > 1
    finally:
        stop_server(server)


def test_consent_is_recorded_changed_withdrawn_and_exported(client, wav):
    speaker = client.create_speaker(external_id=unique("consent"),
                                    consent={"reference": "form-1", "purpose": "caller verification"})
    assert speaker.consent.reference == "form-1" and speaker.consent.given_at is not None
    client.enroll(speaker.id, wav("a_snt1"), wav("a_snt2"), wav("a_snt3"))
    changed = client.set_consent(speaker.id, reference="call-7", notice_version="v2")
    assert changed.consent.reference == "call-7" and changed.consent.notice_version == "v2"
    export = client.export_speaker(speaker.id)
    assert export["consent"]["reference"] == "call-7" and len(export["enrollments"]) == 3
    withdrawn = client.withdraw_consent(speaker.id)
    assert withdrawn.consent is None and withdrawn.enrollment_count == 0
    client.delete_speaker(speaker.id)


def test_an_opt_out_deletes_the_speaker_and_blocks_the_id(client, wav):
    name = unique("optout")
    speaker = client.create_speaker(external_id=name)
    client.opt_out(speaker.id)
    with pytest.raises(vc.SpeakerNotFoundError):
        client.get_speaker(speaker.id)
    with pytest.raises(vc.OptedOutError) as caught:
        client.create_speaker(external_id=name)
    assert caught.value.status == 409


def test_the_watchlist_is_added_to_listed_screens_and_is_removed(client, enrolled, wav):
    entry = client.add_to_watchlist(unique("case"), wav("b_snt5"), wav("b_snt6"), notes="tests")
    assert entry.source == "recordings" and entry.speech_s > 2
    assert entry.id in {e.id for e in client.list_watchlist().results}
    hit = client.verify(enrolled.bob, wav("b_snt5")).watchlist_match
    assert hit is not None and hit.entry_id == entry.id and hit.score >= hit.threshold
    assert client.verify(enrolled.alice, wav("a_snt5")).watchlist_match is None
    client.remove_from_watchlist(entry.id)
    with pytest.raises(vc.WatchlistEntryNotFoundError):
        client.get_watchlist_entry(entry.id)


def test_diarize_gives_typed_turns_with_enrolled_voices_by_name(client, enrolled, wav, tmp_path):
    assert enrolled.alice and enrolled.bob  # two voices enrolled, so some turns can be named
    talk = conversation_wav(wav, tmp_path / "talk.wav")
    result = client.diarize(talk, max_speakers=4)
    assert isinstance(result, models.DiarizeResult) and result.gallery >= 2 and result.duration_s > 10
    assert result.segments and [s.start_s for s in result.segments] == sorted(s.start_s for s in result.segments)
    # who is named depends on everyone this shared server holds (other tests enroll the same two voices: the
    # server's naming is tested in tests/api/test_diarize.py); here: the answer read into typed results
    for segment in result.segments:
        if segment.speaker is None:
            assert segment.label.startswith("unknown-"), result.raw
        else:
            assert isinstance(segment.speaker, models.SpeakerRef), result.raw
            assert segment.label == (segment.speaker.external_id or segment.speaker.id), result.raw
    assert {v.label for v in result.speakers} == {s.label for s in result.segments}
    assert all(isinstance(v, models.DiarizedVoice) and v.turns >= 1 for v in result.speakers)
