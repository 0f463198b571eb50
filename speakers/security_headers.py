"""A content security policy and a permissions policy on every answer: pages, the admin, the API docs, the API.

Nothing this service serves needs an inline script, a plugin, a frame or another origin: the app
page and the admin load their scripts and styles from /static/, the API docs are Swagger UI from
drf-spectacular-sidecar with its start-up script as a file of its own (``SpectacularSwaggerSplitView``);
two fixed inline styles of those dependencies are allowed by their hashes. So one policy fits them
all, and a page that needs more or less sets its own (``/app/``: WebSocket connections, no form, and
the microphone).
"""
from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path


def _inline_style_hashes() -> list[str]:
    """Two templates of our dependencies write an inline ``<style>`` with fixed text: Django's admin change list
    (a list without actions, e.g. the audit log) and drf-spectacular's Swagger UI page. Each is allowed by the
    hash of its text, read from the installed template so that an upgrade keeps it right; nothing else inline is."""
    import django.contrib.admin
    import drf_spectacular

    templates = [Path(django.contrib.admin.__file__).parent / "templates" / "admin" / "change_list.html",
                 Path(drf_spectacular.__file__).parent / "templates" / "drf_spectacular" / "swagger_ui.html"]
    styles = [style for template in templates
              for style in re.findall(r"<style>(.*?)</style>", template.read_text(encoding="utf-8"), re.S)]
    return [f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in styles]


CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", " ".join(["style-src 'self'", *_inline_style_hashes()]),
    "img-src 'self' data:", "font-src 'self'", "connect-src 'self'", "object-src 'none'", "base-uri 'none'",
    "frame-ancestors 'none'", "form-action 'self'",
])
# Powerful browser features, all off unless a page turns one on (the app page: the microphone, for itself).
PERMISSIONS_POLICY = ("accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
                      "magnetometer=(), microphone=(), midi=(), payment=(), usb=()")


def permissions_policy(*, microphone: bool = False) -> str:
    return PERMISSIONS_POLICY.replace("microphone=()", "microphone=(self)") if microphone else PERMISSIONS_POLICY


class SecurityHeadersMiddleware:
    """Adds both policies to every response that has none of its own (static files and refusals included)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = PERMISSIONS_POLICY
        return response
