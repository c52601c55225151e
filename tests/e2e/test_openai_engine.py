"""The OpenAI-compatible half of the engines, on CPU, against a real server: the project's own.

The local stack (`renamer-ray up`, toy model) answers ``POST /v1/chat/completions`` from its warm
namer; an OpenAI-style client names a drawn image through it; and a rename run with
``ENGINE=openai`` pointed at it names a folder, asking for free text or for structured output
(``ENGINE_STRUCTURED``): the names pass the same rules, de-duplication and manifest as with the
run's own model."""

from __future__ import annotations

import base64

import httpx
import pytest

from renamer_ray.config import load_settings
from renamer_ray.records.manifest import parse_lines
from renamer_ray.pipeline.run import RunOptions, run
from tests.support.images import drawn_files
from tests.support.stack import KEY_A

MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
        "TIFF": "image/tiff"}


def ask(stack, data: bytes, fmt: str, headers: dict, model: str = "toy-shapes") -> httpx.Response:
    url = f"data:{MIME.get(fmt.upper(), 'image/png')};base64," + base64.b64encode(data).decode()
    body = {"model": model, "temperature": 0, "max_tokens": 60, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                     {"type": "text", "text": "Name this image after its primary subject."}]}]}
    return httpx.post(f"{stack.api}/v1/chat/completions", json=body, headers=headers, timeout=120)


def test_an_openai_client_names_a_drawn_image_with_the_warm_namer(stack):
    for data, fmt, label in drawn_files(seed=1401, count=3, max_side=400):
        answer = ask(stack, data, fmt, {"Authorization": f"Bearer {KEY_A}"})
        assert answer.status_code == 200, answer.text
        completion = answer.json()
        assert completion["object"] == "chat.completion" and completion["model"] == "toy-shapes"
        assert completion["choices"][0]["message"]["content"] == label, (fmt, completion)
    data, fmt, _ = drawn_files(seed=1402, count=1, max_side=200)[0]
    assert ask(stack, data, fmt, {"X-API-Key": KEY_A}).status_code == 200
    assert ask(stack, data, fmt, {"Authorization": "Bearer wrong"}).status_code == 401
    assert ask(stack, data, fmt, {"X-API-Key": KEY_A}, model="gpt-4o").status_code == 404


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Drawn images in two folders, one of them twice (a duplicate name to de-duplicate), and a text file."""
    root = tmp_path_factory.mktemp("engine-src")
    files = drawn_files(seed=1403, count=4, max_side=300)
    labels = {}
    for number, (data, fmt, label) in enumerate(files):
        place = root / ("trip" if number % 2 else "") / f"IMG_{number:04d}.{fmt.lower()}"
        place.parent.mkdir(exist_ok=True)
        place.write_bytes(data)
        labels[str(place.relative_to(root))] = label
    (root / "IMG_copy.png").write_bytes(files[0][0])
    labels["IMG_copy.png"] = files[0][2]
    (root / "notes.txt").write_text("not an image")
    return root, labels


@pytest.mark.parametrize("structured", [False, True], ids=["free-text", "structured-output"])
def test_a_run_with_engine_openai_names_a_folder_through_the_service(stack, ray_local, folder, tmp_path, structured):
    source, labels = folder
    settings = load_settings(engine="openai", engine_url=f"{stack.api}/v1", engine_api_key=KEY_A,
                             model_id="toy-shapes", engine_concurrency=2, batch_size=2, engine_structured=structured)
    summary = run(RunOptions(source=str(source), target=str(tmp_path / "dst")), settings)
    assert summary.ok == len(labels) and summary.failed == 0
    records = {r.source: r for r in parse_lines((tmp_path / "dst" / "manifest.jsonl").read_text())}
    names = set()
    for relative, label in labels.items():
        record = records[str(source / relative)]
        assert record.status == "ok" and record.raw == label, record
        assert record.name.startswith(label) and (tmp_path / "dst" / record.output).is_file(), record
        names.add(record.output)
    assert len(names) == len(labels)  # the duplicate was given a name of its own


def test_an_endpoint_that_refuses_fails_each_image_alone_with_its_reason(stack, ray_local, folder, tmp_path):
    source, labels = folder
    settings = load_settings(engine="openai", engine_url=f"{stack.api}/v1", engine_api_key="not-a-key",
                             model_id="toy-shapes", engine_retries=0)
    summary = run(RunOptions(source=str(source), target=str(tmp_path / "dst")), settings)
    assert summary.ok == 0 and summary.failed == len(labels)
    records = parse_lines((tmp_path / "dst" / "manifest.jsonl").read_text())
    assert all(r.status == "error" and "answered 401" in r.error and "API key" in r.error for r in records), records
