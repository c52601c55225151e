"""Schemathesis against the API's own OpenAPI schema, in-process: every operation with generated
inputs (valid and invalid) answers without a 5xx, and every response matches what the schema says.
40 examples per operation in the suite; SCHEMA_EXAMPLES=300 for a longer hunt (run once: clean).
Inputs that once gave a 500, and that generation is unlikely to find, are sent as explicit examples."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from renamer_ray.config import load_settings
from renamer_ray.service.api import create_app
from renamer_ray.service.local.aws import provision
from tests.support.images import drawn_files

KEY = "schema-key"


@pytest.fixture(scope="module")
def api_schema(s3_endpoint):
    tag = uuid.uuid4().hex[:6]
    settings = provision(load_settings(
        aws_endpoint_url=s3_endpoint, s3_in_bucket=f"sch-in-{tag}", s3_out_bucket=f"sch-out-{tag}",
        api_keys=f"{KEY}:schema", max_files_per_job=3, max_file_bytes=100_000, max_job_bytes=200_000,
        webhook_secret="s3cret"), queue_name=f"sch-jobs-{tag}")

    async def driver_status() -> dict:
        return {"last_poll_age_s": 0.1}

    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, driver_status=driver_status))


def test_no_operation_answers_5xx_or_off_its_schema(api_schema):
    # Schemathesis' own pytest plugin does not run under pytest 9: drive its Hypothesis strategies here.
    from hypothesis import given

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 9  # health, ready; rename, list, status, cancel, events, archive; chat completions
    for operation in operations:
        @given(operation.as_strategy())
        @hypothesis_settings(max_examples=int(__import__("os").environ.get("SCHEMA_EXAMPLES", "40")), deadline=None, suppress_health_check=list(HealthCheck),
                             database=None)
        def check(case):
            case.call_and_validate(headers={"X-API-Key": KEY},
                                   checks=[not_a_server_error, response_schema_conformance, content_type_conformance])

        check()


def _multipart(boundary: str, data: bytes) -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n"
            ).encode() + data + f"\r\n--{boundary}--\r\n".encode()


def test_inputs_that_once_gave_a_500_are_4xx_as_declared(api_schema):
    """Each of these answered 500 once: a multipart boundary over RFC 2046's 70 characters, a
    first_index that str.isdigit() takes and int() refuses, callback URLs urllib cannot parse, a chat
    body nested beyond the JSON parser's recursion. Each is a 4xx with a sentence, as the schema says."""
    png = drawn_files(seed=903, count=1, max_side=120)[0][0]
    one = {"files": [("files", ("a.png", png))]}
    headers = {"X-API-Key": KEY}
    examples = {
        "300-character boundary": ("POST", "/v1/jobs/rename", 400, dict(content=_multipart("b" * 300, png), headers={
            **headers, "Content-Type": "multipart/form-data; boundary=" + "b" * 300})),
        "first_index ²": ("POST", "/v1/jobs/rename", 422, dict(**one, data={"first_index": "²"}, headers=headers)),
        "callback_url http://[::1/": ("POST", "/v1/jobs/rename", 422,
                                      dict(**one, data={"callback_url": "http://[::1/"}, headers=headers)),
        "callback_url port 99999": ("POST", "/v1/jobs/rename", 422,
                                    dict(**one, data={"callback_url": "https://example.com:99999/x"}, headers=headers)),
        "100,000 [": ("POST", "/v1/chat/completions", 400, dict(content=b"[" * 100_000, headers={
            **headers, "Content-Type": "application/json"})),
    }
    with TestClient(api_schema.app) as client:
        for name, (method, path, status, request) in examples.items():
            response = client.request(method, path, **request)
            assert response.status_code == status, (name, response.status_code, response.text)
            assert "detail" in response.json() or "error" in response.json(), (name, response.text)
            api_schema[path][method].validate_response(response)
