"""Tenants: two applications served by one deployment cannot see each other anywhere, and a tenant leaves without a trace."""
from __future__ import annotations

import uuid

import numpy as np
import pytest
from apitools import ENROLLED, assert_error
from django.core.management import call_command
from rest_framework.test import APIClient

from speakers import crypto
from speakers.audit import Actor
from speakers.models import (
    ApiKey,
    AuditEvent,
    Calibration,
    Enrollment,
    IndexChange,
    OptOut,
    Speaker,
    Tenant,
    WatchlistEntry,
    WatchlistVoiceprint,
)
from speakers.search.index import voiceprint_index
from speakers.services import api_key_create
from speakers.services.tenants import tenant_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def other(db) -> dict:
    """A second tenant, "bank", with an all-scope key and a client."""
    tenant = tenant_create(slug="bank", actor=Actor.cli("tests"))
    _, plain = api_key_create(name="bank-app", scopes=("enroll", "verify", "identify", "manage", "watchlist"),
                              actor=Actor.cli("tests"), tenant=tenant)
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=plain)
    return {"tenant": tenant, "client": api}


def _enroll(api, external_id: str, label: str, upload) -> str:
    speaker = api.post("/api/v1/speakers", {"external_id": external_id}, format="json").json()
    response = api.post(f"/api/v1/speakers/{speaker['id']}/enrollments",
                        {"audio": [upload(n) for n in ENROLLED[label]]}, format="multipart")
    assert response.status_code == 201, response.json()
    return speaker["id"]


@pytest.fixture
def both(client, other, upload) -> dict:
    """Alice (voice a) in the default tenant, Bob (voice b) in "bank"."""
    return {"alice": _enroll(client, "alice", "a", upload), "bob": _enroll(other["client"], "bob", "b", upload)}


def test_a_tenant_lists_only_its_own_speakers(client, other, both):
    mine = client.get("/api/v1/speakers").json()
    theirs = other["client"].get("/api/v1/speakers").json()
    assert [s["id"] for s in mine["results"]] == [both["alice"]]
    assert [s["id"] for s in theirs["results"]] == [both["bob"]]
    assert other["client"].get("/api/v1/speakers", {"external_id": "alice"}).json()["count"] == 0


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("get", "", None), ("patch", "", {"display_name": "x"}), ("delete", "", None),
    ("get", "/enrollments", None), ("put", "/consent", {"reference": "form-1"}), ("delete", "/consent", None),
    ("post", "/opt-out", None), ("get", "/export", None),
])
def test_another_tenants_speaker_is_not_found_exactly_like_one_that_does_not_exist(client, other, both, method,
                                                                                   suffix, body):

    nobody = str(uuid.uuid4())
    foreign = getattr(other["client"], method)(f"/api/v1/speakers/{both['alice']}{suffix}", body, format="json")
    missing = getattr(other["client"], method)(f"/api/v1/speakers/{nobody}{suffix}", body, format="json")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json()["error"]["code"] == missing.json()["error"]["code"] == "speaker_not_found"
    assert foreign.json()["error"]["message"] == missing.json()["error"]["message"]
    assert Speaker.objects.get(pk=both["alice"]).enrollment_count == 3  # untouched


def test_verify_against_another_tenants_speaker_is_not_found(other, both, upload):
    response = other["client"].post("/api/v1/verify", {"speaker_id": both["alice"], "audio": upload("a_snt5")},
                                    format="multipart")
    assert_error(response, 404, "speaker_not_found")


def test_identify_searches_only_the_callers_tenant(client, other, both, upload):
    found = other["client"].post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    assert [c["speaker_id"] for c in found["candidates"]] == [both["bob"]]  # Alice's voice, and only Bob to compare
    assert found["match"] is None
    mine = client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    assert mine["match"]["speaker_id"] == both["alice"] and len(mine["candidates"]) == 1
    assert voiceprint_index().size(other["tenant"].pk) == 1


def test_identify_through_milvus_searches_only_the_callers_tenant(client, other, both, upload, milvus):
    found = other["client"].post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart").json()
    assert [c["speaker_id"] for c in found["candidates"]] == [both["bob"]] and found["match"] is None
    assert client.post("/api/v1/identify", {"audio": upload("a_snt5")},
                       format="multipart").json()["match"]["speaker_id"] == both["alice"]
    assert voiceprint_index().structure == "MilvusIndex"


