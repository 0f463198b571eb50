"""``python manage.py list_api_keys [--active] [--json]``: the API keys, never their secrets (only hashes are stored)."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from speakers.models import ApiKey


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


class Command(BaseCommand):
    help = "List API keys: name, prefix (the public part shown in vp_<prefix>.…), scopes, use and revocation."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--active", action="store_true", help="only keys that are not revoked")
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON array instead of a table")

    def handle(self, *args, active: bool, as_json: bool, **options) -> None:
        keys = ApiKey.objects.select_related("tenant").order_by("created_at", "pk")
        if active:
            keys = keys.filter(revoked=False)
        rows = [{"name": k.name, "tenant": k.tenant.slug, "prefix": k.prefix, "scopes": list(k.scopes),
                 "created_at": k.created_at.isoformat(), "last_used_at": k.last_used_at and k.last_used_at.isoformat(),
                 "revoked_at": k.revoked_at and k.revoked_at.isoformat() if k.revoked else None,
                 "status": "revoked" if k.revoked else "active", "_key": k} for k in keys]
        if as_json:
            self.stdout.write(json.dumps([{k: v for k, v in r.items() if k != "_key"} for r in rows]))
            return
        if not rows:
            self.stderr.write("No API keys. Create one with: python manage.py create_api_key NAME --scopes ...")
            return
        table = [("NAME", "TENANT", "PREFIX", "SCOPES", "CREATED", "LAST USED", "STATUS")] + [
            (r["name"], r["tenant"], r["prefix"], ",".join(r["scopes"]), _when(r["_key"].created_at),
             _when(r["_key"].last_used_at),
             f"revoked {_when(r['_key'].revoked_at)}" if r["status"] == "revoked" else "active") for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

