"""``python manage.py create_tenant SLUG [--name ...] [--retention-days N]``: a new tenant with its own data key."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.text import slugify

from speakers.audit import Actor
from speakers.exceptions import ApplicationError
from speakers.services.tenants import tenant_create


class Command(BaseCommand):
    help = ("Create a tenant (an application, customer or department): its speakers, keys and everything else are "
            "seen only through its own API keys (`create_api_key NAME --tenant SLUG --scopes ...`).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug", help="short name: letters, digits, - and _")
        parser.add_argument("--name", default="", help="a longer name")
        parser.add_argument("--retention-days", type=int, default=None,
                            help="delete a speaker not used for this many days (default 1095: 3 years)")
        parser.add_argument("--audit-retention-days", type=int, default=None,
                            help="delete audit events older than this many days (default 1095)")

    def handle(self, *args, slug: str, name: str, retention_days: int | None, audit_retention_days: int | None,
               **options) -> None:
        if slugify(slug) != slug or not slug:
            raise CommandError(f"{slug!r} is not a slug (letters, digits, - and _; lower case)")
        for value, flag in ((retention_days, "--retention-days"), (audit_retention_days, "--audit-retention-days")):
            if value is not None and value < 1:
                raise CommandError(f"{flag} must be at least 1")
        try:
            tenant = tenant_create(slug=slug, name=name, actor=Actor.cli("create_tenant"),
                                   retention_days=retention_days, audit_retention_days=audit_retention_days)
        except ApplicationError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        self.stdout.write(f"Created tenant {tenant.slug} (retention {tenant.retention_days} days of inactivity). "
                          f"Give it a key: python manage.py create_api_key NAME --tenant {tenant.slug} --scopes ...")