def test_an_external_id_is_unique_within_a_tenant_only(client, other, both):
    assert other["client"].post("/api/v1/speakers", {"external_id": "alice"}, format="json").status_code == 201
    assert_error(client.post("/api/v1/speakers", {"external_id": "alice"}, format="json"), 409, "external_id_taken")


def test_a_tenants_watchlist_screens_only_its_own_probes(client, other, both, upload):
    response = other["client"].post("/api/v1/watchlist", {"label": "fraud", "audio": [upload("a_snt6")]},
                                    format="multipart")
    assert response.status_code == 201
    body = client.post("/api/v1/verify", {"speaker_id": both["alice"], "audio": upload("a_snt5")},
                       format="multipart").json()
    assert body["accepted"] is True and body["watchlist_match"] is None  # bank's list is bank's
    assert client.get("/api/v1/watchlist").json()["count"] == 0
    assert_error(client.get(f"/api/v1/watchlist/{response.json()['id']}"), 404, "watchlist_entry_not_found")


def test_health_counts_are_the_keys_tenants_and_none_without_a_key_once_there_are_two(client, other, both,
                                                                                    anon_client):
    assert client.get("/api/v1/health").json()["enrolled_speakers"] == 1
    assert other["client"].get("/api/v1/health").json()["enrolled_speakers"] == 1
    public = anon_client.get("/api/v1/health").json()
    assert public["status"] == "ready" and public["enrolled_speakers"] is None


def test_health_without_a_key_counts_the_one_tenant_of_a_single_tenant_deployment(client, anon_client, upload):
    _enroll(client, "alice", "a", upload)
    assert anon_client.get("/api/v1/health").json()["enrolled_speakers"] == 1


def test_every_audit_event_of_a_tenant_is_its_own(client, other, both, upload):
    other["client"].post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart")
    bank = other["tenant"]
    assert AuditEvent.objects.filter(tenant=bank, action="identify").count() == 1
    assert not AuditEvent.objects.filter(tenant=bank, speaker_id=both["alice"]).exists()
    assert set(AuditEvent.objects.filter(speaker_id=both["alice"]).values_list("tenant__slug", flat=True)) == {
        "default"}


def test_each_tenant_seals_under_its_own_data_key(both, other):
    default = Tenant.objects.get(slug="default")
    bank = Tenant.objects.get(pk=other["tenant"].pk)
    assert default.data_key_id and bank.data_key_id and default.data_key_id != bank.data_key_id
    assert set(Enrollment.objects.filter(speaker_id=both["alice"]).values_list("key_id", flat=True)) == {
        default.data_key_id}
    assert set(Enrollment.objects.filter(speaker_id=both["bob"]).values_list("key_id", flat=True)) == {
        bank.data_key_id}
    assert bank.data_key_wrapped is not None and bytes(bank.data_key_wrapped)[:1] == b"\x01"


def _rows_mentioning(value: str) -> list[str]:
    """Every table cell in the database that holds ``value`` (as text or bytes)."""
    from django.db import connection

    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for cell in row:
                    text = bytes(cell).hex() if isinstance(cell, (bytes, bytearray, memoryview)) else str(cell)
                    if value.replace("-", "") in text.replace("-", ""):
                        found.append(table)
    return found


