"""The inference owner's queue is fair across keys (speakers/runtime/fair_queue.py): order only, no clocks.

A key's long batch must not hold another key's small request behind it: each key's next job is
served by how little that key has been served so far (seconds of audio), not by arrival.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from speakers.runtime.fair_queue import FairExecutor, FairQueue


def _drain(queue: FairQueue) -> list[str]:
    return [queue.take() for _ in range(len(queue))]


def test_a_small_job_of_one_key_goes_before_the_rest_of_another_keys_backlog():
    queue = FairQueue()
    for i in range(1, 5):
        queue.put(f"a{i}", key="batch-key", cost=20.0)
    queue.put("b1", key="small-key", cost=3.0)
    assert _drain(queue) == ["a1", "b1", "a2", "a3", "a4"]


def test_keys_of_equal_cost_take_turns():
    queue = FairQueue()
    for i in range(1, 4):
        queue.put(f"a{i}", key="a", cost=5.0)
    for i in range(1, 4):
        queue.put(f"b{i}", key="b", cost=5.0)
    assert _drain(queue) == ["a1", "b1", "a2", "b2", "a3", "b3"]


def test_shares_are_counted_in_cost_not_in_jobs():
    queue = FairQueue()
    for i in range(1, 3):
        queue.put(f"long{i}", key="a", cost=10.0)
    for i in range(1, 11):
        queue.put(f"short{i}", key="b", cost=1.0)
    order = _drain(queue)
    # after its first long job, key a waits until key b has had about as many seconds
    assert order.index("long2") > order.index("short9")


def test_a_key_that_was_idle_banks_no_credit():
    queue = FairQueue()
    for i in range(1, 4):
        queue.put(f"a{i}", key="a", cost=10.0)
    assert [queue.take(), queue.take()] == ["a1", "a2"]  # a alone: served, nobody waited
    for i in range(1, 4):
        queue.put(f"b{i}", key="b", cost=10.0)
    queue.put("a4", key="a", cost=10.0)
    # b starts level with a's current turn, not 20 s behind: it does not get two turns before a's next
    assert _drain(queue) == ["b1", "a3", "b2", "b3", "a4"]


def test_jobs_without_a_key_share_one_turn():
    queue = FairQueue()
    queue.put("x1", key=None, cost=1.0)
    queue.put("x2", key=None, cost=1.0)
    queue.put("k1", key="k", cost=1.0)
    assert _drain(queue) == ["x1", "k1", "x2"]


def test_the_executor_runs_jobs_in_fair_order_on_its_one_thread():
    executor = FairExecutor(thread_name="test-fair")
    gate = threading.Event()
    ran: list[tuple[str, str]] = []

    def job(name: str) -> str:
        ran.append((name, threading.current_thread().name))
        return name

    first = executor.submit(gate.wait, key="batch-key", cost=20.0)  # holds the thread while the others queue
    futures = [executor.submit(job, f"a{i}", key="batch-key", cost=20.0) for i in range(1, 4)]
    futures.append(executor.submit(job, "b1", key="small-key", cost=3.0))
    gate.set()
    assert first.result(timeout=30) is True
    assert [f.result(timeout=30) for f in futures] == ["a1", "a2", "a3", "b1"]
    assert [name for name, _ in ran] == ["b1", "a1", "a2", "a3"]
    assert {thread for _, thread in ran} == {"test-fair"}
    executor.shutdown()


def test_the_executor_hands_a_jobs_exception_to_its_caller():
    executor = FairExecutor(thread_name="test-fair")

    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        executor.submit(fail, key="k", cost=1.0).result(timeout=30)
    assert executor.submit(lambda: 42, key="k", cost=1.0).result(timeout=30) == 42
    executor.shutdown()


@pytest.mark.django_db
def test_each_window_of_a_request_is_queued_under_its_key_at_its_seconds(client, make_key, speech, monkeypatch):
    from rest_framework.test import APIClient

    from speakers import crypto
    from speakers.models import ApiKey
    from speakers.runtime import inference_owner
    from speakers.runtime.payer import payer_of

    executor = inference_owner._owner.get().executor
    queued: list[tuple[str | None, float]] = []
    real_submit = executor.submit

    def submit(fn, *args, key=None, cost=0.0):
        queued.append((key, cost))
        return real_submit(fn, *args, key=key, cost=cost)

    monkeypatch.setattr(executor, "submit", submit)
    plain = make_key("verify")
    api = APIClient()
    api.credentials(HTTP_X_API_KEY=plain)
    long = speech.wav(np.concatenate([speech.samples(f"{s}_snt{i}") for s in "ab" for i in range(1, 7)]))
    response = api.post("/api/v1/compare", {"reference": SimpleUploadedFile("long.wav", long),
                                            "test": SimpleUploadedFile("a5.wav", speech.bytes("a_snt5"))},
                        format="multipart")
    assert response.status_code == 200, response.json()
    payer = payer_of(ApiKey.objects.get(prefix=crypto.api_key_prefix(plain)))
    assert {key for key, _ in queued} == {payer}
    # the long recording (over 20 s of speech) is cut into windows of at most 20 s, each its own job
    assert len(queued) >= 3 and all(0 < cost <= 20.01 for _, cost in queued)
