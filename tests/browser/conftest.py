"""Browser tests: Debian's Chromium, driven by Playwright, against a real server with the real model.

The server is ``manage.py runserver`` on a free 127.0.0.1 port with its own SQLite file (migrated
here); the API key comes from ``manage.py create_api_key``, as a person gets it. Chromium is the
system's (``make browser`` installs it): Playwright never downloads a browser. Its microphone is a
WAV file (``--use-file-for-fake-audio-capture``), played in a loop. Screenshots go to
``reports/browser/`` (git-ignored), or ``$VOICEPRINT_BROWSER_REPORTS``.

Every test here is marked ``browser`` and skipped, with the reason, when Chromium or Playwright
is missing.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from browsertools import write_wav

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("VOICEPRINT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream"]
SERVER_TIMEOUT_S = 180


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    reason = None
    if not Path(CHROMIUM).is_file():
        reason = f"Chromium is not installed at {CHROMIUM} (run `make browser`: apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (requirements-dev.txt)"
    for item in items:
        if Path(item.fspath).is_relative_to(here):
            item.add_marker(pytest.mark.browser)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


# --- the server -----------------------------------------------------------------------------------------

@dataclass
class LiveServer:
    url: str
    api_key: str
    admin_password: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterator[LiveServer]:
    work = tmp_path_factory.mktemp("browser-server")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}", "PYTHONUNBUFFERED": "1",
           "DJANGO_SETTINGS_MODULE": "voiceprint_project.settings", "VOICEPRINT_WARMUP": "true",
           "DJANGO_SUPERUSER_PASSWORD": "browser-admin-pw", "DJANGO_SUPERUSER_USERNAME": "admin",
           "DJANGO_SUPERUSER_EMAIL": "admin@example.invalid",
           # the page tests send the same recordings in several steps on purpose (file, then microphone);
           # remembering accepted probes would refuse them as replays (tests/api/test_replay.py tests that)
           "VOICEPRINT_REPLAY_RECENT_PROBES": "0"}
    _manage(env, "migrate", "--noinput")
    api_key = _manage(env, "create_api_key", "browser", "--scopes", "enroll", "verify", "identify", "manage").strip()
    _manage(env, "createsuperuser", "--noinput")
    port = _free_port()
    log_path = work / "server.log"
    process = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                               cwd=REPO, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    server = LiveServer(url=f"http://127.0.0.1:{port}", api_key=api_key, admin_password="browser-admin-pw",
                        process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT_S
        while True:
            assert process.poll() is None, f"the server exited:\n{server.log_tail()}"
            try:
                with urllib.request.urlopen(f"{server.url}/api/v1/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"the server did not answer in {SERVER_TIMEOUT_S} s:\n{server.log_tail()}"
            time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


# --- the browser ----------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def reports_dir() -> Path:
    path = Path(os.environ.get("VOICEPRINT_BROWSER_REPORTS", REPO / "reports" / "browser"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture
def launch(playwright_driver, tmp_path):
    """``launch(microphone=samples)`` -> a new page of a Chromium whose microphone plays ``samples``."""
    browsers = []

    def start(microphone: np.ndarray | None = None, width: int = 1280, height: int = 900):
        audio = write_wav(tmp_path / f"microphone-{len(browsers)}.wav",
                          microphone if microphone is not None else np.zeros(16_000, dtype=np.float32))
        browser = playwright_driver.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={audio}"])
        browsers.append(browser)
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(120_000)  # an enrollment on a shared 2-core machine, model warming up
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        page.on("console", lambda message: message.type == "error" and page.errors.append(message.text))
        return page

    yield start
    for browser in browsers:
        browser.close()