def test_deleting_a_tenant_destroys_its_key_then_every_row_and_vector(client, other, both, upload):
    bank = other["tenant"]
    other["client"].post("/api/v1/watchlist", {"label": "fraud", "audio": [upload("a_snt6")]}, format="multipart")
    other["client"].post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart")  # index built
    bob = Speaker.objects.get(pk=both["bob"])
    sealed = (bob.voiceprint_key_id, bytes(bob.voiceprint_ciphertext), bob.crypto_context())
    assert uuid.UUID(both["bob"]) in voiceprint_index()

    call_command("delete_tenant", "bank", "--yes", stdout=open("/dev/null", "w"))

    with pytest.raises(crypto.KeyNotConfigured):  # crypto-shredded: a copy of the ciphertext is unreadable now
        crypto.vector_decrypt(key_id=sealed[0], ciphertext=sealed[1], context=sealed[2])
    assert not Tenant.objects.filter(slug="bank").exists()
    for model in (Speaker, ApiKey, WatchlistEntry, Calibration, OptOut):
        assert not model.objects.filter(tenant_id=bank.pk).exists(), model
    assert not Enrollment.objects.filter(speaker_id=both["bob"]).exists()
    assert not WatchlistVoiceprint.objects.filter(entry__tenant_id=bank.pk).exists()
    assert not AuditEvent.objects.filter(tenant_id=bank.pk).exists()
    client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart")  # every index catches up
    assert uuid.UUID(both["bob"]) not in voiceprint_index() and len(voiceprint_index()) == 1
    # nothing in any table names the tenant or its speaker, but the deployment's one record of the deletion
    # and the voiceprint change log (ids only, which is how every index learnt to drop the vector)
    leftovers = set(_rows_mentioning(str(bank.pk))) | set(_rows_mentioning(both["bob"]))
    assert leftovers <= {"speakers_indexchange", "speakers_auditevent"}, leftovers
    deletion = AuditEvent.objects.get(action="tenant_delete")
    assert deletion.tenant is None and deletion.detail == {"slug": "bank", "speakers": 1}
    assert IndexChange.objects.filter(speaker_id=both["bob"]).exists()
    # the default tenant is untouched
    assert client.post("/api/v1/verify", {"speaker_id": both["alice"], "audio": upload("a_snt5")},
                       format="multipart").json()["accepted"] is True


def test_deleting_a_tenant_empties_its_vectors_from_the_shared_tier(client, other, both, upload, milvus):
    from speakers.search.shared_tier import open_shared_tier

    other["client"].post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart")
    call_command("delete_tenant", "bank", "--yes", stdout=open("/dev/null", "w"))
    client.post("/api/v1/identify", {"audio": upload("a_snt5")}, format="multipart")
    tier = voiceprint_index()._tier
    assert tier is not None

    assert set(tier.index.ids()) == {uuid.UUID(both["alice"])}
    assert tier.index.size(other["tenant"].pk) == 0
    assert open_shared_tier  # (the tier the service opened is the one checked)


def test_create_tenant_and_a_key_for_it_from_the_command_line(capsys, anon_client):
    call_command("create_tenant", "clinic", "--retention-days", "30")
    call_command("create_api_key", "front-desk", "--tenant", "clinic", "--scopes", "enroll", "manage")
    plain = capsys.readouterr().out.strip().splitlines()[-1]
    key = ApiKey.objects.get(name="front-desk")
    assert key.tenant.slug == "clinic" and key.tenant.retention_days == 30
    anon_client.credentials(HTTP_X_API_KEY=plain)
    assert anon_client.post("/api/v1/speakers", {"external_id": "p1"}, format="json").status_code == 201
    assert Speaker.objects.get(external_id="p1").tenant.slug == "clinic"
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No tenant 'nowhere'"):
        call_command("create_api_key", "x", "--tenant", "nowhere", "--scopes", "enroll")


def test_a_staff_user_sees_only_the_tenants_they_are_given_in_the_admin(other, both, client):
    from django.contrib.auth.models import Permission, User
    from django.test import Client

    staff = User.objects.create_user("clerk", password="pw-clerk-123", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="speakers"))
    other["tenant"].staff.add(staff)
    browser = Client()
    browser.force_login(staff)
    page = browser.get("/admin/speakers/speaker/").content.decode()
    assert both["bob"] in page and both["alice"] not in page
    assert browser.get(f"/admin/speakers/speaker/{both['alice']}/change/").status_code in (302, 404)
    assert browser.get(f"/admin/speakers/speaker/{both['bob']}/change/").status_code == 200
    audit = browser.get("/admin/speakers/auditevent/").content.decode()
    assert both["alice"][:8] not in audit


def test_a_vector_of_another_tenant_cannot_be_moved_into_this_one(both):
    """A ciphertext is bound to its row: copied into another tenant's speaker row it does not open."""
    alice, bob = Speaker.objects.get(pk=both["alice"]), Speaker.objects.get(pk=both["bob"])
    with pytest.raises(crypto.DecryptionError):
        crypto.vector_decrypt(key_id=alice.voiceprint_key_id, ciphertext=alice.voiceprint_ciphertext,
                              context=bob.crypto_context())
    assert np.isfinite(crypto.vector_decrypt(key_id=bob.voiceprint_key_id, ciphertext=bob.voiceprint_ciphertext,
                                             context=bob.crypto_context())).all()
