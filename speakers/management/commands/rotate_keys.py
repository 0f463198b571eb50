"""``python manage.py rotate_keys``: re-wrap every tenant's data key with the newest deployment key."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers.crypto import DecryptionError
from speakers.services import Actor, encryption_keys_rotate


class Command(BaseCommand):
    help = ("Re-wrap every tenant's data key with the first key of VOICEPRINT_ENCRYPTION_KEYS (and re-seal any row "
            "not yet under its tenant's data key). Put the new key first and keep the old ones after it until this "
            "has run everywhere.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options) -> None:
        try:
            report = encryption_keys_rotate(actor=Actor.cli("rotate_keys"), batch_size=batch_size)
        except DecryptionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Re-wrapped {report.data_keys} tenant data key(s) with key {report.primary_key_id}; "
                          f"re-sealed {report.enrollments} enrollment(s), {report.voiceprints} voiceprint(s) and "
                          f"{report.watchlist} watchlist voiceprint(s) under their tenants' keys. Older keys can be "
                          "removed from VOICEPRINT_ENCRYPTION_KEYS once every server runs with the new one first.")
