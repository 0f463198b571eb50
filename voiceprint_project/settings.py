"""Settings of the voiceprint service: read from the environment here and nowhere else.

Every knob is one environment variable, parsed by a small typed helper that refuses bad
values at start-up (a typo in a threshold must not become a silent default). Secrets may
also come from a file (``<NAME>_FILE``), which is how Docker/Kubernetes secrets arrive.

``VOICEPRINT_ENV=production`` turns on the production guard: the service refuses to start
without an encryption key, with the development secret key, or with DEBUG on, in one message
that names every problem (no traceback). DEBUG is off
unless ``DJANGO_DEBUG=true`` asks for it, in either mode, and even then no page shows a
setting or the environment (``speakers.api.errors.NoSecretsReporterFilter``).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


# --- typed helpers ---------------------------------------------------------------------

def env_str(name: str, default: str | None = None) -> str | None:
    """The variable's value, or the content of the file named by ``<name>_FILE``, or ``default``."""
    value = os.environ.get(name)
    if value is not None and value != "":
        return value
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}") from exc
    return default


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from exc
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} must be >= {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None,
              maximum: float | None = None) -> float:
    value = env_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from exc
    if number != number or (minimum is not None and number < minimum) or (
            maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name}={number} must be within [{minimum}, {maximum}]")
    return number


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    value = env_str(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.replace("\n", ",").split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """Comma-separated IP addresses or networks (``10.0.0.2,172.18.0.0/16``), each checked; ``0`` means none."""
    values = env_list(name, [])
    if values == ["0"]:  # the old "no proxy" count
        return []
    networks = []
    for value in values:
        if value.isdigit():
            raise ImproperlyConfigured(
                f"{name}={value!r}: a count of proxies is not accepted any more (a client can write hops of its own "
                "into X-Forwarded-For); name each proxy by its IP address or network, e.g. 10.0.0.2,172.18.0.0/16")
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {value!r} is not an IP address or network "
                                       "(e.g. 10.0.0.2 or 172.18.0.0/16)") from exc
    return networks


def env_encryption_keys(name: str) -> list[str]:
    """Comma-separated base64url 32-byte keys, newest first; each is checked here."""
    keys = env_list(name, [])
    for position, key in enumerate(keys):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise ImproperlyConfigured(f"{name}: key #{position + 1} is not base64url") from exc
        if len(raw) != 32:
            raise ImproperlyConfigured(
                f"{name}: key #{position + 1} decodes to {len(raw)} bytes, expected 32 "
                "(generate one with `python manage.py generate_encryption_key`)")
    return keys


# --- mode and secrets --------------------------------------------------------------------

VOICEPRINT_ENV = (env_str("VOICEPRINT_ENV", "development") or "development").lower()
if VOICEPRINT_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"VOICEPRINT_ENV={VOICEPRINT_ENV!r}: use development or production")
PRODUCTION = VOICEPRINT_ENV == "production"

_DEVELOPMENT_SECRET_KEY = "django-insecure-voiceprint-development-only"
# Production refuses to start while any of these is wrong; every problem is collected first, so that one
# message names them all (a person fixing a deployment should not discover them one restart at a time).
_PRODUCTION_PROBLEMS: list[str] = []


def _secret_setting(read, default):
    """``read()``, or (production) ``default`` with the reason recorded when the value cannot be read."""
    if not PRODUCTION:
        return read()
    try:
        return read()
    except ImproperlyConfigured as exc:
        _PRODUCTION_PROBLEMS.append(str(exc))
        return default


SECRET_KEY = _secret_setting(lambda: env_str("DJANGO_SECRET_KEY", _DEVELOPMENT_SECRET_KEY),
                             _DEVELOPMENT_SECRET_KEY) or _DEVELOPMENT_SECRET_KEY
# Off unless asked for: a debug page is a way to read the environment (a DATABASE_URL password).
DEBUG = _secret_setting(lambda: env_bool("DJANGO_DEBUG", default=False), False)
DEFAULT_EXCEPTION_REPORTER_FILTER = "speakers.api.errors.NoSecretsReporterFilter"

# Embedding encryption keys (AES-256-GCM), newest first: the first encrypts, all decrypt.
VOICEPRINT_ENCRYPTION_KEYS = _secret_setting(lambda: env_encryption_keys("VOICEPRINT_ENCRYPTION_KEYS"), [])

