"""The people-facing pages: ``/`` (where to go) and ``/app/`` (enroll, verify, identify, diarize, stream and
identify live from a browser).

The app page is plain HTML with ES modules (speakers/static/speakers/): no build step. It calls
the public API with the key a person types in; the key stays in the page's memory (or, if they
ask, the tab's sessionStorage) and is never put in a URL. Nothing here reads audio: the page
sends recordings to the API like any client.
"""
from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from . import selectors
from .plain_words import PLAIN_WORDS
from .security_headers import permissions_policy

STREAM_VERIFY_PATH = "/ws/v1/stream-verify"
STREAM_IDENTIFY_PATH = "/ws/v1/stream-identify"


def _content_security_policy(request: HttpRequest) -> str:
    host = request.get_host()
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "media-src 'self' blob:; worker-src 'self' blob:; "
            f"connect-src 'self' ws://{host} wss://{host}; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
            "form-action 'none'")


@require_safe
def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "speakers/landing.html", {"model_version": selectors.current_model_version()})


@require_safe
def app_page(request: HttpRequest) -> HttpResponse:
    gates = selectors.quality_gates()
    config = {
        "words": {code: {"headline": h, "advice": a} for code, (h, a) in PLAIN_WORDS.items()},
        "target_speech_s": gates["enroll_target_speech_s"],
        "enroll_min_speech_s": gates["enroll_min_speech_s"],
        "probe_min_speech_s": gates["probe_min_speech_s"],
        "max_top_k": settings.VOICEPRINT_MAX_TOP_K,
        "stream_verify_path": STREAM_VERIFY_PATH,
        "stream_identify_path": STREAM_IDENTIFY_PATH,
    }
    response = render(request, "speakers/app.html", {"config": config})
    response["Content-Security-Policy"] = _content_security_policy(request)
    response["Permissions-Policy"] = permissions_policy(microphone=True)  # recording happens here, nowhere else
    response["Cache-Control"] = "no-store"
    return response


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """No icon, said once: browsers ask every page for one (the admin's too)."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "public, max-age=86400"
    return response
