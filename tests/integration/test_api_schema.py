"""Schemathesis against the API's own OpenAPI schema, in-process: every operation with generated
inputs (examples, every case the coverage phase derives from the schema, then fuzzing; valid and
invalid) under all of Schemathesis' checks: no 5xx, every answer as the schema says (status, content
type, body, headers), valid data accepted and invalid data refused, a 405 naming the methods a path
has. 20 fuzzed examples per operation in the suite; SCHEMA_EXAMPLES=300 for a longer hunt.
Inputs that once gave a 500, and that generation is unlikely to find, are sent as explicit examples."""

from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from fastapi.testclient import TestClient
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from renamer_ray.config import load_settings
from renamer_ray.service.api import create_app
from renamer_ray.service.local.aws import provision
from tests.support.images import drawn_files

KEY = "schema-key"
# Answers to well-formed requests that the schema documents as deliberate, for rules a schema cannot
# state: an upload's files must hold an image (415) within the limits of this deployment (413: also
# before any field is read, so for invalid fields too), its template and callback_url must parse
# (422); a chat request must hold an image (400) the model can name (422), for this MODEL_ID (404).
DELIBERATE = {
    "POST /v1/jobs/rename": {"positive_data_acceptance": ["200", "401", "409", "413", "415", "422", "429"],
                             "negative_data_rejection": ["400", "401", "413", "415", "422", "429"]},
    "POST /v1/chat/completions": {"positive_data_acceptance": ["200", "400", "401", "404", "413", "422", "429"]},
}


def schemathesis_config() -> SchemathesisConfig:
    """All checks (the default: every one enabled), the caller's key on every request."""
    return SchemathesisConfig.from_dict({
        "headers": {"X-API-Key": KEY},
        "max-stream-events": 1,  # a queued job's event stream is endless: its first event shows its shape
        "checks": {"enabled": True},
        "generation": {"max-examples": int(os.environ.get("SCHEMA_EXAMPLES", "20")), "database": "none"},
        "operations": [{"include-name": name, "checks": {check: {"expected-statuses": statuses}
                                                         for check, statuses in checks.items()}}
                       for name, checks in DELIBERATE.items()],
    })


@pytest.fixture(scope="module")
def api_schema(s3_endpoint):
    tag = uuid.uuid4().hex[:6]
    settings = provision(load_settings(
        aws_endpoint_url=s3_endpoint, s3_in_bucket=f"sch-in-{tag}", s3_out_bucket=f"sch-out-{tag}",
        api_keys=f"{KEY}:schema", max_files_per_job=3, max_file_bytes=100_000, max_job_bytes=200_000,
        webhook_secret="s3cret"), queue_name=f"sch-jobs-{tag}")

    async def driver_status() -> dict:
        return {"last_poll_age_s": 0.1}

    async def ask_namer(_: dict) -> dict:  # the warm namer, answering at once
        return {"raw": "red circle", "error": None}

    app = create_app(settings, driver_status=driver_status, ask_namer=ask_namer)
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis_config())


def failures(schema) -> list[str]:
    """Every failed check, error and run-level failure of a whole Schemathesis run, in words."""
    found = []
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            found += [f"{event.recorder.label} [{node.name}] {node.failure_info.failure.title}: "
                      f"{node.failure_info.failure.message}\n{node.failure_info.code_sample}"
                      for nodes in event.recorder.checks.values() for node in nodes
                      if node.status == Status.FAILURE and node.failure_info is not None]
        elif isinstance(event, events.NonFatalError):
            found.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            found.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            found += [f"{failure.operation}: {failure.title}: {failure.message}" for failure in event.failures]
    return found


def test_every_operation_passes_all_checks(api_schema):
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert labels >= {"GET /health", "GET /ready", "POST /v1/jobs/rename", "GET /v1/jobs", "GET /v1/jobs/{job_id}",
                      "DELETE /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/events", "GET /v1/jobs/{job_id}/archive",
                      "POST /v1/chat/completions"}, labels
    found = failures(api_schema)
    assert not found, f"seed {api_schema.config.seed}: " + "\n\n".join(found[:10])


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