if PRODUCTION:
    if SECRET_KEY == _DEVELOPMENT_SECRET_KEY or SECRET_KEY.startswith("django-insecure"):
        _PRODUCTION_PROBLEMS.append(
            "DJANGO_SECRET_KEY is not set: production refuses to start with the default secret key. Set "
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) to a long random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`.")
    elif len(SECRET_KEY) < 32:
        _PRODUCTION_PROBLEMS.append(
            f"DJANGO_SECRET_KEY is {len(SECRET_KEY)} characters: it must be at least 32 in production.")
    if not VOICEPRINT_ENCRYPTION_KEYS and not any("VOICEPRINT_ENCRYPTION_KEYS" in p for p in _PRODUCTION_PROBLEMS):
        _PRODUCTION_PROBLEMS.append(
            "VOICEPRINT_ENCRYPTION_KEYS is not set: production refuses to start without an encryption key. Set "
            "VOICEPRINT_ENCRYPTION_KEYS (or VOICEPRINT_ENCRYPTION_KEYS_FILE); "
            "`python manage.py generate_encryption_key` prints one.")
    if DEBUG:
        _PRODUCTION_PROBLEMS.append("DJANGO_DEBUG is on: it must be off in production.")
    # `manage.py generate_encryption_key` makes the very key production lacks: it must run anyway.
    if _PRODUCTION_PROBLEMS and sys.argv[1:2] != ["generate_encryption_key"]:
        # A plain message and no traceback (SystemExit prints none). Exit status 3 is gunicorn's "worker
        # failed to boot": gunicorn then stops instead of starting new workers that refuse in turn.
        sys.stderr.write(
            f"VOICEPRINT_ENV=production refuses to start: {len(_PRODUCTION_PROBLEMS)} setting(s) to fix:\n"
            + "".join(f"  - {problem}\n" for problem in _PRODUCTION_PROBLEMS))
        sys.stderr.flush()
        raise SystemExit(3)
elif not VOICEPRINT_ENCRYPTION_KEYS:
    # Development only: a key derived from the (development) secret key, so a fresh checkout
    # works with zero configuration. Embeddings are still encrypted at rest.
    VOICEPRINT_ENCRYPTION_KEYS = [base64.urlsafe_b64encode(
        hashlib.sha256(b"voiceprint-development-encryption-key:" + SECRET_KEY.encode()).digest()
    ).decode("ascii")]

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])


# --- Django --------------------------------------------------------------------------------

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "speakers",  # before staticfiles: its runserver (model check + warm-up) wins
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # the admin's sign-in: failures lock a username from one address (see "abuse" below)
]

MIDDLEWARE = [
    # Outermost: a content security policy and a permissions policy on every answer, refusals and static files too.
    "speakers.security_headers.SecurityHeadersMiddleware",
    # Then: a bad Host header or an overlong URL is answered in the API's error shape (and
    # never with a debug page) before anything else looks at the request.
    "speakers.api.middleware.RequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: answers a locked-out admin sign-in with its page (429).
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out (username, address) before the password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

ROOT_URLCONF = "voiceprint_project.urls"
WSGI_APPLICATION = "voiceprint_project.wsgi.application"
# HTTP and the WebSocket routes (speakers/api/routing.py); `manage.py runserver` serves it with uvicorn.
ASGI_APPLICATION = "voiceprint_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_DEFAULT_SQLITE = BASE_DIR / "var" / "db.sqlite3"
_DATABASE_URL = env_str("DATABASE_URL")
if _DATABASE_URL is None:
    _DEFAULT_SQLITE.parent.mkdir(parents=True, exist_ok=True)
    _DATABASE_URL = f"sqlite:///{_DEFAULT_SQLITE}"
DATABASES = {
    "default": dj_database_url.parse(
        _DATABASE_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
del _DATABASE_URL  # may hold a password: not a setting (DEBUG pages list settings)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes and threads write to one file: WAL lets readers go on while one
    # writes, IMMEDIATE takes the write lock at BEGIN (no lock upgrade deadlocks), and the
    # timeout makes a busy writer wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": env_int("SQLITE_TIMEOUT_S", 30, minimum=1),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "var" / "static")))
try:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # collectstatic's target; WhiteNoise serves from it
except OSError:
    pass  # a read-only image with collected files already in place
WHITENOISE_USE_FINDERS = True  # admin and Swagger UI assets also work without collectstatic

SECURE_CONTENT_TYPE_NOSNIFF = True
if PRODUCTION:
    # Behind TLS (directly or at a proxy): cookies only over HTTPS, and browsers told to stay on it.
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", False)
    if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
        # The proxy terminates TLS and says so in X-Forwarded-Proto (set it only behind one).
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_FAILURE_VIEW = "speakers.api.errors.csrf_failure"
# Longest request target (path + query) answered; longer ones get 414 in the API's error shape.
# Kept under the servers' own line limits (gunicorn 8190 bytes, runserver 64 KiB), which answer first.
VOICEPRINT_MAX_URL_BYTES = env_int("VOICEPRINT_MAX_URL_BYTES", 4096, minimum=256)

# --- cache (throttles, lockouts, health): process memory by default, Redis for several workers --

_CACHE_URL = env_str("VOICEPRINT_CACHE_URL")
if _CACHE_URL:
    if not _CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ImproperlyConfigured("VOICEPRINT_CACHE_URL must be a redis:// (or rediss://, unix://) URL")
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL,
                          "KEY_PREFIX": "voiceprint"}}
else:
    # Per process: with several workers each counts its own share (documented in docs/api.md).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "voiceprint"}}
del _CACHE_URL  # may hold a password

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # A key sent in a query string must never reach a log line (voiceprint_project/log_redaction.py).
    "filters": {"redact_query_strings": {"()": "voiceprint_project.log_redaction.RedactQueryStrings"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["redact_query_strings"]}},
    "root": {"handlers": ["console"], "level": env_str("VOICEPRINT_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "faiss.loader": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # failures and lockouts are in the audit trail; its warnings say when it locks
    },
}


# --- uploads: audio stays in memory, never on disk ------------------------------------------

FILE_UPLOAD_HANDLERS = ["speakers.uploads.InMemoryAudioUploadHandler"]
# One uploaded audio file, in bytes (413 upload_too_large above it).
VOICEPRINT_MAX_UPLOAD_BYTES = env_int("VOICEPRINT_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1024)
# Files in one request, all fields together (413 too_many_files above it).
VOICEPRINT_MAX_FILES = env_int("VOICEPRINT_MAX_FILES", 10, minimum=2)
# Non-file form fields / JSON bodies.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# Django's own cap stays just above ours, so our handler answers first with a clear code.
DATA_UPLOAD_MAX_NUMBER_FILES = VOICEPRINT_MAX_FILES + 1


# --- engine, decisions, quality gates --------------------------------------------------------

VOICEPRINT_MODEL_DIR = Path(env_str("VOICEPRINT_MODEL_DIR", str(BASE_DIR / "var" / "model")))
# Which networks embed a recording: "ecapa" (ECAPA-TDNN alone), or "ecapa,campplus" (ECAPA and CAM++ from
# one decode, fused: inference/fusion.py, docs/accuracy.md §0.9). A fused deployment has voiceprints of its own
# model version (existing speakers enroll again, as after any model change); a worker peaks at ~1 GB (886 MB alone).
# It ranks pairs far better, but its shipped calibration holds less well on populations unlike the
# calibration set's: use it with the population adaptation (20+ speakers) or a site calibration.
VOICEPRINT_MODELS = tuple(m.strip() for m in (env_str("VOICEPRINT_MODELS", "ecapa") or "").split(",") if m.strip())
if VOICEPRINT_MODELS not in (("ecapa",), ("ecapa", "campplus")):
    raise ImproperlyConfigured(f"VOICEPRINT_MODELS={','.join(VOICEPRINT_MODELS)!r}: use ecapa or ecapa,campplus")
VOICEPRINT_MIN_AUDIO_S = env_float("VOICEPRINT_MIN_AUDIO_S", 0.5, minimum=0.1)
VOICEPRINT_MAX_AUDIO_S = env_float("VOICEPRINT_MAX_AUDIO_S", 60.0, minimum=1.0)
# Decoding cost: channels, and samples of all channels (rate x channels x duration, from the header).
VOICEPRINT_MAX_CHANNELS = env_int("VOICEPRINT_MAX_CHANNELS", 8, minimum=1)
VOICEPRINT_MAX_DECODED_VALUES = env_int("VOICEPRINT_MAX_DECODED_VALUES", 6_000_000, minimum=100_000)
# Load the model in the background as soon as a server process starts (after the fork).
VOICEPRINT_WARMUP = env_bool("VOICEPRINT_WARMUP", True)
# MindSpore's CPU threads per process (0: MindSpore's own default); gunicorn.conf.py sets it per host.
VOICEPRINT_ENGINE_THREADS = env_int("VOICEPRINT_ENGINE_THREADS", 0, minimum=0) or None

# Decisions. Scores are calibrated for the quality of both recordings (the calibration shipped in
# inference/calibrations/, or a site's own from `python manage.py calibrate`; docs/accuracy.md),
# so one operating point holds in every condition: the share of impostors a verification may
# accept, and of unknown voices an identification may match to someone.
VOICEPRINT_FAR_TARGET = env_float("VOICEPRINT_FAR_TARGET", 0.01, minimum=0.0005, maximum=0.1)
VOICEPRINT_FIR_TARGET = env_float("VOICEPRINT_FIR_TARGET", 0.01, minimum=0.0005, maximum=0.1)
VOICEPRINT_MAX_TOP_K = env_int("VOICEPRINT_MAX_TOP_K", 50, minimum=1)
# The fraudster watchlist: every enrollment and verify probe is identified against it at this
# false-identification target; a hit is reported (and audited), or refused when asked.
VOICEPRINT_WATCHLIST_FIR = env_float("VOICEPRINT_WATCHLIST_FIR", 0.01, minimum=0.0005, maximum=0.1)
VOICEPRINT_WATCHLIST_REFUSE = env_bool("VOICEPRINT_WATCHLIST_REFUSE", False)
# Replays (docs/replay.md): a probe that replays a recording the service has heard for the speaker (an
# enrollment, or one of their last accepted probes, kept as audio fingerprints) is refused.
VOICEPRINT_REPLAY_CHECK = env_bool("VOICEPRINT_REPLAY_CHECK", True)
VOICEPRINT_REPLAY_RECENT_PROBES = env_int("VOICEPRINT_REPLAY_RECENT_PROBES", 20, minimum=0)

# Consent and retention (docs/api.md "Consent, opt-out, export, retention"). With consent required, a
# speaker without the person's consent on record cannot be enrolled: on by default in production, off in
# development so the README tour works as it is.
VOICEPRINT_REQUIRE_CONSENT = env_bool("VOICEPRINT_REQUIRE_CONSENT", PRODUCTION)
# Audit events of the deployment itself (no tenant) are kept this long; each tenant sets its own.
VOICEPRINT_AUDIT_RETENTION_DAYS = env_int("VOICEPRINT_AUDIT_RETENTION_DAYS", 1095, minimum=1)
# The key of the keyed hash that remembers opted-out external ids; keep it stable (a new key forgets the
# blocks). Defaults to the secret key.
VOICEPRINT_OPT_OUT_HASH_KEY = env_str("VOICEPRINT_OPT_OUT_HASH_KEY", SECRET_KEY) or SECRET_KEY

# Population adaptation (docs/accuracy.md "Population adaptation"): the tenant's own enrolled speakers, scored
# against each other, re-level the impostor side of the calibration in force, without labels, once they are
# this many (below, the calibration decides exactly as shipped).
VOICEPRINT_POPULATION_ADAPTATION = env_bool("VOICEPRINT_POPULATION_ADAPTATION", True)
VOICEPRINT_POPULATION_MIN_SPEAKERS = env_int("VOICEPRINT_POPULATION_MIN_SPEAKERS", 20, minimum=2)

# Score normalisation (AS-norm) against a cohort of impostor voiceprints as the calibration's
# input: the default for requests that do not say (each request may ask with asnorm=true/false).
VOICEPRINT_ASNORM = env_bool("VOICEPRINT_ASNORM", False)
if VOICEPRINT_ASNORM and len(VOICEPRINT_MODELS) > 1:
    raise ImproperlyConfigured("VOICEPRINT_ASNORM=true needs a cohort of the fused model's vectors, which is not "
                               "shipped: use it with VOICEPRINT_MODELS=ecapa")
VOICEPRINT_ASNORM_COHORT = Path(env_str("VOICEPRINT_ASNORM_COHORT", str(VOICEPRINT_MODEL_DIR / "cohort.npy")))
VOICEPRINT_ASNORM_TOP_K = env_int("VOICEPRINT_ASNORM_TOP_K", 200, minimum=2)

# Quality gates, measured in docs/accuracy.md. Net speech is what the VAD finds, in seconds.
# Per enrollment recording, and in total for a usable (complete) voiceprint:
VOICEPRINT_ENROLL_MIN_SPEECH_S = env_float("VOICEPRINT_ENROLL_MIN_SPEECH_S", 1.5, minimum=0.0)
VOICEPRINT_ENROLL_TARGET_SPEECH_S = env_float("VOICEPRINT_ENROLL_TARGET_SPEECH_S", 6.0, minimum=0.0)
# Per verify / identify / compare recording:
VOICEPRINT_PROBE_MIN_SPEECH_S = env_float("VOICEPRINT_PROBE_MIN_SPEECH_S", 1.0, minimum=0.0)
# Fraction of clipped samples allowed.
VOICEPRINT_MAX_CLIPPING_RATIO = env_float("VOICEPRINT_MAX_CLIPPING_RATIO", 0.05, minimum=0.0, maximum=1.0)
# Mean level of the speech frames (dBFS) below which a recording is refused as too quiet.
VOICEPRINT_MIN_SPEECH_LEVEL_DBFS = env_float("VOICEPRINT_MIN_SPEECH_LEVEL_DBFS", -48.0, minimum=-120.0,
                                             maximum=0.0)
# The VAD's speech-to-non-speech power ratio (dB) below which a recording is refused as too noisy.
# Enrollment: every later decision rests on it. Probe: the calibration takes the SNR as an input and
# holds its false-accept target down to 0 dB of white, pink, babble or hum noise (docs/accuracy.md
# §0.3), so only a probe with more noise than speech is refused.
VOICEPRINT_ENROLL_MIN_SNR_DB = env_float("VOICEPRINT_ENROLL_MIN_SNR_DB", 8.0)
VOICEPRINT_PROBE_MIN_SNR_DB = env_float("VOICEPRINT_PROBE_MIN_SNR_DB", 0.0)
# An enrollment recording whose cosine to the speaker's voiceprint (or, in a first upload, to
# the other recordings) is below this is refused as probably another person.
VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD = env_float("VOICEPRINT_ENROLL_CONSISTENCY_THRESHOLD", 0.30,
                                                    minimum=-1.0, maximum=1.0)

# --- who spoke when: POST /api/v1/diarize (docs/api.md "Diarize") --------------------------------

# A diarized recording has limits of its own (413 audio_too_long / audio_too_complex above them): it is
# one long recording, where verify and identify take a short probe (VOICEPRINT_MAX_AUDIO_S). The upload
# itself still obeys VOICEPRINT_MAX_UPLOAD_BYTES (10 MB: 5 min of 16 kHz 16-bit WAV, longer as FLAC/OGG).
VOICEPRINT_DIARIZE_MAX_S = env_float("VOICEPRINT_DIARIZE_MAX_S", 600.0, minimum=5.0)
# Samples of all channels decoded per recording: 10 min of 48 kHz mono, 120 MB as float32 at once.
VOICEPRINT_DIARIZE_MAX_DECODED_VALUES = env_int("VOICEPRINT_DIARIZE_MAX_DECODED_VALUES", 28_800_000,
                                                minimum=100_000)
# The most speakers a request may ask for (num_speakers, max_speakers; 400 above it), and the most found.
VOICEPRINT_DIARIZE_MAX_SPEAKERS = env_int("VOICEPRINT_DIARIZE_MAX_SPEAKERS", 20, minimum=1)
# The network that embeds the recording's short windows to tell its voices apart (the voices are named
# with the engine of VOICEPRINT_MODELS either way): campplus lowered held-out DER in every condition
# (telephone with 10% overlap 18.5 -> 13.6%, docs/api.md "Diarize") at a lower cost per window; a
# diarizing worker then loads CAM++ beside ECAPA (prepared by `make model`; the server refuses to
# start without it). ecapa: ECAPA's windows, as before.
VOICEPRINT_DIARIZE_WINDOWS = env_choice("VOICEPRINT_DIARIZE_WINDOWS", "campplus", ("campplus", "ecapa"))

# --- streaming verification over WebSocket (docs/streaming.md) -----------------------------------

# A rolling score is computed over the newest STREAM_WINDOW_S of net speech, each time STREAM_HOP_S of
# new speech has arrived, once the window holds STREAM_MIN_SPEECH_S. Without an enrolled speaker, the
# first STREAM_REFERENCE_SPEECH_S of speech (the client may ask for 1-8 s) is the reference.
VOICEPRINT_STREAM_WINDOW_S = env_float("VOICEPRINT_STREAM_WINDOW_S", 3.0, minimum=1.0, maximum=8.0)
VOICEPRINT_STREAM_HOP_S = env_float("VOICEPRINT_STREAM_HOP_S", 0.5, minimum=0.1, maximum=10.0)
VOICEPRINT_STREAM_MIN_SPEECH_S = env_float("VOICEPRINT_STREAM_MIN_SPEECH_S", VOICEPRINT_PROBE_MIN_SPEECH_S,
                                           minimum=0.5, maximum=8.0)
VOICEPRINT_STREAM_REFERENCE_SPEECH_S = env_float("VOICEPRINT_STREAM_REFERENCE_SPEECH_S", 3.0, minimum=1.0,
                                                 maximum=8.0)
# No speech for this long is announced as a "silence" event.
VOICEPRINT_STREAM_SILENCE_EVENT_S = env_float("VOICEPRINT_STREAM_SILENCE_EVENT_S", 1.0, minimum=0.2)
# Bounds of one session: bytes of one binary message (PCM), audio in all, wall-clock time, time without a
# message; and how fast the server reads (beyond these it reads more slowly, TCP back-pressure): messages
# per second, and audio beyond STREAM_BURST_S ahead of real time x STREAM_MAX_SPEED.
VOICEPRINT_STREAM_MAX_FRAME_BYTES = env_int("VOICEPRINT_STREAM_MAX_FRAME_BYTES", 64 * 1024, minimum=1024)
VOICEPRINT_STREAM_MAX_AUDIO_S = env_float("VOICEPRINT_STREAM_MAX_AUDIO_S", 600.0, minimum=5.0)
VOICEPRINT_STREAM_MAX_SESSION_S = env_float("VOICEPRINT_STREAM_MAX_SESSION_S", 900.0, minimum=5.0)
VOICEPRINT_STREAM_IDLE_TIMEOUT_S = env_float("VOICEPRINT_STREAM_IDLE_TIMEOUT_S", 10.0, minimum=0.5)
VOICEPRINT_STREAM_MAX_MESSAGES_PER_S = env_int("VOICEPRINT_STREAM_MAX_MESSAGES_PER_S", 200, minimum=10)
VOICEPRINT_STREAM_MAX_SPEED = env_float("VOICEPRINT_STREAM_MAX_SPEED", 20.0, minimum=1.0)
VOICEPRINT_STREAM_BURST_S = env_float("VOICEPRINT_STREAM_BURST_S", 10.0, minimum=0.0)
# Recordings per session on the original protocol (/ws/stream-verify; each up to VOICEPRINT_MAX_UPLOAD_BYTES).
VOICEPRINT_STREAM_MAX_RECORDINGS = env_int("VOICEPRINT_STREAM_MAX_RECORDINGS", 100, minimum=2)
# The least audio a session must bring: STREAM_MIN_AUDIO_S seconds (PCM samples; on the original protocol,
# recordings the engine used) in every STREAM_MIN_AUDIO_INTERVAL_S, or it is closed (4408 audio_too_slow), so that
# a trickle of samples that keeps the idle timer happy cannot hold a slot. A live microphone brings the whole
# interval; time the server spends working for the session is not counted. 0 switches the rule off.
VOICEPRINT_STREAM_MIN_AUDIO_S = env_float("VOICEPRINT_STREAM_MIN_AUDIO_S", 3.0, minimum=0.0)
VOICEPRINT_STREAM_MIN_AUDIO_INTERVAL_S = env_float("VOICEPRINT_STREAM_MIN_AUDIO_INTERVAL_S", 10.0, minimum=1.0)
# Open sessions per worker process, and per API key in one worker process.
VOICEPRINT_STREAM_MAX_SESSIONS = env_int("VOICEPRINT_STREAM_MAX_SESSIONS", 32, minimum=1)
VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY = env_int("VOICEPRINT_STREAM_MAX_SESSIONS_PER_KEY", 4, minimum=1)
# The ASGI server refuses (close 1009) any WebSocket message larger than this, before the app sees it.
VOICEPRINT_WS_MAX_MESSAGE_BYTES = VOICEPRINT_MAX_UPLOAD_BYTES + 64 * 1024

# Index change log rows kept; a process further behind than this rebuilds its index.
VOICEPRINT_INDEX_LOG_KEEP = env_int("VOICEPRINT_INDEX_LOG_KEEP", 10_000, minimum=100)
# The 1:N search index: in each process "auto" (exact below 300k voiceprints, IVF above), "flat", "ivf";
# or "milvus", one collection shared by every worker on every machine (docs/scaling.md).
VOICEPRINT_INDEX_BACKEND = env_choice("VOICEPRINT_INDEX_BACKEND", "auto", ("auto", "flat", "ivf", "milvus"))
# The Milvus tier: a server (http://host:19530, https:// with TLS), or a local milvus-lite file
# (path ending .db: one process only, for trials). The token is "user:password" or an API key.
VOICEPRINT_MILVUS_URI = env_str("VOICEPRINT_MILVUS_URI", "")
VOICEPRINT_MILVUS_TOKEN = env_str("VOICEPRINT_MILVUS_TOKEN", "")
# Collection name prefix; each model version (and enrollment speech target) gets its own collection.
VOICEPRINT_MILVUS_COLLECTION = env_str("VOICEPRINT_MILVUS_COLLECTION", "voiceprints")
# Milvus index: FLAT (exact), HNSW or IVF_FLAT (approximate; presets in inference/vector_index/milvus.py).
VOICEPRINT_MILVUS_INDEX = env_choice("VOICEPRINT_MILVUS_INDEX", "FLAT", ("FLAT", "HNSW", "IVF_FLAT"))
# Seconds to wait for Milvus to accept a connection; identify then answers 503 search_unavailable.
VOICEPRINT_MILVUS_TIMEOUT_S = env_float("VOICEPRINT_MILVUS_TIMEOUT_S", 10.0, minimum=0.5)
if VOICEPRINT_INDEX_BACKEND == "milvus" and not VOICEPRINT_MILVUS_URI:
    raise ImproperlyConfigured("VOICEPRINT_INDEX_BACKEND=milvus needs VOICEPRINT_MILVUS_URI (http://host:19530)")
if VOICEPRINT_MILVUS_URI.endswith(".db") and VOICEPRINT_MILVUS_INDEX != "FLAT":
    # Measured (docs/scaling.md): milvus-lite refuses HNSW and ignores IVF_FLAT's probes (recall@1 0.79-0.85).
    raise ImproperlyConfigured("a local milvus-lite file searches faithfully only with VOICEPRINT_MILVUS_INDEX=FLAT")
if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,200}", VOICEPRINT_MILVUS_COLLECTION):
    raise ImproperlyConfigured("VOICEPRINT_MILVUS_COLLECTION must be letters, digits and underscores")


# Speaker metadata (JSON object): encoded size and nesting depth.
VOICEPRINT_MAX_METADATA_BYTES = env_int("VOICEPRINT_MAX_METADATA_BYTES", 16 * 1024, minimum=2)
VOICEPRINT_MAX_METADATA_DEPTH = env_int("VOICEPRINT_MAX_METADATA_DEPTH", 8, minimum=1)
# Any JSON request body nested deeper than this is refused before it is parsed.
VOICEPRINT_MAX_JSON_DEPTH = env_int("VOICEPRINT_MAX_JSON_DEPTH", 32, minimum=2)


# --- abuse: throttles and lockouts (429 with Retry-After) ------------------------------------------

# Requests per API key, and per client address (every request, authenticated or not).
VOICEPRINT_RATE_PER_KEY = env_str("VOICEPRINT_RATE_PER_KEY", "3000/min")
VOICEPRINT_RATE_PER_CLIENT = env_str("VOICEPRINT_RATE_PER_CLIENT", "6000/min")
# Failed authentications (missing, unknown or revoked key) per client address.
VOICEPRINT_RATE_AUTH_FAILURES = env_str("VOICEPRINT_RATE_AUTH_FAILURES", "30/min")
# Rejected verifications of one speaker in a row from one API key, or from one client address, before that
# key (that address) is locked out of the speaker, never another caller (speakers/services/lockout.py); the
# first lock; each further lock of the pair within a day doubles, up to the maximum. An accepted one resets it.
VOICEPRINT_VERIFY_LOCKOUT_AFTER = env_int("VOICEPRINT_VERIFY_LOCKOUT_AFTER", 5, minimum=1)
VOICEPRINT_VERIFY_LOCKOUT_S = env_int("VOICEPRINT_VERIFY_LOCKOUT_S", 60, minimum=1)
VOICEPRINT_VERIFY_LOCKOUT_MAX_S = env_int("VOICEPRINT_VERIFY_LOCKOUT_MAX_S", 3600, minimum=1)
# Seconds of audio one API key may send per minute, on every route that decodes audio (batch files each,
# WebSocket recordings and streamed PCM too); past it 429 audio_budget_exceeded until the minute ends.
# One worker process embeds about 30 s of audio per second on 2 cores (docs/serving.md): 600 lets one
# key use about a third of it. 0: no budget.
VOICEPRINT_AUDIO_SECONDS_PER_MINUTE = env_int("VOICEPRINT_AUDIO_SECONDS_PER_MINUTE", 600, minimum=0)
# after a request whose body is over this many bytes, the worker returns its freed heap to the system
# (glibc malloc_trim: a few ms; without it a worker keeps the peak of its largest upload); 0: never
VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES = env_int("VOICEPRINT_MEMORY_TRIM_ABOVE_BYTES", 1_000_000, minimum=0)
# The admin's sign-in (django-axes): this many wrong passwords for one username from one address lock
# that pair, the right password included, for ADMIN_LOCKOUT_S. Only that pair: the same username from
# another address (the real administrator's) still signs in, so nobody can be locked out from afar.
VOICEPRINT_ADMIN_LOGIN_FAILURES = env_int("VOICEPRINT_ADMIN_LOGIN_FAILURES", 5, minimum=1)
VOICEPRINT_ADMIN_LOCKOUT_S = env_int("VOICEPRINT_ADMIN_LOCKOUT_S", 900, minimum=1)
AXES_FAILURE_LIMIT = VOICEPRINT_ADMIN_LOGIN_FAILURES
AXES_COOLOFF_TIME = timedelta(seconds=VOICEPRINT_ADMIN_LOCKOUT_S)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "speakers.api.clients.client_address"  # the one rule (trusted proxies)
AXES_RESET_ON_SUCCESS = True
# A lock ends ADMIN_LOCKOUT_S after it began: attempts during it are refused unrecorded (one audit row a minute).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins need no table of their own
AXES_LOCKOUT_CALLABLE = "speakers.admin.sign_in.locked_out_page"
# The proxies in front of the service (addresses or networks) that append the address they saw to
# X-Forwarded-For. The header is read only when the peer is one of them, from the right, past every
# trusted proxy (speakers/api/clients.py); with none (the default) it is ignored, by uvicorn too.
VOICEPRINT_TRUSTED_PROXIES = env_networks("VOICEPRINT_TRUSTED_PROXIES")


# --- REST API ---------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["speakers.api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["speakers.api.auth.HasScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "speakers.api.parsers.JsonParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "speakers.api.throttles.ClientRateThrottle",
        "speakers.api.throttles.ApiKeyRateThrottle",
    ],
    # DRF's own address rule is never used (the throttles ask speakers.api.clients); 0 keeps it off X-Forwarded-For.
    "NUM_PROXIES": 0,
    "DEFAULT_PAGINATION_CLASS": "speakers.api.pagination.SpeakerPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "speakers.api.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Voiceprint enrollment database API",
    "DESCRIPTION": "Enroll voices, verify 1:1, identify 1:N. Authenticate with the X-API-Key header.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    # No call to the online validator (the content security policy would block it anyway).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"ScoreNormalisationEnum": ["none", "asnorm"]},
}
