"""Real server processes: several processes agree on the index, and concurrent requests are all served right.

These start ``manage.py runserver --noreload`` and gunicorn (gthread) as subprocesses on free
127.0.0.1 ports against this session's test database (a SQLite file, or PostgreSQL), and talk
to them over HTTP with the real model. Every wait is bounded.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from apitools import (
    Server,
    database_url,
    milvus_lite_server,
    redis_server,
    start_gunicorn,
    start_runserver,
    wait_until_healthy,
)
from django.conf import settings
from django.db import connection

from inference.vector_index.milvus import MilvusIndex
from speakers.search.shared_tier import collection_name
from speakers.services import Actor, api_key_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]


@pytest.fixture
def start_server(transactional_db, tmp_path):
    """``start_server("runserver" | "gunicorn" | "gunicorn-asgi", name, **env)`` -> a running Server; all are stopped."""
    _, api_key = api_key_create(name="servers", scopes=["enroll", "verify", "identify", "manage"],
                                actor=Actor.cli("tests"))
    url = database_url(connection.settings_dict)
    started: list[Server] = []

    def start(kind: str, name: str, **env: str) -> Server:
        if kind == "runserver":
            server = start_runserver(name, url, tmp_path, **env)
        else:
            server = start_gunicorn(name, url, tmp_path, asgi=kind == "gunicorn-asgi", **env)
        server.api_key = api_key
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _files(speech, field: str, *names: str) -> list[tuple[str, str, bytes]]:
    return [(field, f"{n}.wav", speech.bytes(n)) for n in names]


def _create_and_enroll(server: Server, speech, external_id: str, *names: str) -> str:
    created = server.request("POST", "/api/v1/speakers", json_body={"external_id": external_id})
    assert created.status == 201, (created, server.log_tail())
    speaker_id = created.body["id"]
    enrolled = server.request("POST", f"/api/v1/speakers/{speaker_id}/enrollments",
                              files=_files(speech, "audio", *names))
    assert enrolled.status == 201, (enrolled, server.log_tail())
    assert len(enrolled.body["accepted"]) == len(names)
    return speaker_id


def _identify(server: Server, speech, name: str) -> dict:
    response = server.request("POST", "/api/v1/identify", files=_files(speech, "audio", name))
    assert response.status == 200, (response, server.log_tail())
    return response.body


def test_an_enrollment_or_delete_made_through_one_process_is_seen_by_another(start_server, speech):
    one, two = start_server("runserver", "runserver"), start_server("gunicorn", "gunicorn")
    _one_database_two_processes(one, two, speech)


def test_two_hosts_behind_a_balancer_share_the_milvus_tier_and_the_redis_cache(start_server, speech, tmp_path):
    """The multi-machine topology without containers: two ASGI servers on two ports, one database,
    one Milvus (milvus-lite's engine on a port), one Redis for throttles, lockouts and health."""
    with milvus_lite_server(tmp_path) as milvus_uri, redis_server(tmp_path) as redis_url:
        env = {"VOICEPRINT_INDEX_BACKEND": "milvus", "VOICEPRINT_MILVUS_URI": milvus_uri,
               "VOICEPRINT_CACHE_URL": redis_url, "VOICEPRINT_VERIFY_LOCKOUT_AFTER": "2"}
        one, two = start_server("gunicorn-asgi", "host-1", **env), start_server("gunicorn-asgi", "host-2", **env)
        alice, bob = _one_database_two_processes(one, two, speech)

        # A lockout earned through one host holds on the other (the count lives in Redis).
        for _ in range(2):
            rejected = one.request("POST", "/api/v1/verify", fields={"speaker_id": bob},
                                   files=_files(speech, "audio", "a_snt4"))
            assert rejected.status == 200 and rejected.body["accepted"] is False, (rejected, one.log_tail())
        locked = two.request("POST", "/api/v1/verify", fields={"speaker_id": bob},
                             files=_files(speech, "audio", "b_snt5"))
        assert locked.status == 429 and locked.body["error"]["code"] == "verification_locked", locked
        # Both searched one collection, which holds exactly the voiceprints the database holds.
        version = one.request("GET", "/api/v1/health").body["model_version"]
        tier = MilvusIndex(milvus_uri, collection=collection_name(version, settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S),
                           partitioned=True)
        assert [str(key) for key in tier.ids()] == [bob] and alice != bob


def _one_database_two_processes(one: Server, two: Server, speech) -> tuple[str, str]:
    """Enroll through one, identify through the other, delete through the other: every step seen by both."""
    for server in (one, two):
        wait_until_healthy(server)
    # Both processes build their index now, from an empty database.
    assert _identify(one, speech, "a_snt4")["match"] is None
    assert _identify(two, speech, "a_snt4")["match"] is None

    alice = _create_and_enroll(one, speech, "alice", "a_snt1", "a_snt2", "a_snt3")
    bob = _create_and_enroll(two, speech, "bob", "b_snt1", "b_snt2", "b_snt3", "b_snt4")

    # Each process sees what the other one wrote, without a restart.
    assert _identify(two, speech, "a_snt4")["match"]["speaker_id"] == alice
    assert _identify(one, speech, "b_snt6")["match"]["speaker_id"] == bob

    deleted = two.request("DELETE", f"/api/v1/speakers/{alice}")
    assert deleted.status == 204, (deleted, two.log_tail())
    after_delete = _identify(one, speech, "a_snt5")
    assert after_delete["match"] is None
    assert alice not in [c["speaker_id"] for c in after_delete["candidates"]]
    assert _identify(one, speech, "b_snt5")["match"]["speaker_id"] == bob

    for server in (one, two):
        health = server.request("GET", "/api/v1/health").body
        assert health["enrolled_speakers"] == 1 and health["model_loaded"] is True
    return alice, bob


def test_concurrent_enroll_verify_and_identify_requests_all_succeed_with_the_right_answers(start_server, speech):
    server = start_server("runserver", "threaded")
    wait_until_healthy(server)
    alice = _create_and_enroll(server, speech, "alice", "a_snt1", "a_snt2", "a_snt3")
    bob = _create_and_enroll(server, speech, "bob", "b_snt1", "b_snt2", "b_snt3", "b_snt4")

    jobs: list[tuple[str, str | None, str, object]] = []
    for _ in range(3):
        jobs += [
            ("verify", alice, "a_snt4", True),
            ("verify", alice, "b_snt6", False),
            ("verify", bob, "b_snt5", True),
            ("identify", None, "a_snt5", alice),
            ("identify", None, "b_snt6", bob),
        ]
    jobs += [("enroll", alice, "a_snt6", 201), ("enroll", bob, "b_snt6", 201)]

    def run(job) -> tuple[tuple, int, object]:
        kind, speaker_id, name, _ = job
        if kind == "verify":
            response = server.request("POST", "/api/v1/verify", fields={"speaker_id": speaker_id},
                                      files=_files(speech, "audio", name))
            return job, response.status, response.body.get("accepted")
        if kind == "identify":
            response = server.request("POST", "/api/v1/identify", files=_files(speech, "audio", name))
            match = response.body.get("match") or {}
            return job, response.status, match.get("speaker_id")
        response = server.request("POST", f"/api/v1/speakers/{speaker_id}/enrollments",
                                  files=_files(speech, "audio", name))
        return job, response.status, response.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, jobs, timeout=300))

    failures = [(job, status, answer) for job, status, answer in results
                if status not in (200, 201) or answer != job[3]]
    assert not failures, (failures, server.log_tail())
    counts = {s["external_id"]: s["enrollment_count"]
              for s in server.request("GET", "/api/v1/speakers").body["results"]}
    assert counts == {"alice": 4, "bob": 5}

