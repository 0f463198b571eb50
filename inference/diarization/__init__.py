"""Who spoke when: a long recording segmented by speaker, each speaker a cluster to identify.

``diarize(samples, rate, embed_windows)`` finds the speakers (their number is found, or given)
and their turns; :func:`name_clusters` (or :func:`name_verdicts`, from verdicts already given) then
names each cluster after an enrolled speaker with the caller's calibrated scores, one-to-one, or
``unknown-k``. Modules by concern: :mod:`.windows`
(where the windows lie), :mod:`.clustering` (agglomerative, the stopping rule),
:mod:`.refinement` (frames, islands, turns), :mod:`.naming` (open-set naming), :mod:`.pipeline`
(the orchestrator).
"""
from __future__ import annotations

from inference.diarization.clustering import ClusteringFigures
from inference.diarization.naming import ClusterName, ClusterVerdict, name_clusters, name_verdicts
from inference.diarization.pipeline import (
    Diarization,
    EmbedWindows,
    SpeakerCluster,
    WindowEmbeddings,
    diarize,
    diarize_embedded,
    embed_recording,
    speech_frames,
    voice_features,
    voiceprint_by,
)

__all__ = [
    "ClusterName",
    "ClusterVerdict",
    "ClusteringFigures",
    "Diarization",
    "EmbedWindows",
    "SpeakerCluster",
    "WindowEmbeddings",
    "diarize",
    "diarize_embedded",
    "embed_recording",
    "speech_frames",
    "name_clusters",
    "name_verdicts",
    "voice_features",
    "voiceprint_by",
]
