"""X-API-Key authentication and per-operation scopes."""
from __future__ import annotations

from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission

from ..exceptions import InsufficientScope, InvalidApiKey, MissingApiKey, RevokedApiKey
from ..models import ApiKey
from ..selectors import api_key_authenticate
from ..services import api_key_touch
from .throttles import auth_failure_record, auth_failure_record_for, auth_failures_check, auth_failures_check_for

API_KEY_HEADER = "X-API-Key"


class ApiKeyUser:
    """``request.user`` for a request made with an API key (not a Django user)."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api key {self.api_key.name}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        plain = request.META.get("HTTP_X_API_KEY")
        if not plain:
            return None  # HasScope answers 401 missing_api_key
        auth_failures_check(request)
        try:
            api_key = api_key_authenticate(plain=plain.strip())
        except (InvalidApiKey, RevokedApiKey):
            auth_failure_record(request)
            raise
        api_key_touch(api_key=api_key)
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return f'ApiKey header="{API_KEY_HEADER}"'


class HasScope(BasePermission):
    """The view's ``required_scopes`` maps an HTTP method to the scopes that allow it (any of)."""

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            auth_failures_check(request)
            auth_failure_record(request)
            raise MissingApiKey()
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
    """The same checks for a WebSocket handshake (no DRF request): key, failures per address, scopes (any of).

    Raises MissingApiKey, InvalidApiKey, RevokedApiKey, InsufficientScope, or DRF's Throttled.
    """
    auth_failures_check_for(address)
    if not plain:
        auth_failure_record_for(address)
        raise MissingApiKey("Send your API key in the X-API-Key header of the handshake (or, from a browser, "
                            "as the voiceprint.key.<KEY> subprotocol).")
    try:
        api_key = api_key_authenticate(plain=plain.strip())
    except (InvalidApiKey, RevokedApiKey):
        auth_failure_record_for(address)
        raise
    if not any(api_key.has_scope(scope) for scope in scopes):
        raise InsufficientScope(
            f"This operation needs an API key with one of the scopes: {', '.join(sorted(scopes))}.",
            required_scopes=sorted(scopes), granted_scopes=sorted(api_key.scopes))
    api_key_touch(api_key=api_key)
    return api_key
