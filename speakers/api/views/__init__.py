"""HTTP API, version 1. Views are thin: validate, call one selector or service, serialise.

Authentication (X-API-Key) and scopes are checked before the body is read, so an
unauthorised upload is refused without being parsed. Uploads arrive in memory
(speakers/uploads.py) and are handed to the services as bytes. One module per resource.
"""
from .decisions import (
           BatchVerifyApi,
           ClassicBatchVerifyApi,
           ClassicVerifySpeakerApi,
           CompareApi,
           IdentifyApi,
           VerifyApi,
)
from .diarization import DiarizeApi
from .health import HealthApi, ReadinessApi
from .policy import PolicyApi
from .speakers import (
           EnrollmentDetailApi,
           SpeakerCollectionApi,
           SpeakerConsentApi,
           SpeakerDetailApi,
           SpeakerEnrollApi,
           SpeakerExportApi,
           SpeakerOptOutApi,
)
from .watchlist import WatchlistCollectionApi, WatchlistDetailApi

__all__ = ["BatchVerifyApi", "DiarizeApi", "ClassicBatchVerifyApi", "ClassicVerifySpeakerApi", "CompareApi", "IdentifyApi",
           "VerifyApi", "PolicyApi", "EnrollmentDetailApi", "HealthApi", "ReadinessApi", "SpeakerCollectionApi",
           "SpeakerDetailApi", "SpeakerEnrollApi", "SpeakerConsentApi", "SpeakerExportApi", "SpeakerOptOutApi", "WatchlistCollectionApi", "WatchlistDetailApi"]
