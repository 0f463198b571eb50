"""Speaker records: create, list (paginated, filtered), read, update, delete everywhere at once."""
from __future__ import annotations

import uuid

import pytest
from apitools import assert_error

from speakers.models import AuditEvent, Enrollment, IndexChange, Speaker
from speakers.search.index import voiceprint_index

pytestmark = pytest.mark.django_db


def test_it_creates_a_speaker_with_an_external_id_name_and_metadata(client):
    response = client.post("/api/v1/speakers", {"external_id": "emp-42", "display_name": "Ada",
                                                "metadata": {"team": "ops"}}, format="json")
    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body["id"])
    assert body["external_id"] == "emp-42"
    assert body["display_name"] == "Ada"
    assert body["metadata"] == {"team": "ops"}
    assert body["enrollment_count"] == 0
    assert body["enrolled"] is False
    assert body["model_version"] is None
    assert AuditEvent.objects.filter(action="speaker_create", speaker_id=body["id"]).exists()


def test_it_creates_a_speaker_with_no_fields_at_all(client):
    response = client.post("/api/v1/speakers", {}, format="json")
    assert response.status_code == 201
    assert response.json()["external_id"] is None


def test_two_speakers_cannot_share_an_external_id(client, create_speaker):
    create_speaker(external_id="emp-1")
    error = assert_error(client.post("/api/v1/speakers", {"external_id": "emp-1"}, format="json"),
                         409, "external_id_taken")
    assert error["detail"] == {"external_id": "emp-1"}
    assert Speaker.objects.count() == 1


def test_metadata_must_be_an_object(client):
    error = assert_error(client.post("/api/v1/speakers", {"metadata": [1, 2]}, format="json"),
                         400, "validation_error")
    assert "metadata" in error["detail"]


def test_malformed_json_is_a_parse_error(client):
    response = client.generic("POST", "/api/v1/speakers", "{not json", content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_it_lists_speakers_paginated_and_filters_by_external_id(client, create_speaker):
    for i in range(3):
        create_speaker(external_id=f"emp-{i}")
    page = client.get("/api/v1/speakers?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    filtered = client.get("/api/v1/speakers?external_id=emp-1").json()
    assert [s["external_id"] for s in filtered["results"]] == ["emp-1"]


def test_it_reads_and_updates_a_speaker(client, create_speaker):
    speaker = create_speaker(external_id="old", display_name="Old")
    response = client.patch(f"/api/v1/speakers/{speaker['id']}", {"display_name": "New",
                                                                 "metadata": {"k": 1}}, format="json")
    assert response.status_code == 200
    body = client.get(f"/api/v1/speakers/{speaker['id']}").json()
    assert (body["display_name"], body["metadata"], body["external_id"]) == ("New", {"k": 1}, "old")


def test_an_update_cannot_take_another_speakers_external_id(client, create_speaker):
    create_speaker(external_id="taken")
    other = create_speaker(external_id="mine")
    assert_error(client.patch(f"/api/v1/speakers/{other['id']}", {"external_id": "taken"}, format="json"),
                 409, "external_id_taken")


@pytest.mark.parametrize("speaker_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_speaker_is_404(client, speaker_id):
    assert_error(client.get(f"/api/v1/speakers/{speaker_id}"), 404, "speaker_not_found")
    assert_error(client.delete(f"/api/v1/speakers/{speaker_id}"), 404, "speaker_not_found")


def test_deleting_a_speaker_removes_enrollments_voiceprint_and_index_entry(client, enrolled, upload):
    a = enrolled["a"]
    # the index holds both speakers before the delete
    client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart")
    assert uuid.UUID(a) in voiceprint_index()

    assert client.delete(f"/api/v1/speakers/{a}").status_code == 204

    assert not Speaker.objects.filter(pk=a).exists()
    assert not Enrollment.objects.filter(speaker_id=a).exists()
    assert IndexChange.objects.filter(speaker_id=a).count() == 2  # enrolled, then deleted
    identified = client.post("/api/v1/identify", {"audio": upload("a_snt4")}, format="multipart").json()
    assert uuid.UUID(a) not in voiceprint_index()
    assert a not in [c["speaker_id"] for c in identified["candidates"]]
    assert len(voiceprint_index()) == 1
    assert AuditEvent.objects.filter(action="speaker_delete", speaker_id=a).exists()
