"""WSGI entry point (gunicorn: ``gunicorn -c voiceprint_project/gunicorn.conf.py``).

Importing this module never loads the model: with ``--preload`` it runs in the gunicorn
master, and MindSpore is not fork-safe. It only checks that the converted model exists,
so a server without a model refuses to start instead of failing at the first request.
The model is loaded after the fork, by ``post_fork`` in gunicorn.conf.py or lazily.
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "voiceprint_project.settings")

application = get_wsgi_application()

from speakers.runtime.inference_owner import require_prepared_model  # noqa: E402  (needs Django set up)

require_prepared_model()
