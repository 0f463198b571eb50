"""What each server process owns at run time, made after any fork and never shared between processes.

* :mod:`.inference_owner`: the one inference thread and the model it loaded (MindSpore is neither
  fork-safe nor thread-safe), with its queued forward step;
* :mod:`.fair_queue`: the queue in front of that thread, fair across keys by seconds of audio;
* :mod:`.payer`: who pays for the audio being worked on (the tenant and key of the request or session);
* :mod:`.asnorm`: the process's AS-norm cohort;
* :mod:`.startup`: the warm-up after start (model, search index) and readiness;
* :mod:`.process_local`: one object per process, forgotten in a forked child.
"""
