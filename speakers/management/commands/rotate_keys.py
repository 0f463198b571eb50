"""``python manage.py rotate_keys``: re-encrypt every stored embedding with the newest key."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers.crypto import DecryptionError
from speakers.services import Actor, encryption_keys_rotate


class Command(BaseCommand):
    help = ("Re-encrypt every enrollment and voiceprint with the first key of VOICEPRINT_ENCRYPTION_KEYS. "
            "Put the new key first and keep the old ones after it until this has run everywhere.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args, batch_size: int, **options) -> None:
        try:
            report = encryption_keys_rotate(actor=Actor.cli("rotate_keys"), batch_size=batch_size)
        except DecryptionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Re-encrypted {report.enrollments} enrollment(s), {report.voiceprints} "
                          f"voiceprint(s) and {report.watchlist} watchlist voiceprint(s) with key {report.primary_key_id}. Older keys can be removed "
                          "from VOICEPRINT_ENCRYPTION_KEYS once every server runs with the new one first.")
