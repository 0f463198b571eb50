"""Two networks, one voice: ECAPA-TDNN and CAM++ from one decode, fused into one vector.

:class:`FusedEmbedder` is an :class:`~inference.embedder.Embedder` (the same pipeline, the same
methods: the service and the tools use either without knowing which) whose steps run both
networks on one :class:`~inference.embedder.PreparedAudio` (one decode, one VAD, one quality gate):

* :meth:`~FusedEmbedder.features`: each network's own front end (SpeechBrain's fbank for ECAPA,
  Kaldi's for CAM++), cut into windows of at most 20 s; window ``i`` of both is one
  :class:`FusedWindow`, one job of the caller's queue.
* :meth:`~FusedEmbedder.embed_features`: both networks on each window, ``(N, 384)`` rows (each
  model's unit vector side by side; a side is zeros where that network has fewer windows).
* :meth:`~FusedEmbedder.pool`: each model's windows averaged as that model alone would, then the
  two unit vectors weighted: ``[sqrt(w) e, sqrt(1 - w) c]``, a unit vector whose cosine with
  another is ``w cos_ECAPA + (1 - w) cos_CAM++`` (``w``: ``FusionConfig.ecapa_weight``).

So every later step (voiceprints as averaged vectors, the FAISS/Milvus index by inner product,
the calibration of a cosine, the population adaptation) is the fused score's, unchanged; each
model's 192-d vector is the slice it fills (:func:`model_parts`). The fused model version names
both networks and the weight: voiceprints made otherwise are another model's.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from inference import guard
from inference.campplus_model import CampplusModel
from inference.config import EngineConfig
from inference.embedder import Embedder, EmbeddingResult, PreparedAudio
from inference.scoring import average_embeddings, l2_normalise

logger = logging.getLogger(__name__)


class FusedWindow(NamedTuple):
    """Window ``i`` of one recording for both networks: ``(T, 80)`` features each, or None where that
    network's front end made fewer windows (their frame counts differ by two)."""

    ecapa: np.ndarray | None
    campplus: np.ndarray | None

    @property
    def shape(self) -> tuple[int, int]:
        """The longer side's shape: what the window costs in frames of audio (the service's fair queue)."""
        sides = [a for a in self if a is not None]
        return max(sides, key=lambda a: a.shape[0]).shape


def fused_version(ecapa_version: str, campplus_version: str, ecapa_weight: float) -> str:
    """The model version of a fused vector: both networks and the weight."""
    return f"{ecapa_version}+{campplus_version}+w{ecapa_weight:.2f}"


def fuse(ecapa: np.ndarray, campplus: np.ndarray, ecapa_weight: float) -> np.ndarray:
    """A recording's fused vector from each network's unit vector: ``[sqrt(w) e, sqrt(1 - w) c]``, float32."""
    return np.concatenate([np.float32(math.sqrt(ecapa_weight)) * ecapa,
                           np.float32(math.sqrt(1.0 - ecapa_weight)) * campplus]).astype(np.float32)


def model_parts(vectors: np.ndarray, config: EngineConfig) -> dict[str, np.ndarray]:
    """Each network's unit vectors out of fused ``(..., 384)`` vectors (or one model's ``(..., 192)``)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if not config.fusion.fused:
        return {"ecapa": l2_normalise(vectors)}
    size = config.model.embedding_size
    return {"ecapa": l2_normalise(vectors[..., :size]), "campplus": l2_normalise(vectors[..., size:])}


def _pooled(rows: np.ndarray) -> np.ndarray:
    """One network's window rows (zeros where it had no window) -> its unit vector for the recording."""
    used = rows[np.any(rows != 0.0, axis=1)]
    return used[0] if len(used) == 1 else average_embeddings(used)


