"""Property-based fuzzing of every endpoint in the served OpenAPI schema: no input answers a 5xx.

schemathesis generates requests (valid and invalid) from the schema the service serves and
sends them through the WSGI application with a key that has every scope. Bounded in time:
``VOICEPRINT_FUZZ_EXAMPLES`` examples per operation (default 25). Every answer must be JSON,
and every refusal the one error shape.
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

EXAMPLES = int(os.environ.get("VOICEPRINT_FUZZ_EXAMPLES", "25"))

pytestmark = pytest.mark.django_db


@pytest.fixture
def keep_test_connection():
    """The WSGI handler closes the database connection after each request; the test's transaction
    lives on it, so (as Django's test client does) leave it open."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_no_generated_request_gets_a_server_error_or_a_non_json_answer(make_key, settings, keep_test_connection):
    from voiceprint_project.wsgi import application

    settings.VOICEPRINT_RATE_PER_KEY = settings.VOICEPRINT_RATE_PER_CLIENT = "1000000/min"
    headers = {"X-API-Key": make_key()}
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    problems: list[str] = []
    calls = {"n": 0}

    for operation in operations:
        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            response = case.call(headers=headers)
            calls["n"] += 1
            label = f"{case.method} {case.formatted_path} -> {response.status_code}"
            if response.status_code >= 500:
                problems.append(f"{label}: {response.text[:300]}")
                return
            if response.status_code == 204:
                return
            try:
                body = response.json()
            except ValueError:
                problems.append(f"{label}: not JSON: {response.text[:120]}")
                return
            if response.status_code >= 400 and not (set(body) == {"error"} and
                                                    {"code", "message", "detail"} <= set(body["error"])):
                problems.append(f"{label}: not the error shape: {str(body)[:200]}")

        fuzz()
    assert calls["n"] >= len(operations)
    print(f"schemathesis: {calls['n']} requests to {len(operations)} operations, {len(problems)} problems")
    assert not problems, "\n".join(problems[:20])
