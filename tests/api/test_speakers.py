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


# --- external ids that look like another (issue 18) ----------------------------------------------------------

@pytest.mark.parametrize("sent, stored", [
    ("ＥＭＰ－４２", "EMP-42"),      # fullwidth forms
    ("ﬁle-7", "file-7"),             # a ligature
    ("emp\u00a042", "emp 42"),       # a no-break space
    ("  emp-43 ", "emp-43"),         # spaces around
    ("Éloïse", "Éloïse"),            # composed...
    ("E\u0301loi\u0308se", "Éloïse"),  # ... and decomposed: one id
])
def test_external_ids_are_stored_in_one_normal_form(client, sent, stored):
    created = client.post("/api/v1/speakers", {"external_id": sent}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["external_id"] == stored
    found = client.get("/api/v1/speakers", {"external_id": sent}).json()["results"]
    assert [s["id"] for s in found] == [created.json()["id"]]


def test_two_spellings_of_one_normal_form_are_the_same_external_id(client, create_speaker):
    create_speaker(external_id="Éloïse")
    assert_error(client.post("/api/v1/speakers", {"external_id": "E\u0301loi\u0308se"}, format="json"), 409,
                 "external_id_taken")


@pytest.mark.parametrize("external_id", [
    "alice\u202egnp.exe",   # right-to-left override
    "ali\u200bce",          # zero-width space
    "ali\u200dce",          # zero-width joiner
    "\u2066alice\u2069",    # isolates
    "alice\ufeff",          # byte order mark
    "ali\u00adce",          # soft hyphen
    "ali\x07ce",            # a control character
])
def test_invisible_and_direction_characters_in_an_external_id_are_refused(client, create_speaker, external_id):
    error = assert_error(client.post("/api/v1/speakers", {"external_id": external_id}, format="json"), 400,
                         "invalid_external_id")
    assert error["detail"]["field"] == "external_id" and "U+" in error["message"]
    speaker = create_speaker(external_id="plain")
    assert_error(client.patch(f"/api/v1/speakers/{speaker['id']}", {"external_id": external_id}, format="json"), 400,
                 "invalid_external_id")
    assert Speaker.objects.get(pk=speaker["id"]).external_id == "plain"


@pytest.mark.parametrize("external_id", ["\u0430lice", "p\u0430ypal-01", "\u03bflga"])  # Cyrillic а, Greek ο
def test_an_external_id_mixing_latin_with_a_lookalike_script_is_refused(client, external_id):
    error = assert_error(client.post("/api/v1/speakers", {"external_id": external_id}, format="json"), 400,
                         "invalid_external_id")
    assert "script" in error["message"]


@pytest.mark.parametrize("external_id", ["алиса-7", "Ολγα", "山田-太郎", "やまだ_タロウ", "Yamada 山田", "김민준", "emp-42"])
def test_an_external_id_in_one_script_or_a_usual_mix_is_accepted(client, external_id):
    response = client.post("/api/v1/speakers", {"external_id": external_id}, format="json")
    assert response.status_code == 201, response.json()


def test_the_admin_refuses_a_lookalike_external_id_as_a_form_error(admin_client):
    response = admin_client.post("/admin/speakers/speaker/add/", {"external_id": "ali\u200bce", "display_name": "",
                                                                  "metadata": "{}"})
    assert response.status_code == 200 and "U+200B" in response.content.decode()
    assert not Speaker.objects.exists()
