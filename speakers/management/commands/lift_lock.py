"""``python manage.py lift_lock SPEAKER_ID [--key PREFIX] [--address ADDR] [--tenant SLUG]``: lift verification locks."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers.audit import Actor
from speakers.exceptions import SpeakerNotFound
from speakers.selectors import speaker_get
from speakers.services.lockout import verification_lock_lift
from speakers.tenancy import tenant_for_command


class Command(BaseCommand):
    help = ("Lift the verification locks of a speaker: every one, or only an API key's (--key, its prefix as "
            "`list_locks` shows it) and/or a client address's (--address); audited (verify_lock_lift).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("speaker_id")
        parser.add_argument("--key", default=None, metavar="PREFIX", help="only this API key's lock")
        parser.add_argument("--address", default=None, metavar="ADDR", help="only this client address's lock")
        parser.add_argument("--tenant", default=None, metavar="SLUG", help="default: the default tenant")

    def handle(self, *args, speaker_id: str, key: str | None, address: str | None, tenant: str | None,
               **options) -> None:
        owner = tenant_for_command(tenant)
        try:
            speaker = speaker_get(tenant=owner, speaker_id=speaker_id)
        except SpeakerNotFound:
            raise CommandError(f"No speaker {speaker_id} in tenant {owner.slug}.") from None
        if key is not None:
            key = key.removeprefix("vp_")  # vp_<prefix> is understood too
        lifted = verification_lock_lift(speaker=speaker, key_prefix=key, address=address,
                                        actor=Actor.cli("lift_lock", tenant=owner))
        if not lifted:
            raise CommandError("No verification lock of that speaker matches.")
        self.stdout.write(f"Lifted {lifted} verification lock(s) of speaker {speaker.id}.")
