"""``python manage.py rebuild_index [--check]``: the shared search tier against the database."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.vector_index.base import BackendUnavailable
from speakers.search.checks import search_index_checks
from speakers.search.shared_tier import TierDifference
from speakers.services import Actor

_SHOWN = 10  # ids listed per kind of difference


def _describe(difference: TierDifference) -> list[str]:
    lines = [f"{difference.rows} voiceprints in the database, {difference.stored} in the collection"]
    for kind in ("missing", "extra", "stale"):
        ids = getattr(difference, kind)
        if ids:
            shown = ", ".join(str(i) for i in ids[:_SHOWN]) + (", ..." if len(ids) > _SHOWN else "")
            lines.append(f"{kind}: {len(ids)} ({shown})")
    return lines


class Command(BaseCommand):
    help = ("Compare the shared search tier (VOICEPRINT_INDEX_BACKEND=milvus) with the encrypted voiceprints in "
            "the database and rebuild it from them: missing and stale voiceprints are written, keys no row "
            "holds are removed; under the fused engine ECAPA's collection (voiceprints enrolled before fusion) "
            "too. With --check, only report (exit status 1 if anything differs).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="report what differs; change nothing")

    def handle(self, *args, check: bool, **options) -> None:
        try:
            reports = search_index_checks(rebuild=not check, actor=Actor.cli("rebuild_index"))
        except BackendUnavailable as exc:
            local = settings.VOICEPRINT_MILVUS_URI.endswith(".db")
            raise CommandError(f"{exc}" + (" (a local milvus-lite file is opened by one process at a time: stop the "
                                            "server using it first)" if local else "")) from exc
        if not reports[0].shared:
            searchable = " and ".join(f"{r.indexable} voiceprints of {r.model_version}" for r in reports)
            self.stdout.write(f"VOICEPRINT_INDEX_BACKEND={reports[0].backend}: each worker process builds its own "
                              f"index from the database at start and follows the change log, so there is no "
                              f"shared tier to rebuild ({searchable} are searchable).")
            return
        differs = []
        for report in reports:  # the engine's collection, then ECAPA's under the fused engine
            self._report(report, check)
            if check and not report.before.in_step:
                differs.append(report.collection)
        if differs:
            raise CommandError(f"the collection differs from the database ({', '.join(differs)}): run manage.py "
                               "rebuild_index", returncode=1)

    def _report(self, report, check: bool) -> None:
        self.stdout.write(f"collection {report.collection} (model {report.model_version}):")
        for line in _describe(report.before):
            self.stdout.write(f"  {line}")
        if check:
            if report.before.in_step:
                self.stdout.write("  in step")
            return
        self.stdout.write(f"rebuilt: {report.written} voiceprints written or removed; now:")
        for line in _describe(report.after):
            self.stdout.write(f"  {line}")
        if not report.after.in_step:  # a write landed meanwhile: the next catch-up applies it
            self.stdout.write("  (changes made during the rebuild are applied by the next search)")
        else:
            self.stdout.write("  in step")
