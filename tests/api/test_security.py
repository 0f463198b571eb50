"""Secrets at rest: no plaintext embedding in the database, key rotation, API key issuance, production guard."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from apitools import ENROLLED
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from speakers import crypto
from speakers.models import ApiKey, AuditEvent, Enrollment, Speaker, Tenant

pytestmark = pytest.mark.django_db

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _all_stored_bytes() -> bytes:
    """Every column of every row of the service's tables, as raw bytes."""
    chunks: list[bytes] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if not table.startswith("speakers_"):
                continue
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, (bytes, bytearray, memoryview)):
                        chunks.append(bytes(value))
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\x00".join(chunks)


def _stored_vectors() -> list[np.ndarray]:
    vectors = [crypto.vector_decrypt(key_id=e.key_id, ciphertext=e.embedding_ciphertext, context=e.crypto_context())
               for e in Enrollment.objects.all()]
    vectors += [crypto.vector_decrypt(key_id=s.voiceprint_key_id, ciphertext=s.voiceprint_ciphertext,
                                      context=s.crypto_context())
                for s in Speaker.objects.filter(voiceprint_ciphertext__isnull=False)]
    return vectors


def test_the_database_holds_no_plaintext_embedding(client, enrolled, upload, embedder, speech):
    client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")}, format="multipart")
    raw = _all_stored_bytes()
    vectors = _stored_vectors() + [embedder.embed(speech.bytes("a_snt1")).vector]
    assert len(vectors) == 10  # 7 enrollments, 2 voiceprints, and a fresh embedding of an enrolled file
    for vector in vectors:
        assert vector.shape == (192,) and abs(np.linalg.norm(vector) - 1) < 1e-4
        for encoded in (vector.astype("<f4").tobytes(), vector.astype(">f4").tobytes(),
                        vector.astype("<f8").tobytes()):
            assert encoded[:16] not in raw  # not even the first four components
        assert f"{vector[0]:.6f}".encode() not in raw and repr(float(vector[0])).encode() not in raw


def test_every_ciphertext_is_bound_to_its_own_row(enrolled):
    first, second = Enrollment.objects.all()[:2]
    with pytest.raises(crypto.DecryptionError):
        crypto.vector_decrypt(key_id=first.key_id, ciphertext=first.embedding_ciphertext,
                              context=second.crypto_context())


def test_the_audit_log_holds_decisions_but_no_embedding(client, enrolled, upload):
    client.post("/api/v1/identify", {"audio": upload("b_snt5")}, format="multipart")
    event = AuditEvent.objects.get(action="identify")
    assert event.decision == "match" and str(event.speaker_id) == enrolled["b"] and event.score > event.threshold
    assert set(event.detail) == {"top_k", "candidates", "runner_up_score", "margin", "no_match_reason", "matched_by",
                                 "lead", "gallery", "score_normalisation", "policy"}
    assert event.detail["matched_by"] == "threshold" and isinstance(event.detail["lead"], float)


def test_key_rotation_rewraps_the_tenant_data_key_and_keeps_every_speaker_verifiable(client, create_speaker, enroll,
                                                                                     upload):
    old_key, new_key = crypto.generate_encryption_key(), crypto.generate_encryption_key()
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[old_key]):
        ids = {}
        for label in "ab":
            speaker = create_speaker(external_id=label)
            assert enroll(speaker["id"], *ENROLLED[label]).status_code == 201
            ids[label] = speaker["id"]
        before = [v.copy() for v in _stored_vectors()]

    new_id = crypto.encryption_key_id(new_key)
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[new_key, old_key]):
        call_command("rotate_keys", stdout=open(os.devnull, "w"))
        tenant = Tenant.objects.get(slug="default")
        assert tenant.data_key_wrapping_id == new_id  # the data key is wrapped by the new deployment key
        # every row is sealed under the tenant's data key, which rotation leaves as it is
        assert set(Enrollment.objects.values_list("key_id", flat=True)) == {tenant.data_key_id}
        assert set(Speaker.objects.values_list("voiceprint_key_id", flat=True)) == {tenant.data_key_id}
        call_command("rotate_keys", stdout=open(os.devnull, "w"))  # a second run has nothing to do

    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[new_key]):  # the old key is gone
        after = _stored_vectors()
        assert len(after) == len(before) == 9
        assert all(np.array_equal(x, y) for x, y in zip(before, after))
        for label in "ab":
            body = client.post("/api/v1/verify", {"speaker_id": ids[label], "audio": upload(f"{label}_snt5")},
                               format="multipart").json()
            assert body["accepted"] is True, body
        assert AuditEvent.objects.filter(action="keys_rotate").count() == 2


def test_rotation_refuses_to_start_when_a_key_in_use_is_missing(create_speaker, enroll):
    old_key, new_key = crypto.generate_encryption_key(), crypto.generate_encryption_key()
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[old_key]):
        assert enroll(create_speaker()["id"], "a_snt1").status_code == 201
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[new_key]):
        with pytest.raises(CommandError, match="not in VOICEPRINT_ENCRYPTION_KEYS"):
            call_command("rotate_keys")
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[old_key]):
        assert len(_stored_vectors()) == 2  # nothing was touched


def test_a_voiceprint_sealed_with_an_unconfigured_key_is_a_clear_server_error(client, enrolled, upload):
    with override_settings(VOICEPRINT_ENCRYPTION_KEYS=[crypto.generate_encryption_key()]):
        response = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt4")},
                               format="multipart")
    assert response.status_code == 500 and response.json()["error"]["code"] == "decryption_error"


