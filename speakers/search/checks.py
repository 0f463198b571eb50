"""The shared search tier against the database: what differs, and a rebuild (``manage.py rebuild_index``)."""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from ..audit import Actor, audit_record
from ..models import AuditAction
from ..runtime import inference_owner
from .index import SHARED_BACKENDS
from .rows import indexable
from .shared_tier import TierDifference, open_shared_tier


@dataclass(frozen=True)
class SearchIndexReport:
    backend: str
    model_version: str
    indexable: int                        # complete, readable voiceprints of the model version
    collection: str = ""                  # the shared tier's collection ("" for an in-process backend)
    before: TierDifference | None = None  # shared tier: what differed before any rebuild
    after: TierDifference | None = None   # shared tier, after a rebuild
    written: int = 0

    @property
    def shared(self) -> bool:
        return self.backend in SHARED_BACKENDS


def search_index_checks(*, rebuild: bool, actor: Actor) -> list[SearchIndexReport]:
    """:func:`search_index_check` of every model version identify searches: the engine's, and under the fused
    engine ECAPA's (the voiceprints enrolled before fusion, :func:`~.index.part_index`)."""
    versions = (inference_owner.model_version(), *inference_owner.part_model_versions())
    return [search_index_check(model_version=version, rebuild=rebuild, actor=actor) for version in versions]


def search_index_check(*, model_version: str, rebuild: bool, actor: Actor) -> SearchIndexReport:
    """Compare the shared collection of ``model_version`` with the rows and, if ``rebuild``, make it equal to them
    (audited).

    In-process backends hold nothing to compare or rebuild: each worker builds its own index
    from the rows at start and follows the change log.
    """
    required_s = settings.VOICEPRINT_ENROLL_TARGET_SPEECH_S
    backend = settings.VOICEPRINT_INDEX_BACKEND
    if backend not in SHARED_BACKENDS:
        return SearchIndexReport(backend=backend, model_version=model_version,
                                 indexable=indexable(model_version, required_s).count())
    # (Not closed after use: pymilvus shares one connection between the clients of a URI in a process.)
    tier = open_shared_tier(model_version, required_s)
    before = tier.compare()
    if not rebuild:
        return SearchIndexReport(backend=backend, model_version=model_version, indexable=before.rows,
                                 collection=tier.name, before=before)
    written = tier.rebuild()
    after = tier.compare()
    audit_record(actor=actor, action=AuditAction.INDEX_REBUILD,
                 detail={"collection": tier.name, "model_version": model_version, "missing": len(before.missing),
                         "extra": len(before.extra), "stale": len(before.stale), "written": written})
    return SearchIndexReport(backend=backend, model_version=model_version, indexable=before.rows, collection=tier.name,
                             before=before, after=after, written=written)
