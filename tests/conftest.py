"""Shared fixtures: a real local Ray instance, the shipped toy checkpoint, moto's server.

Each test is marked with its tier (``unit``, ``integration``, ``e2e``) from its folder, so
``pytest -m unit`` and ``make check`` select by tier; helpers live in ``tests/support``; the local
stack's fixture is in ``tests/e2e/conftest.py``, the only tier that starts it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Tests talk only to the S3-compatible server they start on 127.0.0.1, with dummy credentials. Set
# before Ray starts, so that Ray's workers inherit them too.
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
# No settings file of the developer's (~/.config/renamer-ray, ./renamer-ray.toml) leaks into the suite:
# one empty file stands in for them (the config-file tests point elsewhere).
_EMPTY_CONFIG = Path(tempfile.mkdtemp(prefix="renamer-ray-config-")) / "renamer-ray.toml"
_EMPTY_CONFIG.write_text("")
os.environ["RENAMER_RAY_CONFIG"] = str(_EMPTY_CONFIG)
# The suite's own local Ray instance runs without token auth: Ray 2.60 would otherwise switch it on
# for this process and its children (RAY_AUTH_MODE=token) and write ~/.ray/auth_token.
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray instance, shared by the tests that run pipelines."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _no_outage_from_an_earlier_test(monkeypatch):
    """The storage retry's outage bookkeeping is per process: each test starts with none."""
    from renamer_ray.io.storage import retry

    monkeypatch.setattr(retry, "_outages", {})


@pytest.fixture
def library(tmp_path) -> Path:
    """A photo library to rename: a copy of the bundled samples (a folder, ten images, a text file)."""
    import shutil

    from renamer_ray.cli import SAMPLES

    shutil.copytree(SAMPLES, tmp_path / "library")
    return tmp_path / "library"


@pytest.fixture(scope="session")
def toy_namer():
    from renamer_ray.model.namer import Qwen2VLNamer

    return Qwen2VLNamer("toy-shapes", max_pixels=786_432, max_new_tokens=60)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's server mode on 127.0.0.1: real HTTP, real boto3 and pyarrow clients."""
    from renamer_ray.service.local.aws import start_moto

    server, endpoint = start_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def s3(s3_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")


TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    """Mark every test with the tier its folder names."""
    root = Path(__file__).parent
    for item in items:
        tier = Path(item.fspath).relative_to(root).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
