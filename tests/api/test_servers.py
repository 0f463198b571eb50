"""Real server processes: several processes agree on the index, and concurrent requests are all served right.

These start ``manage.py runserver --noreload`` and gunicorn (gthread) as subprocesses on free
127.0.0.1 ports against this session's test database (a SQLite file, or PostgreSQL), and talk
to them over HTTP with the real model. Every wait is bounded.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from apitools import Server, database_url, start_gunicorn, start_runserver, wait_until_healthy
from django.db import connection

from speakers.services import Actor, api_key_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]


@pytest.fixture
def start_server(transactional_db, tmp_path):
    """``start_server("runserver" | "gunicorn", name)`` -> a running Server; all are stopped afterwards."""
    _, api_key = api_key_create(name="servers", scopes=["enroll", "verify", "identify", "manage"],
                                actor=Actor.cli("tests"))
    url = database_url(connection.settings_dict)
    started: list[Server] = []

    def start(kind: str, name: str) -> Server:
        server = (start_runserver if kind == "runserver" else start_gunicorn)(name, url, tmp_path)
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

    health = one.request("GET", "/api/v1/health").body
    assert health["enrolled_speakers"] == 1 and health["model_loaded"] is True


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

