"""``python manage.py generate_encryption_key``: print a new key for VOICEPRINT_ENCRYPTION_KEYS.

It runs in any environment, ``VOICEPRINT_ENV=production`` without any key included: it makes the
very key such a deployment lacks (the settings' production guard lets this one command through).
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from speakers.crypto import generate_encryption_key


class Command(BaseCommand):
    help = "Print a new random 256-bit key (base64url) for VOICEPRINT_ENCRYPTION_KEYS."
    requires_system_checks: list = []

    def handle(self, *args, **options) -> None:
        self.stdout.write(generate_encryption_key())
