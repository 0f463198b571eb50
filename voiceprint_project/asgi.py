"""ASGI entry point: HTTP (the Django app) and the WebSocket routes (speakers/api/routing.py).

Served by ``manage.py runserver`` (uvicorn) and by gunicorn's uvicorn workers (``make serve-gunicorn``).
Same start-up rule as wsgi.py: check the model, do not load it here (each server process warms
it up after any fork: the runserver command, gunicorn's ``post_worker_init``).
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")

django_application = get_asgi_application()  # sets Django up before anything imports a model

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from speakers.api.middleware import ContentLengthGuard  # noqa: E402
from speakers.api.routing import websocket_urlpatterns  # noqa: E402
from speakers.runtime.inference_owner import require_prepared_model  # noqa: E402

# No origin check on WebSockets: they authenticate with an API key, never with a cookie, so a page of
# another site cannot borrow a browser's credentials (and a call-centre page on another origin may connect).
# A declared body above the upload limit is refused before Django reads it (it reads whole bodies first).
application = ProtocolTypeRouter({
    "http": ContentLengthGuard(django_application),
    "websocket": URLRouter(websocket_urlpatterns),
})

require_prepared_model()
