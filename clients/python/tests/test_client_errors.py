"""The client has one exception class for every error code the server can return (generated from the server)."""
from __future__ import annotations

import importlib.util

import pytest
import voiceprint_client as vc
from clienttools import REPO
from voiceprint_client import errors
from voiceprint_client.codes import ERRORS

GENERATOR = REPO / "clients" / "python" / "scripts" / "generate_errors.py"


def _generator():
    pytest.importorskip("django")  # it asks the server's own code: the project's venv
    spec = importlib.util.spec_from_file_location("generate_errors", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_client_knows_every_code_the_server_can_return_with_its_status():
    server = _generator().server_codes()
    assert {"no_speech", "speaker_not_found", "throttled", "invalid_host", "uri_too_long", "too_many_sessions",
            "validation_error", "internal_error", "database_unavailable"} <= set(server)
    missing = sorted(set(server) - set(ERRORS))
    assert not missing, (f"the server returns codes the client lacks: {missing}; run "
                         "`.venv/bin/python clients/python/scripts/generate_errors.py`")
    assert {code: ERRORS[code].status for code in server} == server


def test_the_generated_module_is_what_the_generator_writes_now():
    generator = _generator()
    assert (REPO / "clients/python/voiceprint_client/codes.py").read_text() == generator.render(
        generator.server_codes()), "run `.venv/bin/python clients/python/scripts/generate_errors.py`"


def test_each_class_is_of_its_status_family_and_exported():
    for code, cls in ERRORS.items():
        assert cls.code == code and issubclass(cls, vc.VoiceprintError) and getattr(vc, cls.__name__) is cls
    assert issubclass(vc.NoSpeechError, vc.RecordingRefused) and issubclass(vc.ThrottledError, vc.RateLimited)
    assert issubclass(vc.SearchUnavailableError, vc.ServiceUnavailable)


def test_an_error_object_becomes_its_class_and_an_unknown_code_its_status_family():
    known = errors.error_from_json({"code": "insufficient_speech", "message": "too little", "detail": {"speech_s": 0.4}},
                                   status=422)
    assert type(known) is vc.InsufficientSpeechError and known.detail == {"speech_s": 0.4}
    newer = errors.error_from_json({"code": "watchlist_hit", "message": "new", "detail": {}}, status=409)
    assert type(newer) is vc.Conflict and newer.code == "watchlist_hit" and newer.status == 409
