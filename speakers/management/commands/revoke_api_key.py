"""``python manage.py revoke_api_key PREFIX|KEY|NAME [--all]``: revoke API keys (audited; they stop working at once)."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers import crypto
from speakers.models import ApiKey
from speakers.services import Actor, api_key_revoke


class Command(BaseCommand):
    help = ("Revoke an API key, named by its prefix (as list_api_keys shows it), the whole key, or its name "
            "(a name shared by several active keys needs --all).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("key", metavar="PREFIX|KEY|NAME")
        parser.add_argument("--all", action="store_true", help="revoke every active key with this name")

    def handle(self, *args, key: str, all: bool, **options) -> None:
        prefix = crypto.api_key_prefix(key) or key
        matches = list(ApiKey.objects.filter(prefix=prefix))
        if not matches:
            matches = list(ApiKey.objects.filter(name=key, revoked=False).order_by("created_at"))
            if len(matches) > 1 and not all:
                listed = ", ".join(k.prefix for k in matches)
                raise CommandError(f"{len(matches)} active keys are named {key!r} (prefixes {listed}): give a "
                                   "prefix, or --all to revoke them all")
        if not matches:
            raise CommandError(f"no API key with the prefix or active name {key!r} (see: manage.py list_api_keys)")
        for api_key in matches:
            was_revoked = api_key.revoked
            api_key_revoke(api_key=api_key, actor=Actor.cli("revoke_api_key"))
            self.stdout.write(f"{api_key.name} ({api_key.prefix}): {'already revoked' if was_revoked else 'revoked'}")
