"""ASGI entry point. Same start-up rule as wsgi.py: check the model, do not load it here."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")

application = get_asgi_application()

from speakers.inference_owner import require_prepared_model  # noqa: E402  (needs Django set up)

require_prepared_model()
