"""``python manage.py population [--tenant SLUG] [--refresh] [--json]``: the population statistics in force."""
from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from speakers.audit import Actor
from speakers.selectors import population_status
from speakers.services.population import population_refresh
from speakers.tenancy import tenant_for_command


class Command(BaseCommand):
    help = ("Show (or, with --refresh, recompute) the population statistics that re-level a tenant's decisions: "
            "its enrolled speakers scored against each other, no labels (docs/accuracy.md, population adaptation).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", default=None, metavar="SLUG", help="default: the default tenant")
        parser.add_argument("--refresh", action="store_true", help="recompute them now (audited)")
        parser.add_argument("--json", action="store_true", dest="as_json", help="one JSON object instead of lines")

    def handle(self, *args, tenant: str | None, refresh: bool, as_json: bool, **options) -> None:
        chosen = tenant_for_command(tenant)
        if refresh:
            population_refresh(tenant=chosen, actor=Actor.cli("population", tenant=chosen))
        status = population_status(tenant=chosen)
        if as_json:
            self.stdout.write(json.dumps(status))
            return
        self.stdout.write(f"tenant {chosen.slug}: adaptation {'on' if status['enabled'] else 'off'}, in force from "
                          f"{status['min_speakers']} speakers")
        if not status["scales"]:
            self.stdout.write("  not measured yet (it is measured once two speakers are enrolled)")
        for scale, row in status["scales"].items():
            self.stdout.write(
                f"  {scale}: {'in force' if row['in_force'] else 'not in force'}; {row['speakers']} speakers, "
                f"{row['trials']} trials; impostor mean moved {row['shift']:+.4f}, spread x{row['spread']:.3f}"
                f"{' (bounded)' if row['bounded'] else ''}; a 3 s probe against a 6 s voiceprint needs a {scale} score of "
                f"{row['reference_score_before']} -> {row['reference_score_after']}; measured {row['updated_at']}")
