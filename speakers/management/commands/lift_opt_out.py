"""``python manage.py lift_opt_out EXTERNAL_ID [--tenant SLUG]``: let a person who opted out be enrolled again."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from speakers.audit import Actor
from speakers.services.privacy import opt_out_lift
from speakers.tenancy import tenant_for_command


class Command(BaseCommand):
    help = ("Lift the block an opt-out put on an external id (the person asked to be enrolled again); audited. "
            "Only a keyed hash of blocked ids is stored, so the id must be given exactly.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("external_id")
        parser.add_argument("--tenant", default=None, metavar="SLUG", help="default: the default tenant")

    def handle(self, *args, external_id: str, tenant: str | None, **options) -> None:
        owner = tenant_for_command(tenant)
        if not opt_out_lift(tenant=owner, external_id=external_id, actor=Actor.cli("lift_opt_out", tenant=owner)):
            raise CommandError(f"No opt-out block on that external id in tenant {owner.slug}.")
        self.stdout.write(f"Lifted the opt-out block in tenant {owner.slug}.")
