"""The page in a real browser: a person enrolls from the microphone, verifies and identifies, end to end.

Chromium's microphone plays a WAV file (see conftest.py); every answer comes from the real
server and model. Screenshots of each step are written to reports/browser/.
"""
from __future__ import annotations

import numpy as np
from browsertools import SPEECH, api_call, enroll_speaker, joined, read_wav, write_wav

RECORD_TIMEOUT_MS = 60_000


def _open_app(page, server) -> None:
    page.goto(f"{server.url}/app/")
    page.fill("#api-key", server.api_key)
    page.click("#use-key")
    page.wait_for_function("() => document.querySelector('#key-status').textContent.includes('Using a key')")
    assert server.api_key not in page.url


def _record(page, panel: str, seconds: float) -> None:
    """Record ``seconds`` from the (fake) microphone in ``panel``'s recorder."""
    page.click(f"#{panel}-record")
    page.wait_for_function(
        f"() => parseFloat(document.querySelector('#{panel}-section .timer').textContent) >= {seconds}",
        timeout=RECORD_TIMEOUT_MS)
    page.click(f"#{panel}-record")
    page.wait_for_function(f"() => document.querySelector('#{panel}-picked').textContent.endsWith('ready')")


def test_a_person_enrolls_from_the_microphone_then_verifies_and_identifies(launch, app_server, reports_dir, tmp_path):
    # Alice reads three sentences into the microphone (8.7 s of speech; 6 s are needed).
    page = launch(microphone=joined("a_snt1", "a_snt2", "a_snt3"))
    page.goto(f"{app_server.url}/")
    page.screenshot(path=reports_dir / "01-landing.png")
    page.click("#link-app")
    page.wait_for_url("**/app/")
    _open_app(page, app_server)

    page.fill("#display-name", "Alice")
    page.fill("#external-id", "alice-1")
    page.click("#create-speaker")
    page.wait_for_selector("#speaker-message .success")
    assert page.text_content("#speaker-name") == "Alice"
    assert page.text_content("#enroll-progress-text").startswith("0.0 of 6 s")

    _record(page, "enroll", 9.6)
    page.screenshot(path=reports_dir / "02-enroll-recorded.png")
    page.click("#enroll-send")
    page.wait_for_selector("#enroll-message .success, #enroll-message .refusal")
    assert page.query_selector("#enroll-message .refusal") is None, page.text_content("#enroll-message")
    progress = page.text_content("#enroll-progress-text")
    assert progress.startswith("Complete: ") and progress.endswith(" s (6 s needed) of speech"), progress
    assert float(page.get_attribute("#enroll-progress", "aria-valuenow")) >= 6.0
    assert page.text_content("#speaker-status") == "enrolled"
    page.screenshot(path=reports_dir / "03-enrolled.png", full_page=True)

    # Verify with files: her own new sentence is accepted, Bob's is rejected.
    page.set_input_files("#verify-file", str(SPEECH / "a_snt4.wav"))
    page.click("#verify-send")
    page.wait_for_selector("#verify-verdict, #verify-result .refusal")
    assert page.text_content("#verify-verdict") == "Accepted: this is Alice"
    assert page.query_selector("#verify-gauge") is not None
    page.screenshot(path=reports_dir / "04-verify-accepted.png", full_page=True)
    page.set_input_files("#verify-file", str(SPEECH / "b_snt5.wav"))
    page.click("#verify-send")
    page.wait_for_function("() => document.querySelector('#verify-verdict')?.textContent.startsWith('Rejected')")
    page.screenshot(path=reports_dir / "05-verify-rejected.png", full_page=True)

    page.set_input_files("#identify-file", str(SPEECH / "a_snt5.wav"))
    page.click("#identify-send")
    page.wait_for_selector("#identify-verdict, #identify-result .refusal")
    assert page.text_content("#identify-verdict") == "It is Alice"
    page.screenshot(path=reports_dir / "06-identify.png", full_page=True)
    assert not page.errors, page.errors

    # Later, at another microphone: Alice says two other sentences; the page verifies and identifies her.
    later = launch(microphone=joined("a_snt4", "a_snt5"))
    _open_app(later, app_server)
    later.click("#load-speakers")
    later.wait_for_selector("#speaker-select option[value]:not([value=''])", state="attached")
    later.select_option("#speaker-select", label="Alice")
    later.wait_for_function("() => document.querySelector('#speaker-name').textContent === 'Alice'")
    _record(later, "verify", 4.5)
    later.click("#verify-send")
    later.wait_for_selector("#verify-verdict, #verify-result .refusal")
    assert later.text_content("#verify-verdict") == "Accepted: this is Alice", later.text_content("#verify-result")
    _record(later, "identify", 4.5)
    later.click("#identify-send")
    later.wait_for_selector("#identify-verdict, #identify-result .refusal")
    assert later.text_content("#identify-verdict") == "It is Alice", later.text_content("#identify-result")
    later.screenshot(path=reports_dir / "07-microphone-verify-identify.png", full_page=True)
    assert not later.errors, later.errors


