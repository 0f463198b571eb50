"""X-API-Key authentication and per-operation scopes (HTTP requests and WebSocket handshakes alike)."""
from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from .. import crypto
from ..exceptions import InsufficientScope, InvalidApiKey, MissingApiKey, RevokedApiKey
from ..models import ApiKey
from ..runtime.payer import payer_of, payer_set
from ..selectors import api_key_authenticate, api_key_prefix_known
from ..services import api_key_touch
from .clients import client_address
from .throttles import MISSING, UNKNOWN, auth_failure_record, auth_failures_check, key_bucket

API_KEY_HEADER = "X-API-Key"


class ApiKeyUser:
    """``request.user`` for a request made with an API key (not a Django user)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api key {self.api_key.name}"


def api_key_check(*, plain: str, address: str | None) -> ApiKey:
    """The active key ``plain`` names, with failures counted per (address, key tried).

    A key of a known prefix is refused (429) before it is checked once its bucket is full, so the
    right secret gives nothing away while it is being guessed; keys of no known prefix share one
    bucket per address, checked after the lookup (every failure does the same work either way).
    Raises InvalidApiKey, RevokedApiKey, or DRF's Throttled.
    """
    plain = plain.strip()
    bucket = key_bucket(crypto.api_key_prefix(plain))
    if bucket is not None:
        auth_failures_check(address, bucket)
    try:
        return api_key_authenticate(plain=plain)
    except (InvalidApiKey, RevokedApiKey):
        if bucket is None or not api_key_prefix_known(prefix=bucket.removeprefix("key:")):
            bucket = UNKNOWN
            auth_failures_check(address, bucket)
        auth_failure_record(address, bucket)
        raise


def missing_key_refusal(*, address: str | None, message: str | None = None) -> MissingApiKey:
    """The refusal of a request without a key, counted in the address's own bucket (raises Throttled past it)."""
    auth_failures_check(address, MISSING)
    auth_failure_record(address, MISSING)
    return MissingApiKey(message)


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        plain = request.META.get("HTTP_X_API_KEY")
        if not plain:
            return None  # HasScope answers 401 missing_api_key
        api_key = api_key_check(plain=plain, address=client_address(request))
        api_key_touch(api_key=api_key)
        payer_set(payer_of(api_key))  # the audio this request decodes is charged to, and queued for, this key
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return f'ApiKey header="{API_KEY_HEADER}"'


class OptionalApiKeyAuthentication(ApiKeyAuthentication):
    """For open routes (health): a valid key only scopes the answer to its tenant; a wrong one counts as a
    failed authentication (the same throttle) and the request is answered as one without a key."""

    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except (InvalidApiKey, RevokedApiKey):
            return None


class HasScope(BasePermission):
    """The view's ``required_scopes`` maps an HTTP method to the scopes that allow it (any of)."""

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise missing_key_refusal(address=client_address(request))
        scopes_by_method = getattr(view, "required_scopes", None)
        if scopes_by_method is None:  # a view that forgot to declare its scopes is closed, not open
            raise InsufficientScope("This endpoint is not available to API keys.")
        method = "GET" if request.method == "HEAD" else request.method
        required = scopes_by_method.get(method)
        if required is None:
            return True  # OPTIONS, or a method the view does not have (DRF answers 405)
        if not any(api_key.has_scope(scope) for scope in required):
            raise InsufficientScope(
                f"This operation needs an API key with one of the scopes: {', '.join(sorted(required))}.",
                required_scopes=sorted(required), granted_scopes=sorted(api_key.scopes))
        return True


def api_key_for_handshake(*, plain: str | None, address: str | None, scopes: set[str]) -> ApiKey:
    """The same checks for a WebSocket handshake (no DRF request): key, failures per (address, key), scopes (any of).

    Raises MissingApiKey, InvalidApiKey, RevokedApiKey, InsufficientScope, or DRF's Throttled.
    """
    if not plain:
        raise missing_key_refusal(address=address, message=(
            "Send your API key in the X-API-Key header of the handshake (or, from a browser, as the "
            "voiceprint.key.<KEY> subprotocol)."))
    api_key = api_key_check(plain=plain, address=address)
    if not any(api_key.has_scope(scope) for scope in scopes):
        raise InsufficientScope(
            f"This operation needs an API key with one of the scopes: {', '.join(sorted(scopes))}.",
            required_scopes=sorted(scopes), granted_scopes=sorted(api_key.scopes))
    api_key_touch(api_key=api_key)
    return api_key
