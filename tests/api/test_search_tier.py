"""The shared search tier (Milvus): same answers as in process, fed exactly once, rebuildable.

In-process tests use milvus-lite on a local file; the multi-process ones run milvus-lite's engine
on a 127.0.0.1 port (benchmarks.common.milvus_lite_server), as a Milvus server would be reached.
"""
from __future__ import annotations

import sys
import urllib.error
import uuid
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from apitools import (
    REPO,
    Server,
    database_url,
    free_port,
    milvus_lite_server,
    server_env,
    start_runserver,
    wait_until_healthy,
)
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from inference.vector_index.milvus import MilvusIndex
from speakers.models import SearchTierCursor, Speaker
from speakers.search.index import voiceprint_index
from speakers.search.rows import current_state
from speakers.search.shared_tier import collection_name
from speakers.services import Actor, api_key_create


def _identify(client, upload, name: str) -> dict:
    response = client.post("/api/v1/identify", {"audio": upload(name)}, format="multipart")
    assert response.status_code == 200, response.json()
    return response.json()


def _tier(uri: str) -> MilvusIndex:
    speaker = Speaker.objects.exclude(voiceprint_model_version="").first()
    from django.conf import settings
    return MilvusIndex(uri, collection=collection_name(speaker.voiceprint_model_version,
                                                       settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S), partitioned=True)


def test_identify_gives_the_same_candidates_and_scores_through_flat_and_milvus(client, upload, enrolled, settings,
                                                                              tmp_path):
    probes = ["a_snt4", "a_snt5", "b_snt5", "b_snt6"]
    answers = {}
    for backend in ("flat", "milvus"):
        settings.VOICEPRINT_INDEX_BACKEND = backend
        settings.VOICEPRINT_MILVUS_URI = str(tmp_path / "milvus.db")
        answers[backend] = [_identify(client, upload, probe) for probe in probes]
        assert voiceprint_index().structure == {"flat": "FlatIndex", "milvus": "MilvusIndex"}[backend]
    for flat, shared in zip(answers["flat"], answers["milvus"]):
        assert [c["speaker_id"] for c in shared["candidates"]] == [c["speaker_id"] for c in flat["candidates"]]
        assert [c["raw_score"] for c in shared["candidates"]] == pytest.approx(
            [c["raw_score"] for c in flat["candidates"]], abs=1e-3)  # shown to three decimals
        assert (shared["match"] or {}).get("speaker_id") == (flat["match"] or {}).get("speaker_id")


def test_the_collection_follows_enrollments_deletes_and_its_cursor_follows_the_log(client, upload, enrolled, milvus,
                                                                                   create_speaker, enroll):
    assert _identify(client, upload, "a_snt4")["match"]["speaker_id"] == enrolled["a"]
    tier = _tier(milvus)
    assert sorted(map(str, tier.ids())) == sorted(enrolled.values())
    client.delete(f"/api/v1/speakers/{enrolled['a']}")
    assert _identify(client, upload, "a_snt4")["match"] is None  # (here the search applies it: no on_commit in tests)
    assert uuid.UUID(enrolled["a"]) not in tier and len(tier) == 1
    again = create_speaker()
    enroll(again["id"], "a_snt1", "a_snt2", "a_snt3")
    assert _identify(client, upload, "a_snt4")["match"]["speaker_id"] == again["id"]
    assert uuid.UUID(again["id"]) in tier and len(tier) == 2
    cursor = SearchTierCursor.objects.get(name=tier.collection)
    assert (cursor.generation, cursor.token) == current_state()


def test_rebuild_index_reports_what_differs_and_makes_the_collection_equal_to_the_rows(client, upload, enrolled,
                                                                                        milvus):
    _identify(client, upload, "a_snt4")  # opens (builds) the collection
    tier = _tier(milvus)
    alice, bob, stranger = uuid.UUID(enrolled["a"]), uuid.UUID(enrolled["b"]), uuid.uuid4()
    rng = np.random.default_rng(0)
    tier.remove([alice])
    tier.upsert([stranger, bob], rng.standard_normal((2, 192)).astype(np.float32))

    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("rebuild_index", "--check", stdout=out)
    report = out.getvalue()
    assert "2 voiceprints in the database, 2 in the collection" in report, report
    assert f"missing: 1 ({alice})" in report and f"extra: 1 ({stranger})" in report and f"stale: 1 ({bob})" in report
    assert "differs" in str(refused.value)
    assert alice not in tier and stranger in tier  # --check changed nothing

    out = StringIO()
    call_command("rebuild_index", stdout=out)
    assert "rebuilt" in out.getvalue()
    assert sorted(tier.ids()) == sorted([alice, bob])
    out = StringIO()
    call_command("rebuild_index", "--check", stdout=out)
    assert "in step" in out.getvalue()
    assert _identify(client, upload, "b_snt5")["match"]["speaker_id"] == enrolled["b"]


def test_a_collection_found_empty_behind_a_complete_cursor_is_rebuilt_at_open(client, upload, enrolled, milvus):
    _identify(client, upload, "a_snt4")
    tier = _tier(milvus)
    tier.clear()  # a Milvus server replaced, a collection dropped by hand
    voiceprint_index().__init__()  # a new process
    assert _identify(client, upload, "a_snt4")["match"]["speaker_id"] == enrolled["a"]
    assert len(tier) == 2


