"""Schemathesis against the API's own OpenAPI schema, in-process: every operation with generated
inputs (valid and invalid) answers without a 5xx, and every response matches what the schema says.
40 examples per operation in the suite; SCHEMA_EXAMPLES=300 for a longer hunt (run once: clean)."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from renamer_ray.config import load_settings
from renamer_ray.service.api import create_app
from renamer_ray.service.stack import provision

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
