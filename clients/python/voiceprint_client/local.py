"""``voiceprint compare A B --local``: the server's compare decision, computed in this process, with no server.

The project's engine (its ``inference`` package, with MindSpore) is imported only here and only then; it is
there when the command runs from the project's checkout with the project's venv. The steps are the server's
(``speakers/services/decisions.py``: ``recordings_compare`` -> ``pair_decide``):

1. each file is embedded by the prepared model (``VOICEPRINT_MODEL_DIR``, default ``var/model``) under the
   server's default audio limits, and must pass the probe quality gate (``inference.gates``);
2. the cosine of the two embeddings and the quality of both sides (``side_quality``: net speech, SNR,
   bandwidth) go through the calibration shipped for the model version (``shipped_calibration``,
   ``Calibration.verify`` on the cosine scale, at the default false-accept target);
3. accepted when ``score >= threshold`` (``inference.decisions.accepts``).

A server with a site calibration (``manage.py calibrate``) or other limits in its environment decides with
those; this command uses the shipped defaults (the server's without configuration), and says so.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from .errors import ServiceUnavailable, VoiceprintError, error_class, error_from_json
from .models import CompareResult

# The server's defaults (voiceprint_project/settings.py; tests/test_client_local.py checks they agree):
# audio limits (VOICEPRINT_MIN_AUDIO_S, _MAX_AUDIO_S, _MAX_UPLOAD_BYTES, _MAX_CHANNELS, _MAX_DECODED_VALUES),
AUDIO_LIMITS: dict[str, Any] = {"min_duration_s": 0.5, "max_duration_s": 60.0, "max_bytes": 10 * 1024 * 1024,
                                "max_channels": 8, "max_decoded_values": 6_000_000}
# the probe quality gate (VOICEPRINT_MAX_CLIPPING_RATIO, _MIN_SPEECH_LEVEL_DBFS, _PROBE_MIN_SNR_DB, _PROBE_MIN_SPEECH_S),
PROBE_GATE: dict[str, float] = {"max_clipping_ratio": 0.05, "min_speech_level_dbfs": -48.0, "min_snr_db": 0.0,
                                "min_speech_s": 1.0}
# and the false-accept target (VOICEPRINT_FAR_TARGET).
FAR_TARGET = 0.01
NOT_IMPORTABLE = ("--local runs the voiceprint engine in this process: it needs the project's `inference` package "
                  "and MindSpore. Run it from the project's checkout with the project's venv "
                  "(`.venv/bin/voiceprint compare --local A B`), or compare through a server without --local")


class LocalEngineUnavailable(ServiceUnavailable):
    """The engine cannot run here (not importable, or no prepared model)."""

    code = "local_engine_unavailable"


def _import_engine():
    """The project's engine modules; the checkout is found from the current directory up when not on the path."""
    try:
        import inference  # noqa: F401
    except ImportError:
        for folder in [Path.cwd(), *Path.cwd().parents]:
            if (folder / "inference" / "__init__.py").is_file() and (folder / "manage.py").is_file():
                sys.path.insert(0, str(folder))
                break
    try:
        from inference import AudioConfig, EngineConfig, InferenceError, ModelError, cosine
        from inference.decisions import accepts
        from inference.embedder import Embedder
        from inference.gates import GateLimits, gate_refusal
        from inference.quality_calibration import SideQuality, shipped_calibration, shipped_calibration_path
    except ImportError as exc:
        raise LocalEngineUnavailable(f"{NOT_IMPORTABLE} ({exc})") from exc
    return {"AudioConfig": AudioConfig, "EngineConfig": EngineConfig, "InferenceError": InferenceError,
            "ModelError": ModelError, "cosine": cosine, "accepts": accepts, "Embedder": Embedder,
            "GateLimits": GateLimits, "gate_refusal": gate_refusal, "SideQuality": SideQuality,
            "shipped_calibration": shipped_calibration, "shipped_calibration_path": shipped_calibration_path}


def default_model_dir() -> Path:
    return Path(os.environ.get("VOICEPRINT_MODEL_DIR") or "var/model")


