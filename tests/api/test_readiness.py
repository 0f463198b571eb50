"""Health tells warming up from ready; readiness (for load balancers) is 503 until the engine is ready."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_readiness_needs_no_key_and_is_200_once_the_model_is_loaded(anon_client, embedder):
    response = anon_client.get("/api/v1/ready")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "status": "ready"}
    assert anon_client.get("/api/v1/health").json()["status"] == "ready"


def test_a_cold_process_is_not_ready_and_being_asked_starts_its_warm_up(anon_client, monkeypatch):
    from speakers.runtime import inference_owner, startup

    started = []
    monkeypatch.setattr(inference_owner._owner, "peek", lambda: None)  # a worker that has loaded nothing yet
    monkeypatch.setattr(startup, "_start_warm_up", lambda: started.append(True))
    response = anon_client.get("/api/v1/ready")
    assert response.status_code == 503
    assert response.json() == {"ready": False, "status": "cold"}
    assert started == [True]
    health = anon_client.get("/api/v1/health")
    assert health.status_code == 200  # alive, just not ready
    assert health.json()["status"] == "warming_up" and health.json()["engine"] == "cold"
    assert health.json()["model_loaded"] is False


def test_a_warming_process_is_not_ready_and_starts_nothing_more(anon_client, monkeypatch, embedder):
    from speakers.runtime import inference_owner, startup

    owner = inference_owner._owner.get()
    started = []
    monkeypatch.setattr(owner, "state", inference_owner.WARMING_UP)
    monkeypatch.setattr(startup, "_start_warm_up", lambda: started.append(True))
    response = anon_client.get("/api/v1/ready")
    assert response.status_code == 503 and response.json()["status"] == "warming_up"
    assert started == []
    assert anon_client.get("/api/v1/health").json()["status"] == "warming_up"
