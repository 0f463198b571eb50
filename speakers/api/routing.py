"""WebSocket routes (Django Channels): streaming verification; any other path closes with 4404."""
from django.urls import path, re_path

from .streaming import NotFoundConsumer, RecordingsVerifyConsumer, StreamVerifyConsumer

websocket_urlpatterns = [
    path("ws/v1/stream-verify", StreamVerifyConsumer.as_asgi(), name="stream-verify"),
    # The original protocol, for its existing clients: whole recordings, the first is the reference.
    path("ws/stream-verify", RecordingsVerifyConsumer.as_asgi(), name="classic-stream-verify"),
    re_path(r"", NotFoundConsumer.as_asgi()),
]