def local_compare(reference: str | os.PathLike[str], test: str | os.PathLike[str], *,
                  model_dir: str | os.PathLike[str] | None = None, far: float = FAR_TARGET) -> CompareResult:
    """What ``POST /api/v1/compare`` answers for these two files (cosine scale), computed here."""
    started = time.perf_counter()
    engine = _import_engine()
    directory = Path(model_dir) if model_dir is not None else default_model_dir()
    try:
        embedder = engine["Embedder"].load(engine["EngineConfig"](model_dir=directory,
                                                                  audio=engine["AudioConfig"](**AUDIO_LIMITS)))
    except engine["ModelError"] as exc:
        raise LocalEngineUnavailable(f"the speaker model in {directory} cannot be loaded: {exc.message} (prepare it "
                                     "from the project's checkout with `make model`, or set VOICEPRINT_MODEL_DIR)",
                                     detail={"model_dir": str(directory), "model_error": exc.code}) from exc
    except ImportError as exc:  # MindSpore missing from this venv
        raise LocalEngineUnavailable(f"{NOT_IMPORTABLE} ({exc})") from exc
    calibration = engine["shipped_calibration"](embedder.model_version)
    if calibration is None:
        raise LocalEngineUnavailable(f"no calibration is shipped for the model {embedder.model_version}",
                                     detail={"model_version": embedder.model_version})
    limits = engine["GateLimits"](**PROBE_GATE)
    sides = [_probe(engine, embedder, limits, Path(path), field)
             for path, field in ((reference, "reference"), (test, "test"))]
    (ref, ref_quality), (probe, probe_quality) = sides
    raw = float(engine["cosine"](ref.vector, probe.vector))
    verdict = calibration.verify(scale="cosine", score=raw, enroll=ref_quality, probe=probe_quality, far=far)
    accepted = engine["accepts"](verdict.llr, verdict.threshold)
    source = f"shipped:{engine['shipped_calibration_path'](embedder.model_version).name}"
    return CompareResult.from_json({
        "similarity": raw, "score": verdict.llr, "raw_score": raw, "score_normalisation": "none",
        "threshold": verdict.threshold, "accepted": accepted, "model_version": embedder.model_version,
        "processing_time_ms": round((time.perf_counter() - started) * 1000, 1), "calibration_source": source,
        "far_target": far, "engine": "local"})


def _probe(engine: dict[str, Any], embedder: Any, limits: Any, path: Path, field: str):
    """One file embedded and gated as the server gates a probe; its quality as the calibration reads it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise VoiceprintError(f"{path}: {exc.strerror or exc}", code="file_unreadable",
                              detail={"filename": str(path), "field": field}) from exc
    try:
        result = embedder.embed(data)
    except engine["InferenceError"] as exc:
        raise error_from_json({"code": exc.code, "message": exc.message,
                               "detail": {**exc.detail, "field": field, "filename": path.name}}) from exc
    refusal = engine["gate_refusal"](clipping_ratio=float(result.quality.clipping_ratio),
                                     speech_level_dbfs=float(result.quality.speech_level_dbfs),
                                     snr_db=float(result.quality.snr_db), speech_s=float(result.speech_s),
                                     limits=limits)
    if refusal is not None:
        raise _gate_error(refusal, field=field, filename=path.name)
    quality = engine["SideQuality"](speech_s=float(result.speech_s), snr_db=float(result.quality.snr_db),
                                    bandwidth_hz=float(result.quality.bandwidth_hz))
    return result, quality


def _gate_error(refusal: Any, *, field: str, filename: str) -> VoiceprintError:
    """The server's error for a gate refusal (speakers/services/recordings.py: same code, figures and names)."""
    figures = {"audio_clipped": {"clipping_ratio": round(refusal.value, 4), "max_clipping_ratio": refusal.limit},
               "audio_too_quiet": {"speech_level_dbfs": round(refusal.value, 1), "min_speech_level_dbfs": refusal.limit},
               "audio_too_noisy": {"snr_db": round(refusal.value, 1), "min_snr_db": refusal.limit},
               "insufficient_speech": {"speech_s": round(refusal.value, 3), "min_speech_s": refusal.limit}}
    messages = {"audio_clipped": "The recording is clipped (too loud); record again with a lower input level.",
                "audio_too_quiet": "The speech in the recording is too quiet; speak closer to the microphone or "
                                   "raise its level.",
                "audio_too_noisy": "The recording is too noisy for a reliable decision; record again somewhere "
                                   "quieter.",
                "insufficient_speech": f"The recording holds {refusal.value:.2f} s of speech; at least "
                                       f"{refusal.limit:.2f} s is needed to verify or identify."}
    cls = error_class(refusal.code, 422)
    return cls(messages.get(refusal.code, refusal.code), code=refusal.code, status=422,
               detail={**figures.get(refusal.code, {}), "field": field, "filename": filename})