class FusedEmbedder(Embedder):
    """ECAPA-TDNN and CAM++ on MindSpore, fused. Build it with :meth:`load` (or :func:`load_engine`)."""

    def __init__(self, config: EngineConfig, ecapa: Embedder, campplus: CampplusModel) -> None:
        version = fused_version(ecapa.model_version, campplus.model_version, config.fusion.ecapa_weight)
        super().__init__(config, network=None, manifest={"version": version, "models": {
            "ecapa": ecapa.manifest, "campplus": campplus.manifest}})
        self.ecapa = ecapa
        self.campplus = campplus
        self.load_seconds = ecapa.load_seconds + campplus.load_seconds

    @classmethod
    def load(cls, config: EngineConfig = EngineConfig(), warm: bool = True, verify_hash: bool = True) -> FusedEmbedder:
        """Load both prepared networks (once per process, after any fork); raises what each load raises."""
        ecapa = Embedder.load(config, warm=warm, verify_hash=verify_hash)
        campplus = CampplusModel.load(config, warm=warm, verify_hash=verify_hash)
        fused = cls(config, ecapa, campplus)
        logger.info("fused %s", fused.model_version)
        return fused

    def speech_features(self, speech: np.ndarray) -> list[FusedWindow]:  # type: ignore[override]
        """Both front ends on the speech, window by window (numpy only: any thread)."""
        ecapa = self.ecapa.speech_features(speech)
        campplus = self.campplus.speech_features(speech)
        count = max(len(ecapa), len(campplus))
        return [FusedWindow(ecapa[i] if i < len(ecapa) else None, campplus[i] if i < len(campplus) else None)
                for i in range(count)]

    def embed_features(self, utterances: Sequence[FusedWindow]) -> np.ndarray:  # type: ignore[override]
        """Both networks on each window -> ``(N, 384)``: ECAPA's unit row beside CAM++'s (zeros for a missing side)."""
        size = self.config.model.embedding_size
        out = np.zeros((len(utterances), self.config.embedding_size), dtype=np.float32)
        for i, window in enumerate(utterances):
            if window.ecapa is not None:
                out[i, :size] = self.ecapa.embed_features([window.ecapa])[0]
            if window.campplus is not None:
                out[i, size:] = self.campplus.embed_features([window.campplus])[0]
        return out

    def pool(self, rows: np.ndarray) -> np.ndarray:  # type: ignore[override]
        """One recording's window rows -> its fused unit vector (each network pooled on its own, then weighted)."""
        size = self.config.model.embedding_size
        rows = np.atleast_2d(rows)
        return fuse(_pooled(rows[:, :size]), _pooled(rows[:, size:]), self.config.fusion.ecapa_weight)

    def finish(self, prepared: PreparedAudio, vector: np.ndarray) -> EmbeddingResult:
        """The result record; DegenerateAudioError when either network's vector sits at its collapse point."""
        parts = model_parts(vector, self.config)
        guard.check_embedding(parts["ecapa"], self.ecapa.collapse_point(), self.config.guard)
        self.campplus.check(parts["campplus"])
        return EmbeddingResult(vector=vector, model_version=self.model_version, duration_s=prepared.duration_s,
                               speech_s=prepared.speech_s, quality=prepared.quality)

    def warmup(self) -> None:
        self.ecapa.warmup()
        self.campplus.warmup()

    def collapse_point(self) -> np.ndarray:
        """Both networks' collapse points, weighted like a recording's vector."""
        return self.pool(np.concatenate([self.ecapa.collapse_point(), self.campplus.collapse_point()])[None, :])

    @property
    def compile_seconds(self) -> float:  # type: ignore[override]
        return self.ecapa.compile_seconds + self.campplus.compile_seconds

    @compile_seconds.setter
    def compile_seconds(self, value: float) -> None:  # Embedder.__init__ sets it; the parts keep their own
        pass

    @property
    def ready(self) -> bool:
        return self.ecapa.ready and self.campplus.ready

    @property
    def compiled_shapes(self) -> frozenset[int | None]:
        return self.ecapa.compiled_shapes & frozenset({None} if self.campplus.ready else ())


def load_engine(config: EngineConfig = EngineConfig(), warm: bool = True, verify_hash: bool = True) -> Embedder:
    """The engine ``config.fusion.models`` asks for: :class:`Embedder` (ECAPA) or :class:`FusedEmbedder`."""
    engine = FusedEmbedder if config.fusion.fused else Embedder
    return engine.load(config, warm=warm, verify_hash=verify_hash)


__all__ = ["FusedEmbedder", "FusedWindow", "fuse", "fused_version", "load_engine", "model_parts"]
