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


# --- the schema is true to the answers (issue 18) ---------------------------------------------------------

def _schema(anon_client) -> dict:
    return anon_client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()


def test_the_speaker_list_is_documented_as_the_page_it_is(anon_client):
    schema = _schema(anon_client)
    ok = schema["paths"]["/api/v1/speakers"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[1]]
    assert {"count", "next", "previous", "results"} <= set(page["properties"])
    assert page["properties"]["results"]["items"] == {"$ref": "#/components/schemas/SpeakerOutput"}
    names = {p["name"] for p in schema["paths"]["/api/v1/speakers"]["get"]["parameters"]}
    assert {"page", "page_size", "external_id"} <= names


def test_every_refusal_of_every_operation_is_the_one_error_shape_with_its_codes(anon_client):
    schema = _schema(anon_client)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            keyed = operation.get("security") != [{}] and path not in {"/api/v1/health", "/api/v1/ready"}
            expected = {"400", "406", "414", "429", "503"} | ({"401", "403"} if keyed else set())
            assert expected <= set(responses), (method, path, sorted(responses))
            for status, response in responses.items():
                if int(status) < 400 or path in {"/api/v1/health", "/api/v1/ready"} and status == "503":
                    continue
                content = response["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
                codes = [example["value"]["error"]["code"] for example in content["examples"].values()]
                assert codes and all(f"`{code}`" in response["description"] for code in codes)
    assert schema["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]


def test_every_http_error_code_of_the_api_is_documented_on_some_route(anon_client):
    from speakers.api.errors import STATUS

    schema = _schema(anon_client)
    documented = {example["value"]["error"]["code"]
                  for item in schema["paths"].values() for operation in item.values()
                  for status, response in operation["responses"].items() if int(status) >= 400
                  for example in response.get("content", {}).get("application/json", {}).get("examples", {}).values()}
    websocket_only = {"invalid_message", "invalid_audio_frame", "message_too_large", "session_too_long",
                      "idle_timeout", "audio_too_slow", "too_many_sessions", "calibration_refused"}  # the last: a command's
    assert set(STATUS) - websocket_only <= documented, sorted(set(STATUS) - websocket_only - documented)
