"""The OpenAPI schema and the interactive docs are served."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_openapi_schema_describes_every_operation_and_the_key_header(anon_client):
    response = anon_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/speakers", "/api/v1/speakers/{speaker_id}/enrollments", "/api/v1/verify",
            "/api/v1/identify", "/api/v1/compare", "/api/v1/batch-verify", "/v1/verify-speaker", "/v1/batch-verify",
            "/api/v1/health"} <= set(schema["paths"])
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {"type": "apiKey", "in": "header",
                                                                     "name": "X-API-Key"}
    assert "multipart/form-data" in schema["paths"]["/api/v1/verify"]["post"]["requestBody"]["content"]


def test_the_interactive_docs_are_served_without_external_assets(anon_client):
    response = anon_client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger" in html.lower() and "cdn." not in html
