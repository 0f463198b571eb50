"""``python manage.py delete_tenant SLUG --yes``: destroy a tenant's data key, then everything of it."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers.audit import Actor
from speakers.services.tenants import tenant_delete
from speakers.tenancy import tenant_for_command


class Command(BaseCommand):
    help = ("Delete a tenant: its data key first (every ciphertext of it becomes unreadable), then its speakers, "
            "enrollments, voiceprints in every search index, watchlist, calibrations, API keys and audit events.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")

    def handle(self, *args, slug: str, yes: bool, **options) -> None:
        if not yes:
            raise CommandError("This deletes every voiceprint of the tenant for good; run again with --yes.")
        deleted = tenant_delete(tenant=tenant_for_command(slug), actor=Actor.cli("delete_tenant"))
        self.stdout.write(f"Deleted tenant {deleted.slug}: data key destroyed, {deleted.speakers} speaker(s) removed.")
