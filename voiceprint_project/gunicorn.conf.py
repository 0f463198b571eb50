"""gunicorn configuration: ``gunicorn -c voiceprint_project/gunicorn.conf.py voiceprint_project.wsgi``.

(HTTP and WebSockets: the same with ``-k voiceprint_project.asgi_server.UvicornWorker
voiceprint_project.asgi:application``, as ``make serve-gunicorn`` and the Dockerfile run it.)

Threaded workers (gthread): several requests run at once in one process, while one
inference thread per process owns MindSpore (see speakers/inference_owner.py). The app is not
preloaded: every worker imports Django and loads the model after the fork.
Override any value on the command line or with GUNICORN_CMD_ARGS.
"""
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
preload_app = False  # MindSpore must never be imported before the fork
timeout = 120
graceful_timeout = 30
accesslog = "-"
# gunicorn's largest request line; the app answers URLs beyond VOICEPRINT_MAX_URL_BYTES (4 KiB)
# with a JSON 414 before this limit (and gunicorn's own plain 400) is reached.
limit_request_line = 8190


def post_worker_init(worker):
    """In each worker, after the fork and once the app is loaded: warm the model and index in the background."""
    from speakers.startup import warm_up_in_background

    warm_up_in_background()
