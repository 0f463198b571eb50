"""Developer benchmarks (not part of the service): engine speed against SpeechBrain, start-up,
memory per worker and throughput of the served API. Run from the repository root, e.g.
``python -m benchmarks.engine_speed``; the Makefile has a target for each (``make bench``, ...)."""
