"""WebSocket routes (Django Channels): streaming verification, live identification; any other path closes with 4404."""
from django.urls import path, re_path

from .streaming import NotFoundConsumer, RecordingsVerifyConsumer, StreamIdentifyConsumer, StreamVerifyConsumer

websocket_urlpatterns = [
    path("ws/v1/stream-verify", StreamVerifyConsumer.as_asgi(), name="stream-verify"),
    # Who is speaking now among the tenant's enrolled speakers (scope identify), on the same protocol.
    path("ws/v1/stream-identify", StreamIdentifyConsumer.as_asgi(), name="stream-identify"),
    # The original protocol, for its existing clients: whole recordings, the first is the reference.
    path("ws/stream-verify", RecordingsVerifyConsumer.as_asgi(), name="classic-stream-verify"),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