def test_refusals_are_shown_in_words_a_person_understands(launch, app_server, reports_dir, tmp_path):
    quiet = read_wav("a_snt4") * 10 ** (-22 / 20)  # speech at about -54 dBFS
    page = launch(microphone=np.concatenate([quiet, quiet]))
    _open_app(page, app_server)
    page.fill("#display-name", "Whisper")
    page.click("#create-speaker")
    page.wait_for_selector("#speaker-message .success")

    _record(page, "enroll", 4.0)
    page.click("#enroll-send")
    page.wait_for_selector("#enroll-message .refusal, #enroll-message .success")
    assert page.get_attribute("#enroll-message .refusal", "data-code") == "audio_too_quiet"
    assert "Too quiet" in page.text_content("#enroll-message")
    assert "Speak louder" in page.text_content("#enroll-message")
    page.screenshot(path=reports_dir / "08-too-quiet.png", full_page=True)

    silence = write_wav(tmp_path / "silence.wav", np.zeros(3 * 16_000, dtype=np.float32))
    page.set_input_files("#enroll-file", str(silence))
    page.click("#enroll-send")
    page.wait_for_function("() => document.querySelector('#enroll-message .refusal')?.dataset.code === 'no_speech'")
    assert "No speech" in page.text_content("#enroll-message")

    # Verifying against a speaker with no voice enrolled, and a wrong key.
    page.set_input_files("#verify-file", str(SPEECH / "a_snt4.wav"))
    page.click("#verify-send")
    page.wait_for_selector("#verify-result .refusal")
    assert "Not enrolled yet" in page.text_content("#verify-result")
    page.fill("#api-key", "vp_0000.not-a-key")
    page.click("#use-key")
    page.set_input_files("#identify-file", str(SPEECH / "a_snt4.wav"))
    page.click("#identify-send")
    page.wait_for_selector("#identify-result .refusal")
    assert "Wrong API key" in page.text_content("#identify-result")
    page.screenshot(path=reports_dir / "09-refusals.png", full_page=True)
    assert "vp_0000" not in page.url


def _admin_login(page, server) -> None:
    page.goto(f"{server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", server.admin_password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def test_an_admin_verifies_and_identifies_a_recording_from_the_admin(launch, app_server, reports_dir):
    speaker_id = enroll_speaker(app_server, "Admin Bob", "b_snt1", "b_snt2", "b_snt3", "b_snt4")
    page = launch(width=1280)
    _admin_login(page, app_server)
    page.goto(f"{app_server.url}/admin/speakers/speaker/{speaker_id}/change/")
    page.click("text=Verify a recording")
    page.set_input_files("#id_audio", str(SPEECH / "b_snt5.wav"))
    page.click("#vp-tool-form input[type=submit]")
    page.wait_for_selector("#vp-result, #vp-error")
    assert page.text_content("#vp-result strong").startswith("Accepted"), page.text_content("#content-main")
    page.screenshot(path=reports_dir / "admin-verify.png", full_page=True)
    page.goto(f"{app_server.url}/admin/speakers/speaker/")
    page.click("text=Identify a recording")
    page.set_input_files("#id_audio", str(SPEECH / "b_snt6.wav"))
    page.click("#vp-tool-form input[type=submit]")
    page.wait_for_selector("#vp-result, #vp-error")
    assert page.text_content("#vp-result strong") == "Match: Admin Bob", page.text_content("#content-main")
    page.screenshot(path=reports_dir / "admin-identify.png", full_page=True)
    assert not page.errors, page.errors


def test_the_admin_lists_fit_a_1280_pixel_screen(launch, app_server, reports_dir):
    page = launch(width=1280)
    _admin_login(page, app_server)
    for name in ("speaker", "enrollment", "auditevent", "apikey"):
        page.goto(f"{app_server.url}/admin/speakers/{name}/")
        page.screenshot(path=reports_dir / f"admin-{name}.png", full_page=True)
        widths = page.evaluate("() => { const r = document.querySelector('.results') || {scrollWidth: 0, clientWidth: 0};"
                               " return [document.documentElement.scrollWidth, r.scrollWidth, r.clientWidth]; }")
        assert widths[0] <= 1280 and widths[1] <= widths[2], (name, widths)  # no scrolling, nothing cut off
    assert not page.errors, page.errors


def test_a_person_uploads_a_conversation_and_sees_who_spoke_when(launch, app_server, reports_dir, tmp_path):
    # Dora (voice a) is enrolled; the conversation alternates her with a stranger (voice b), 0.7 s apart.
    # The server is shared by the session: earlier tests enrolled voice a and b as other people, and with two
    # enrolled people of one voice the identify rule names neither (ambiguous). Only Dora stays enrolled here.
    for speaker in api_call(app_server, "GET", "/api/v1/speakers?page_size=100")["results"]:
        api_call(app_server, "DELETE", f"/api/v1/speakers/{speaker['id']}")
    enroll_speaker(app_server, "Dora", "a_snt1", "a_snt2", "a_snt3")
    gap = np.zeros(int(0.7 * 16_000), dtype=np.float32)
    turns = ("a_snt4", "b_snt1", "a_snt5", "b_snt2", "a_snt6", "b_snt3")
    talk = write_wav(tmp_path / "talk.wav", np.concatenate([x for n in turns for x in (read_wav(n), gap)]))
    page = launch()
    _open_app(page, app_server)

    page.set_input_files("#diarize-file", str(talk))
    page.click("#diarize-send")
    page.wait_for_selector("#diarize-timeline, #diarize-result .refusal", timeout=RECORD_TIMEOUT_MS)
    lanes = page.eval_on_selector_all(
        "#diarize-timeline .lane",
        "lanes => lanes.map(l => [l.querySelector('.lane-name').textContent, l.querySelectorAll('.turn').length])")
    assert lanes == [["Dora", 3], ["unknown-1", 3]], lanes
    page.screenshot(path=reports_dir / "08-who-spoke-when.png", full_page=True)
