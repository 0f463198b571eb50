"""The budget of audio seconds per key holds on the WebSocket routes too (streamed PCM and whole recordings).

One runserver with a budget of 8 s per minute; every test uses a key of its own.
"""
from __future__ import annotations

import pytest
from apitools import database_url, start_runserver, wait_until_healthy
from test_streaming import _pcm, _refused, stream

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.servers]


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.db import connection

    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    running = start_runserver("audio-budget", url, tmp_path_factory.mktemp("audio-budget"),
                              VOICEPRINT_AUDIO_SECONDS_PER_MINUTE="8")
    try:
        wait_until_healthy(running, timeout=180)
        yield running
    finally:
        running.stop()


def test_streamed_pcm_past_the_keys_budget_closes_the_session_4429(server, make_key, speech):
    outcome = stream(server, "/ws/v1/stream-verify", key=make_key("verify"), start={},
                     audio=_pcm(speech, "a_snt1", "a_snt2", "a_snt3", "a_snt4"), chunk_s=0.5, speed=None)
    _refused(outcome, 4429, "audio_budget_exceeded")
    assert outcome.of("error")[-1]["error"]["detail"]["audio_seconds_per_minute"] == 8


def test_whole_recordings_past_the_keys_budget_close_the_session_4429(server, make_key, speech):
    recordings = [speech.bytes(name) for name in ("a_snt1", "a_snt2", "a_snt3", "a_snt4")]
    outcome = stream(server, "/ws/stream-verify", key=make_key("verify"), extra=recordings, end=False)
    assert [m["type"] for m in outcome.messages[:3]] == ["reference", "result", "result"], outcome.messages
    _refused(outcome, 4429, "audio_budget_exceeded")
