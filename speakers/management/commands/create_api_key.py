"""``python manage.py create_api_key NAME --scopes enroll verify identify manage [--tenant SLUG]``: prints the key once."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers.models import ApiKeyScope
from speakers.services import Actor, api_key_create
from speakers.tenancy import tenant_for_command


class Command(BaseCommand):
    help = "Create an API key and print it (only its hash is stored: this is the only time it is shown)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who or what uses the key, e.g. 'kiosk-1'")
        parser.add_argument("--scopes", nargs="+", required=True, metavar="SCOPE",
                            help=f"one or more of: {', '.join(ApiKeyScope.values)} (space or comma separated)")
        parser.add_argument("--tenant", default=None, metavar="SLUG",
                            help="the tenant the key belongs to and sees (default: the default tenant)")

    def handle(self, *args, name: str, scopes: list[str], tenant: str | None, **options) -> None:
        wanted = sorted({s.strip() for item in scopes for s in item.split(",") if s.strip()})
        unknown = [s for s in wanted if s not in ApiKeyScope.values]
        if unknown or not wanted:
            raise CommandError(f"unknown scope(s) {unknown}; choose from {', '.join(ApiKeyScope.values)}")
        owner = tenant_for_command(tenant)
        api_key, plain = api_key_create(name=name, scopes=wanted, actor=Actor.cli("create_api_key"), tenant=owner)
        self.stderr.write(f"Created API key {api_key.name!r} of tenant {owner.slug} (prefix {api_key.prefix}, scopes "
                          f"{', '.join(api_key.scopes)}). Store it now: it is not shown again.")
        self.stdout.write(plain)