def test_create_api_key_prints_a_working_key_once(anon_client, capsys):
    call_command("create_api_key", "kiosk", "--scopes", "verify,identify")
    out, err = capsys.readouterr()
    plain = out.strip()
    assert plain.startswith("vp_") and "not shown again" in err and plain not in err
    row = ApiKey.objects.get(name="kiosk")
    assert row.scopes == ["identify", "verify"] and row.hashed_key == crypto.api_key_hash(plain)
    anon_client.credentials(HTTP_X_API_KEY=plain)
    assert anon_client.post("/api/v1/speakers", {}, format="json").status_code == 403
    assert anon_client.get("/api/v1/health").status_code == 200


def test_create_api_key_refuses_an_unknown_scope():
    with pytest.raises(CommandError, match="unknown scope"):
        call_command("create_api_key", "x", "--scopes", "everything")


def _settings_in_a_fresh_process(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("VOICEPRINT_", "DJANGO_SECRET_KEY", "DJANGO_DEBUG"))}
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=REPO,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings", **env},
                          capture_output=True, text=True, timeout=60)


def test_production_mode_refuses_to_start_with_the_default_secret_key():
    result = _settings_in_a_fresh_process(VOICEPRINT_ENV="production",
                                          VOICEPRINT_ENCRYPTION_KEYS=crypto.generate_encryption_key())
    assert result.returncode != 0 and "default secret key" in result.stderr


def test_production_mode_refuses_to_start_without_an_encryption_key():
    result = _settings_in_a_fresh_process(VOICEPRINT_ENV="production", DJANGO_SECRET_KEY="s" * 50)
    assert result.returncode != 0 and "without an encryption key" in result.stderr


def test_production_mode_starts_with_a_secret_and_a_key():
    result = _settings_in_a_fresh_process(VOICEPRINT_ENV="production", DJANGO_SECRET_KEY="s" * 50,
                                          VOICEPRINT_ENCRYPTION_KEYS=crypto.generate_encryption_key())
    assert result.returncode == 0, result.stderr


def test_a_malformed_threshold_or_key_is_refused_at_start():
    assert "VOICEPRINT_FAR_TARGET" in _settings_in_a_fresh_process(VOICEPRINT_FAR_TARGET="high").stderr
    assert "VOICEPRINT_FIR_TARGET" in _settings_in_a_fresh_process(VOICEPRINT_FIR_TARGET="0.5").stderr
    assert "expected 32" in _settings_in_a_fresh_process(VOICEPRINT_ENCRYPTION_KEYS="c2hvcnQ=").stderr


def test_api_keys_are_listed_without_their_secrets_and_revoked_by_prefix(anon_client, capsys):
    call_command("create_api_key", "kiosk", "--scopes", "verify")
    plain = capsys.readouterr().out.strip()
    call_command("create_api_key", "backup", "--scopes", "manage")
    capsys.readouterr()
    call_command("list_api_keys")
    listing = capsys.readouterr().out
    prefix = crypto.api_key_prefix(plain)
    assert "kiosk" in listing and "backup" in listing and prefix in listing and plain not in listing
    assert plain.split(".", 1)[1] not in listing
    call_command("revoke_api_key", prefix)
    assert "revoked" in capsys.readouterr().out
    anon_client.credentials(HTTP_X_API_KEY=plain)
    assert anon_client.post("/api/v1/verify", {}).json()["error"]["code"] == "api_key_revoked"
    assert AuditEvent.objects.filter(action="api_key_revoke", actor="cli:revoke_api_key").count() == 1
    call_command("list_api_keys", "--active", "--json")
    active = json.loads(capsys.readouterr().out)
    assert [k["name"] for k in active] == ["backup"] and active[0]["status"] == "active"


def test_revoking_by_a_name_shared_by_several_keys_needs_all(capsys):
    for _ in range(2):
        call_command("create_api_key", "kiosk", "--scopes", "verify")
    with pytest.raises(CommandError, match="2 active keys are named 'kiosk'"):
        call_command("revoke_api_key", "kiosk")
    call_command("revoke_api_key", "kiosk", "--all")
    assert ApiKey.objects.filter(revoked=True).count() == 2
    with pytest.raises(CommandError, match="no API key"):
        call_command("revoke_api_key", "nobody")


def test_a_sealed_row_from_before_tenants_is_read_and_moved_under_the_tenant_key_by_rotation(client, enrolled, upload):
    """Rows written before tenants were sealed by the deployment key: still readable, re-sealed by rotate_keys."""
    from speakers.tenancy import tenant_data_key

    speaker = Speaker.objects.get(pk=enrolled["a"])
    vector = crypto.vector_decrypt(key_id=speaker.voiceprint_key_id, ciphertext=speaker.voiceprint_ciphertext,
                                   context=speaker.crypto_context())
    deployment = crypto.keyring()
    legacy = crypto.data_key_of(base64.urlsafe_b64decode(settings.VOICEPRINT_ENCRYPTION_KEYS[0]))
    assert legacy.key_id == deployment.primary_id
    sealed = crypto.vector_encrypt(vector, context=speaker.crypto_context(), key=legacy)
    Speaker.objects.filter(pk=speaker.pk).update(voiceprint_ciphertext=sealed.ciphertext, voiceprint_key_id=sealed.key_id)
    body = client.post("/api/v1/verify", {"speaker_id": enrolled["a"], "audio": upload("a_snt5")},
                       format="multipart").json()
    assert body["accepted"] is True
    call_command("rotate_keys", stdout=open(os.devnull, "w"))
    assert Speaker.objects.get(pk=speaker.pk).voiceprint_key_id == tenant_data_key(speaker.tenant_id).key_id
