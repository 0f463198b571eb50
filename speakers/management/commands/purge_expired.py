"""``python manage.py purge_expired [--dry-run]``: delete what each tenant's retention periods say is expired."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from speakers.audit import Actor
from speakers.services.privacy import purge_expired


class Command(BaseCommand):
    help = ("Delete every speaker not used (enrolled, accepted by verify, matched by identify) for its tenant's "
            "retention period, and audit events older than theirs. In batches; safe on many machines at once; "
            "the production topology runs it daily.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
        parser.add_argument("--batch-size", type=int, default=200)

    def handle(self, *args, dry_run: bool, batch_size: int, **options) -> None:
        report = purge_expired(actor=Actor.cli("purge_expired"), dry_run=dry_run, batch_size=max(1, batch_size))
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {report.speakers} expired speaker(s) and {report.audit_events} audit event(s).")
