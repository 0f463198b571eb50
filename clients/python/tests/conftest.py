"""Fixtures of the client's tests: a real voiceprint server for the session (see clienttools.py)."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from clienttools import SPEECH, Enrolled, LiveServer, start_server, stop_server, unique
from voiceprint_client import VoiceprintClient


@pytest.fixture(scope="session")
def voiceprint_server(tmp_path_factory) -> Iterator[LiveServer]:
    if os.environ.get("VOICEPRINT_TEST_URL"):
        yield LiveServer(url=os.environ["VOICEPRINT_TEST_URL"], api_key=os.environ.get("VOICEPRINT_TEST_API_KEY", ""))
        return
    server = start_server(tmp_path_factory.mktemp("client-server"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def client(voiceprint_server) -> Iterator[VoiceprintClient]:
    with VoiceprintClient(voiceprint_server.url, api_key=voiceprint_server.api_key) as vp:
        yield vp


@pytest.fixture(scope="session")
def wav():
    """``wav("a_snt1")`` -> the path of a fixture recording (speaker a: a_snt1..6, speaker b: b_snt1..6)."""
    if not SPEECH.is_dir():
        pytest.skip(f"the fixture recordings ({SPEECH}) are not here")
    return lambda name: SPEECH / f"{name}.wav"


@pytest.fixture(scope="session")
def enrolled(voiceprint_server, wav) -> Iterator[Enrolled]:
    """Two speakers with complete voiceprints (a_snt1..3 and b_snt1..4), made once, deleted at the end."""
    with VoiceprintClient(voiceprint_server.url, api_key=voiceprint_server.api_key) as vp:
        names = unique("alice"), unique("bob")
        alice = vp.create_speaker(external_id=names[0], display_name="Alice")
        bob = vp.create_speaker(external_id=names[1], display_name="Bob")
        vp.enroll(alice.id, *(wav(f"a_snt{i}") for i in (1, 2, 3)))
        vp.enroll(bob.id, *(wav(f"b_snt{i}") for i in (1, 2, 3, 4)))
        yield Enrolled(alice.id, bob.id, names[0], names[1])
        for speaker_id in (alice.id, bob.id):
            vp.delete_speaker(speaker_id)
