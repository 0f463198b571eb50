"""``python manage.py list_locks [--tenant SLUG] [--json]``: the verification locks in force."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from speakers.selectors import verification_lock_list
from speakers.tenancy import tenant_for_command


class Command(BaseCommand):
    help = ("List the verification locks in force: which API key or client address is locked out of which "
            "speaker, and until when (lift one with `manage.py lift_lock`).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", default=None, metavar="SLUG", help="default: every tenant")
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON array instead of a table")

    def handle(self, *args, tenant: str | None, as_json: bool, **options) -> None:
        now = timezone.now()
        rows = [{"tenant": lock.speaker.tenant.slug, "speaker_id": str(lock.speaker_id),
                 "display_name": lock.speaker.display_name,
                 "api_key": lock.api_key.prefix if lock.api_key_id else None, "client_address": lock.client_address,
                 "locked_until": lock.locked_until.isoformat(),
                 "remaining_s": round((lock.locked_until - now).total_seconds(), 1),
                 "lockouts": lock.lockouts, "rejections": lock.rejections}
                for lock in verification_lock_list(tenant=tenant_for_command(tenant) if tenant else None)]
        if as_json:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stderr.write("No verification locks in force.")
            return
        table = [("TENANT", "SPEAKER", "NAME", "KEY", "ADDRESS", "REMAINING", "LOCKOUTS")] + [
            (r["tenant"], r["speaker_id"], r["display_name"], r["api_key"] or "-", r["client_address"] or "-",
             f"{r['remaining_s']:.0f} s", str(r["lockouts"])) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