def test_a_rebuild_leased_by_another_process_is_left_to_it_until_the_lease_lapses(client, upload, enrolled, milvus):
    _identify(client, upload, "a_snt4")
    tier = _tier(milvus)
    tier.clear()
    cursor = SearchTierCursor.objects.get(name=tier.collection)
    cursor.lease, cursor.lease_until = "elsewhere", timezone.now() + timedelta(seconds=60)
    cursor.save()
    voiceprint_index().__init__()  # a new process finds the collection empty, and a rebuild under way elsewhere
    assert _identify(client, upload, "a_snt4")["match"] is None  # answered from the collection as it is
    assert len(tier) == 0

    cursor.lease_until = timezone.now() - timedelta(seconds=1)  # the holder died: its lease lapses
    cursor.save()
    voiceprint_index().__init__()
    assert _identify(client, upload, "a_snt4")["match"]["speaker_id"] == enrolled["a"]
    assert len(tier) == 2
    cursor.refresh_from_db()
    assert cursor.lease == "" and (cursor.generation, cursor.token) == current_state()


def test_rebuild_index_explains_that_in_process_indexes_are_built_by_each_worker(db, settings):
    settings.VOICEPRINT_INDEX_BACKEND = "auto"
    out = StringIO()
    call_command("rebuild_index", stdout=out)
    assert "each worker process builds its own" in out.getvalue()


# --- a worker killed between the database commit and the vector write -------------------------------

def _start_fault_server(mode: str, url: str, tmp_path, **env: str) -> Server:
    import subprocess

    port = free_port()
    log_path = tmp_path / f"fault-{mode}.log"
    process = subprocess.Popen([sys.executable, "tests/api/fault_server.py", mode, f"127.0.0.1:{port}"], cwd=REPO,
                               env=server_env(url, **env), stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    return Server(name=f"fault-{mode}", url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


@pytest.mark.servers
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["before", "after"])
def test_a_change_reaches_the_collection_once_when_its_worker_dies_around_the_vector_write(
        transactional_db, tmp_path, speech, mode):
    _, api_key = api_key_create(name="fault", scopes=["enroll", "identify", "manage"], actor=Actor.cli("tests"))
    url = database_url(connection.settings_dict)
    files = [("audio", f"{n}.wav", speech.bytes(n)) for n in ("a_snt1", "a_snt2", "a_snt3")]
    probe = [("audio", "a_snt4.wav", speech.bytes("a_snt4"))]
    servers: list[Server] = []
    with milvus_lite_server(tmp_path) as uri:
        env = {"VOICEPRINT_INDEX_BACKEND": "milvus", "VOICEPRINT_MILVUS_URI": uri}
        try:
            doomed = _start_fault_server(mode, url, tmp_path, **env)
            servers.append(doomed)
            doomed.api_key = api_key
            wait_until_healthy(doomed)
            assert doomed.request("POST", "/api/v1/identify", files=probe).body["match"] is None  # opens the tier
            alice = doomed.request("POST", "/api/v1/speakers", json_body={"external_id": "alice"}).body["id"]
            with pytest.raises((urllib.error.URLError, ConnectionError)):
                doomed.request("POST", f"/api/v1/speakers/{alice}/enrollments", files=files)
            assert doomed.process.wait(timeout=30) == 17, doomed.log_tail()

            # The enrollment is committed; the collection has it or not, the cursor did not move.
            speaker = Speaker.objects.get(pk=alice)
            assert speaker.voiceprint_ciphertext is not None
            tier = _tier(uri)
            assert (uuid.UUID(alice) in tier) is (mode == "after")
            assert SearchTierCursor.objects.get(name=tier.collection).generation < current_state()[0]

            survivor = start_runserver("survivor", url, tmp_path, **env)
            servers.append(survivor)
            survivor.api_key = api_key
            wait_until_healthy(survivor)
            answer = survivor.request("POST", "/api/v1/identify", files=probe).body
            assert answer["match"]["speaker_id"] == alice, (answer, survivor.log_tail())
            assert tier.ids() == [uuid.UUID(alice)]  # exactly once
            cursor = SearchTierCursor.objects.get(name=tier.collection)
            assert (cursor.generation, cursor.token) == current_state()
            tier.close()
        finally:
            for server in servers:
                server.stop()


def test_identify_answers_503_search_unavailable_while_milvus_cannot_be_reached(client, upload, enrolled, settings):
    settings.VOICEPRINT_INDEX_BACKEND = "milvus"
    settings.VOICEPRINT_MILVUS_URI = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings.VOICEPRINT_MILVUS_TIMEOUT_S = 1.0
    response = client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart")
    assert response.status_code == 503 and response.json()["error"]["code"] == "search_unavailable", response.json()
    verified = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")},
                           format="multipart")  # 1:1 needs no search
    assert verified.status_code == 200 and verified.json()["accepted"] is True


def test_rebuild_index_says_plainly_when_milvus_cannot_be_reached(db, settings):
    settings.VOICEPRINT_INDEX_BACKEND = "milvus"
    settings.VOICEPRINT_MILVUS_URI = f"http://127.0.0.1:{free_port()}"
    settings.VOICEPRINT_MILVUS_TIMEOUT_S = 1.0
    with pytest.raises(CommandError, match="Milvus: Fail connecting"):
        call_command("rebuild_index", "--check", stdout=StringIO())
