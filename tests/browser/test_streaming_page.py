"""The page's live streaming panel in a real browser: the microphone streams to /ws/v1/stream-verify.

Needs the WebSocket routes (Django Channels, served by ``manage.py runserver`` on uvicorn); a build
without them skips this file, saying so.
"""
from __future__ import annotations

import importlib.util

import pytest
from browsertools import enroll_speaker, joined

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("channels") is None or importlib.util.find_spec("speakers.api.routing") is None,
    reason="this build has no WebSocket routes (Django Channels or speakers/api/routing.py is missing)")


def _stream(page, server, speaker_name: str) -> str:
    page.goto(f"{server.url}/app/")
    page.fill("#api-key", server.api_key)
    page.click("#use-key")
    page.click("#load-speakers")
    page.wait_for_selector("#speaker-select option[value]:not([value=''])", state="attached")
    page.select_option("#speaker-select", label=speaker_name)
    page.wait_for_function(f"() => document.querySelector('#speaker-name').textContent === '{speaker_name}'")
    page.click("#stream-start")
    # A first score once 1 s of speech has arrived, then one every 0.5 s of new speech; let a few come.
    page.wait_for_function("() => document.querySelectorAll('#stream-log li').length >= 1 && "
                           "[...document.querySelectorAll('#stream-log li')].filter(li => li.textContent.startsWith('score')).length >= 4",
                           timeout=120_000)
    page.click("#stream-stop")
    page.wait_for_function("() => [...document.querySelectorAll('#stream-log li')].some(li => li.textContent.startsWith('Done:'))",
                           timeout=60_000)
    return page.text_content("#stream-result .verdict")


def test_streaming_from_the_microphone_scores_the_speaker_live(launch, app_server, reports_dir):
    enroll_speaker(app_server, "Stream Alice", "a_snt1", "a_snt2", "a_snt3")
    page = launch(microphone=joined("a_snt4", "a_snt5", "a_snt6"))
    verdict = _stream(page, app_server, "Stream Alice")
    page.screenshot(path=reports_dir / "10-streaming-same-voice.png", full_page=True)
    assert verdict.startswith("Same voice"), (verdict, page.text_content("#stream-log"))
    assert not page.errors, page.errors

    impostor = launch(microphone=joined("b_snt5", "b_snt6", "b_snt1", "b_snt2"))
    verdict = _stream(impostor, app_server, "Stream Alice")
    impostor.screenshot(path=reports_dir / "11-streaming-other-voice.png", full_page=True)
    assert verdict.startswith("Not the same voice"), (verdict, impostor.text_content("#stream-log"))
