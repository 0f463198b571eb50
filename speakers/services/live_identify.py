"""Live identification: who among the tenant's enrolled speakers is speaking now, on a rolling window.

``/ws/v1/stream-identify`` (docs/streaming.md): the framing, speech detection, windows, limits and
refusals of ``/ws/v1/stream-verify`` (:class:`~speakers.services.streaming.StreamSession`), without a
reference: each window due (the newest ``window_s`` of net speech, every ``hop_s`` of new speech) is
embedded on the inference owner and identified among the caller's tenant's enrolled voices with
identify's search and open-set rule (:func:`~speakers.services.decisions.probe_identify`): a name
only when the best candidate passes its threshold and leads the runner-up by the margin, else
nobody (``match: null`` and the reason). A window that spans a change of speaker mixes two voices:
it is most often nobody, which is the honest answer.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from inference import EmbeddingResult

from ..audit import Actor, audit_record
from ..exceptions import StreamMessageInvalid
from ..models import AuditAction
from ..runtime import inference_owner
from .decisions import IdentifyProbe, probe_identify
from .lockout import locked_speaker_ids
from .streaming import StreamLimits, StreamSession, StreamStart, Window, stream_start_parse

# Candidates shown per window (best first); the rule always looks at the runner-up too.
LIVE_TOP_K = 3


class IdentifySession(StreamSession):
    """One live PCM stream identified window by window (no reference, no speaker in the start message)."""

    needs_reference = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.identified: list[dict[str, Any] | None] = []  # per scored window: the match, or None

    def ready_message(self, **_: Any) -> dict[str, Any]:
        message = super().ready_message()
        for field in ("reference", "speaker_id", "display_name", "reference_speech_s"):
            message.pop(field, None)
        return message

    def identified_window(self, window: Window, answer: dict[str, Any]) -> list[dict[str, Any]]:
        self.identified.append(answer["match"])
        return [{"type": "speaker", "seq": window.seq, **answer, "speech_s": window.speech_s,
                 "window_speech_s": window.window_speech_s, "audio_s": window.audio_s,
                 "speech_level_dbfs": window.level_dbfs,
                 "latency_ms": round((time.monotonic() - window.taken_at) * 1000.0, 1)}]

    def summary_message(self) -> dict[str, Any]:
        named = Counter(m["speaker_id"] for m in self.identified if m is not None)
        who = {m["speaker_id"]: {k: m[k] for k in ("speaker_id", "external_id", "display_name")}
               for m in self.identified if m is not None}
        return {"type": "summary", "windows": len(self.identified),
                "unmatched_windows": sum(m is None for m in self.identified),
                "speakers": [{**who[s], "windows": n} for s, n in named.most_common()],
                "speech_s": round(self.stream.speech_s, 3), "audio_s": round(self.stream.audio_s, 3),
                "duration_s": round(time.monotonic() - self.started_at, 3)}


def stream_identify_start(message: Any, limits: StreamLimits) -> StreamStart:
    """The start message of a live identification: as stream-verify's, without speaker_id or reference_speech_s."""
    if isinstance(message, dict):
        for field in ("speaker_id", "reference_speech_s"):
            if field in message:
                raise StreamMessageInvalid(f"{field} is not for identification: it compares with every enrolled "
                                           "speaker.", field=field)
    return stream_start_parse(message, limits)


def stream_identify_window(*, window: Window, actor: Actor, asnorm: bool | None,
                           embed: Callable[[np.ndarray, int], EmbeddingResult] | None = None) -> dict[str, Any]:
    """In a worker thread: embed ``window`` on the inference owner and identify it (nothing recorded).

    Raises the engine's audio errors (a window without usable speech: reported, the session goes on).
    """
    probe: EmbeddingResult = (embed or inference_owner.embed_waveform)(window.samples, window.sample_rate)
    # as identify: a speaker the caller is locked out of is left out (no scores for a locked speaker)
    found, verdict, scale, gallery = probe_identify(probe=IdentifyProbe.of(probe), tenant=actor.tenant,
                                                    top_k=LIVE_TOP_K, asnorm=asnorm,
                                                    locked=locked_speaker_ids(actor=actor))
    candidates = [{"speaker_id": str(found.speakers[i].id), "external_id": found.speakers[i].external_id,
                   "display_name": found.speakers[i].display_name, "score": float(verdict.llrs[i]),
                   "raw_score": float(found.raws[i]), "model_version": found.model_versions[i]}
                  for i in verdict.order[:LIVE_TOP_K]]
    return {"match": candidates[0] if verdict.matched else None, "candidates": candidates,
            "threshold": verdict.threshold if candidates else None, "margin": verdict.margin,
            "runner_up_score": verdict.runner_up, "no_match_reason": verdict.no_match_reason,
            "matched_by": verdict.matched_by, "gallery": gallery, "score_normalisation": scale.name}


def stream_identify_record(*, session: IdentifySession, actor: Actor) -> None:
    """At the end of a session that identified windows: one audit event (identify, stream) naming who was heard."""
    if not session.identified:
        return
    named = sorted({m["speaker_id"] for m in session.identified if m is not None})
    audit_record(actor=actor, action=AuditAction.IDENTIFY, decision="match" if named else "no_match",
                 detail={"stream": True, "windows": len(session.identified), "named": named,
                         "unmatched_windows": sum(m is None for m in session.identified),
                         "speech_s": round(session.stream.speech_s, 3)})
