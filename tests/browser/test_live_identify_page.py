"""The page's live identification panel in a real browser: the microphone streams to /ws/v1/stream-identify and
the panel says who is speaking now.

Needs the WebSocket routes (Django Channels, served by ``manage.py runserver`` on uvicorn); a build
without them skips this file, saying so.
"""
from __future__ import annotations

import importlib.util

import pytest
from browsertools import api_call, enroll_speaker, joined

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("channels") is None or importlib.util.find_spec("speakers.api.routing") is None,
    reason="this build has no WebSocket routes (Django Channels or speakers/api/routing.py is missing)")

VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""
DONE = "() => [...document.querySelectorAll('#live-log li')].some(li => li.textContent.startsWith('Done:'))"


@pytest.fixture
def live_alice(app_server) -> str:
    """Voice a enrolled once, as "Live Alice"; removed afterwards.

    The server is shared by the session: other tests enroll voices a and b as other people, and two
    enrolled people of one voice are ambiguous to the identify rule (it names neither).
    """
    for speaker in api_call(app_server, "GET", "/api/v1/speakers?page_size=100")["results"]:
        api_call(app_server, "DELETE", f"/api/v1/speakers/{speaker['id']}")
    speaker_id = enroll_speaker(app_server, "Live Alice", "a_snt1", "a_snt2", "a_snt3")
    yield speaker_id
    api_call(app_server, "DELETE", f"/api/v1/speakers/{speaker_id}")


def _open_app(page, server, key: str) -> None:
    page.add_init_script(VIOLATIONS)
    page.goto(f"{server.url}/app/")
    page.fill("#api-key", key)
    page.click("#use-key")
    page.wait_for_function("() => document.querySelector('#key-status').textContent.includes('Using a key')")


def _heard(page) -> list[str]:
    """The panel's log: every change of who is speaking, the events, the summary."""
    return page.eval_on_selector_all("#live-log li", "items => items.map(li => li.textContent)")


def _no_trouble(page) -> None:
    violations = page.evaluate("() => window.__violations")
    assert not page.errors and not violations, (page.errors, violations)


def test_the_live_view_names_the_enrolled_speaker_while_she_speaks(launch, app_server, reports_dir, live_alice):
    page = launch(microphone=joined("a_snt4", "a_snt5", "a_snt6"))  # sentences of hers never enrolled
    _open_app(page, app_server, app_server.api_key)
    assert page.text_content("#live-speaker") == "not listening"
    assert page.get_attribute("#live-now", "aria-live") == "polite"

    page.click("#live-start")
    assert page.text_content("#live-speaker") == "nobody yet"  # before the first window of speech
    page.wait_for_function("() => document.querySelector('#live-speaker').textContent === 'Live Alice'",
                           timeout=120_000)
    assert page.get_attribute("#live-now", "data-state") == "named"
    assert page.text_content("#live-caption") == "Speaking now:"
    assert page.text_content("#live-figures").startswith("score ")
    page.screenshot(path=reports_dir / "12-live-identify-named.png", full_page=True)
    page.click("#live-stop")
    page.wait_for_function(DONE, timeout=60_000)

    summary = _heard(page)[-1]
    assert "heard Live Alice" in summary, _heard(page)
    assert page.text_content("#live-caption") == "Last heard:"
    assert page.is_enabled("#live-start") and not page.is_enabled("#live-stop")
    assert page.query_selector("#live-result .refusal") is None, page.text_content("#live-result")
    _no_trouble(page)


def test_a_voice_nobody_enrolled_is_an_unknown_voice_never_a_name(launch, app_server, reports_dir, live_alice):
    page = launch(microphone=joined("b_snt5", "b_snt6", "b_snt1", "b_snt2"))
    _open_app(page, app_server, app_server.api_key)

    page.click("#live-start")
    page.wait_for_function("() => document.querySelector('#live-speaker').textContent === 'unknown voice'",
                           timeout=120_000)
    assert page.get_attribute("#live-now", "data-state") == "unknown"
    page.screenshot(path=reports_dir / "13-live-identify-unknown.png", full_page=True)
    page.click("#live-stop")
    page.wait_for_function(DONE, timeout=60_000)

    heard = _heard(page)
    assert not any("Live Alice" in line for line in heard), heard  # the log keeps every change of speaker
    assert "nobody enrolled heard" in heard[-1], heard
    _no_trouble(page)


def test_a_refused_session_is_explained_in_plain_words(launch, app_server, reports_dir):
    page = launch()
    _open_app(page, app_server, "vp_0000.not-a-key")

    page.click("#live-start")
    page.wait_for_selector("#live-result .refusal", timeout=60_000)
    assert page.get_attribute("#live-result .refusal", "data-code") == "invalid_api_key"
    assert "Wrong API key" in page.text_content("#live-result")
    page.wait_for_function("() => !document.querySelector('#live-start').disabled")
    assert page.text_content("#live-speaker") == "not listening"
    assert "Closed: Wrong API key" in _heard(page)
    page.screenshot(path=reports_dir / "14-live-identify-refused.png", full_page=True)
    assert not page.evaluate("() => window.__violations")
