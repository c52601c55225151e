"""The OpenAI-compatible ``POST /v1/chat/completions`` and ``GET /v1/models`` in-process (FastAPI's
TestClient) with a stand-in namer: every 4xx path in OpenAI's error shape, both ways of sending the
key, the streamed answer's chunks; and the ``openai`` engine's client (``model/openai_engine.py``)
against that API served over real HTTP: answers, retries on 503, and a request that keeps failing
becoming that image's error sentence. The namer deployment behind the route (it decodes the image:
the API never does) is here too, in the test's Ray, and the official ``openai`` client against it:
models listed, an image named, streamed or not, with its tokens counted. ENGINE=openai runs are in
tests/e2e/test_openai_engine.py."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from renamer_ray.config import load_settings
from renamer_ray.model.vision import pixel_bounds
from renamer_ray.service.api import create_app
from renamer_ray.service.local.aws import provision
from renamer_ray.service.local.ports import free_ports
from renamer_ray.service.namer import name_request
from tests.support.eventually import eventually
from tests.support.images import drawn_files

KEY_A, KEY_B = "chat-key-a", "chat-key-b"
A, B = {"X-API-Key": KEY_A}, {"X-API-Key": KEY_B}
MODEL = "toy-shapes"
TOKENS = {"prompt_tokens": 61, "completion_tokens": 4}  # what the stand-in says its model's answers took


@pytest.fixture(scope="module")
def settings(s3_endpoint):
    tag = uuid.uuid4().hex[:6]
    return provision(load_settings(
        aws_endpoint_url=s3_endpoint, s3_in_bucket=f"chat-in-{tag}", s3_out_bucket=f"chat-out-{tag}",
        api_keys=f"{KEY_A}:team-a", model_id=MODEL, max_file_bytes=200_000, max_prompt_chars=20),
        queue_name=f"chat-jobs-{tag}")


class StandInNamer:
    """The warm namer's contract: one image's request (its bytes) → {"raw", "error"} and the answer's
    token counts (``TOKENS``). It decodes as
    the namer deployment does (``service/namer.py``'s ``name_request``, the pipeline's decoder), then
    stands in for the model: ``answer`` is what the model says; ``rows`` what reached the model.
    ``fail`` first calls raise; with ``gate`` (a threading.Event) set up, each call says it has
    arrived (``arrived``) and waits for the gate to open."""

    def __init__(self, max_decode_pixels: int):
        self.requests: list[dict] = []
        self.rows: list[dict] = []
        self.fail = 0
        self.answer = "red-circle"
        self.decodes = True
        self.gate: threading.Event | None = None
        self.arrived = threading.Semaphore(0)
        low, high = pixel_bounds(MODEL, 786_432)
        self.decode_options = dict(min_pixels=low, max_pixels=high, max_decode_pixels=max_decode_pixels)

    async def __call__(self, request: dict) -> dict:
        self.requests.append(request)
        self.arrived.release()
        if self.gate is not None:
            await asyncio.to_thread(self.gate.wait, 60)
        if self.fail:
            self.fail -= 1
            raise TimeoutError("the namer is busy")
        if not self.decodes:
            return {"raw": self.answer, "error": None, **TOKENS}
        return await name_request(request, self.model, **self.decode_options)

    async def model(self, row: dict) -> dict:
        self.rows.append(row)
        if row["width"] * row["height"] * 3 != len(row["rgb"]):
            return {"raw": None, "error": "pixels do not match the size", **TOKENS}
        return {"raw": self.answer, "error": None, **TOKENS}


@pytest.fixture
def namer(settings):
    return StandInNamer(settings.max_decode_pixels)


@pytest.fixture
def client(settings, namer):
    with TestClient(create_app(settings, ask_namer=namer)) as client:
        yield client


@pytest.fixture(scope="module")
def png():
    return drawn_files(seed=902, count=1, max_side=200)[0][0]


def png_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def body(url: str, text: str | None = "name it", model: str = MODEL) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": url}}] + ([{"type": "text", "text": text}] if text else [])
    return {"model": model, "messages": [{"role": "system", "content": "ignored"}, {"role": "user", "content": parts}],
            "temperature": 0, "max_tokens": 60}


def test_an_image_is_named_in_openais_shape_with_either_key_header(client, namer, png):
    for headers in (A, {"Authorization": f"Bearer {KEY_A}"}):
        answer = client.post("/v1/chat/completions", json=body(data_url(png)), headers=headers)
        assert answer.status_code == 200, answer.text
        got = answer.json()
        assert got["object"] == "chat.completion" and got["model"] == MODEL and got["id"].startswith("chatcmpl-")
        assert got["choices"][0]["message"] == {"role": "assistant", "content": "red-circle"}
        assert got["choices"][0]["finish_reason"] == "stop"
        assert got["usage"] == {**TOKENS, "total_tokens": 65}, "the model's tokens, counted by the namer"
    assert namer.requests[-1] == {"image": png, "prompt": "name it", "style": None}, "the image's own bytes"
    row = namer.rows[-1]  # decoded on the namer's side, as the pipeline decodes
    assert row["prompt"] == "name it" and row["style"] is None and row["width"] * row["height"] > 0


def test_a_structured_request_gets_the_name_in_the_json_it_asked_for(client, namer, png):
    from renamer_ray.model.openai_engine import response_format

    def content(shape: dict | None) -> str:
        answer = client.post("/v1/chat/completions", json={**body(data_url(png)), "response_format": shape}, headers=A)
        assert answer.status_code == 200, answer.text
        return answer.json()["choices"][0]["message"]["content"]

    assert json.loads(content(response_format(4, None))) == {"name": "red-circle"}
    own = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}}}
    assert json.loads(content(own)) == {"title": "red-circle"}
    assert json.loads(content({"type": "json_object"})) == {"name": "red-circle"}
    assert content({"type": "text"}) == content(None) == "red-circle"
    asked = len(namer.requests)
    two = {"type": "json_schema", "json_schema": {"name": "x", "schema": {
        "type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array"}}}}}
    for shape, words in ((two, "one string property"), ({"type": "json_schema"}, "one string property"),
                         ({"type": "grammar"}, "must be text"), ("json", "must be text")):
        refused = client.post("/v1/chat/completions", json={**body(data_url(png)), "response_format": shape}, headers=A)
        assert refused.status_code == 400 and words in refused.json()["error"]["message"], (shape, refused.text)
        assert refused.json()["error"]["param"] == "response_format"
    assert len(namer.requests) == asked, "a refused request does not reach the model"


def test_a_streamed_request_gets_openais_chunks_ending_in_done(client, namer, png):
    """``stream: true`` is never ignored: the answer comes as ``chat.completion.chunk`` Server-Sent
    Events (the role, the content, the finish reason; the usage last when asked for), then
    ``data: [DONE]``. A refused streamed request is an error body, as OpenAI answers it."""
    def chunks(**asked) -> list[dict]:
        with client.stream("POST", "/v1/chat/completions", json={**body(data_url(png)), **asked}, headers=A) as answer:
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
            lines = [line for line in answer.iter_lines() if line]
        assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]", lines
        return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]

    plain = chunks(stream=True)
    assert {chunk["object"] for chunk in plain} == {"chat.completion.chunk"} and len({c["id"] for c in plain}) == 1
    assert [chunk["choices"][0]["delta"] for chunk in plain] == [
        {"role": "assistant", "content": ""}, {"content": "red-circle"}, {}]
    assert [chunk["choices"][0]["finish_reason"] for chunk in plain] == [None, None, "stop"]
    assert all("usage" not in chunk for chunk in plain) and plain[0]["model"] == MODEL
    counted = chunks(stream=True, stream_options={"include_usage": True})
    assert counted[-1]["choices"] == [] and counted[-1]["usage"] == {**TOKENS, "total_tokens": 65}
    assert all(chunk["usage"] is None for chunk in counted[:-1])
    structured = chunks(stream=True, response_format={"type": "json_object"})
    assert json.loads(structured[1]["choices"][0]["delta"]["content"]) == {"name": "red-circle"}

    whole = client.post("/v1/chat/completions", json={**body(data_url(png)), "stream": False,
                                                       "stream_options": {"include_usage": True}}, headers=A)
    assert whole.status_code == 200 and whole.json()["object"] == "chat.completion", whole.text
    for asked, param in (({"stream": "yes"}, "stream"), ({"stream": 1}, "stream"),
                         ({"stream": True, "stream_options": True}, "stream_options"),
                         ({"stream": True, "stream_options": {"include_usage": "yes"}}, "stream_options")):
        refused = client.post("/v1/chat/completions", json={**body(data_url(png)), **asked}, headers=A)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == param, (asked, refused.text)
    unknown = client.post("/v1/chat/completions", json={**body(data_url(png), model="gpt-4o"), "stream": True},
                          headers=A)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_the_model_is_listed_as_openai_lists_models(client, settings):
    """``GET /v1/models`` and ``/v1/models/{id}``: MODEL_ID, the one model the chat endpoint takes, with
    the chat endpoint's keys (declared as OpenAPI security schemes); another id is OpenAI's 404. A hub id's ``/`` is part of the id."""
    listed = client.get("/v1/models", headers={"Authorization": f"Bearer {KEY_A}"})
    assert listed.status_code == 200, listed.text
    assert listed.json()["object"] == "list" and [m["id"] for m in listed.json()["data"]] == [MODEL]
    assert listed.json()["data"][0]["object"] == "model" and listed.json()["data"][0]["owned_by"]
    assert client.get(f"/v1/models/{MODEL}", headers=A).json() == listed.json()["data"][0]
    for unknown in ("gpt-4o", "a%0Ab"):  # a line break no route matches is the same 404
        missing = client.get(f"/v1/models/{unknown}", headers=A)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found", unknown
    schema = client.get("/openapi.json").json()  # the keys as security schemes, as clients read them
    assert {s["type"] for s in schema["components"]["securitySchemes"].values()} == {"apiKey", "http"}
    assert not [p for p in schema["paths"]["/v1/models"]["get"].get("parameters", []) if p["in"] == "header"]
    for path in ("/v1/models", f"/v1/models/{MODEL}"):
        refused = client.get(path, headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    hub_id = "Qwen/Qwen2-VL-2B-Instruct"
    with TestClient(create_app(settings.model_copy(update={"model_id": hub_id}))) as hub:
        for path in (f"/v1/models/{hub_id}", "/v1/models/Qwen%2FQwen2-VL-2B-Instruct"):
            assert hub.get(path, headers=A).json()["id"] == hub_id, path


def test_bad_requests_get_the_right_status_and_an_openai_error(client, namer, png):
    too_big = png + b"\0" * 200_001
    cases = {
        "no key": (body(data_url(png)), {}, 401, "API key"),
        "wrong key": (body(data_url(png)), {"X-API-Key": "nope"}, 401, "API key"),
        "wrong bearer": (body(data_url(png)), {"Authorization": "Bearer nope"}, 401, "API key"),
        "basic auth": (body(data_url(png)), {"Authorization": f"Basic {KEY_A}"}, 401, "API key"),
        "wrong model": (body(data_url(png), model="gpt-4o"), A, 404, "toy-shapes"),
        "http url": (body("http://169.254.169.254/latest/meta-data"), A, 400, "not fetched"),
        "https url": (body("https://example.com/cat.jpg"), A, 400, "data:"),
        "not a data url": (body("file:///etc/passwd"), A, 400, "data: URL"),
        "bad base64": (body("data:image/png;base64,@@@not-base64@@@"), A, 400, "base64"),
        "not an image": (body(data_url(b"hello, not an image")), A, 400, "cannot be used"),
        "truncated image": (body(data_url(png[: len(png) // 2])), A, 400, "cannot be used"),
        "too big": (body(data_url(too_big)), A, 413, "200,000"),
        "no image": ({"model": MODEL, "messages": [{"role": "user", "content": "name it"}]}, A, 400, "one image"),
        "two images": ({"model": MODEL, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": data_url(png)}}] * 2}]}, A, 400, "one image"),
        "no messages": ({"model": MODEL, "messages": []}, A, 400, "messages"),
        "prompt too long": (body(data_url(png), text="x" * 21), A, 400, "20 characters"),
        "odd part": ({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "audio"}]}]}, A, 400,
                     "parts"),
    }
    for case, (payload, headers, status, words) in cases.items():
        answer = client.post("/v1/chat/completions", json=payload, headers=headers)
        assert answer.status_code == status, (case, answer.status_code, answer.text)
        error = answer.json()["error"]
        assert words in error["message"] and error["type"], (case, answer.text)
    assert client.post("/v1/chat/completions", content=b"{not json", headers=A).status_code == 400
    assert client.post("/v1/chat/completions", content=b"x" * 400_000, headers=A).status_code == 413
    assert namer.rows == []  # nothing reached the model (the truncated image failed in the namer's decode)


def test_a_namer_that_does_not_answer_is_503_and_an_images_failure_422(client, namer, png):
    namer.fail = 1
    busy = client.post("/v1/chat/completions", json=body(data_url(png)), headers=A)
    assert busy.status_code == 503 and "not answering" in busy.json()["error"]["message"]


def test_without_a_namer_the_route_says_so(settings, png):
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/chat/completions", json=body(data_url(png)), headers=A)
    assert answer.status_code == 503 and "no namer" in answer.json()["error"]["message"]


# --- hostile input and limits --------------------------------------------------------------------------

def test_a_body_nested_or_shaped_to_exhaust_the_parser_is_400(client, namer):
    """100,000 ``[`` used to end in the JSON parser's RecursionError: a 500. The body's shape is bounded
    before it is parsed: its nesting and what it holds outside strings."""
    for content, words in ((b"[" * 100_000, "JSON"), (b"[" * 40 + b"]" * 40, "nested too deeply"),
                           (b"[" + b"0," * 40_000 + b"0]", "too complex"), (b"\xff\xfe{}", "UTF-8")):
        answer = client.post("/v1/chat/completions", content=content, headers=A)
        assert answer.status_code == 400, (content[:20], answer.status_code, answer.text)
        assert words in answer.json()["error"]["message"], answer.text
    assert namer.requests == []


def test_an_image_too_large_is_refused_before_anything_is_decoded(client, namer, png, monkeypatch):
    """Base64 over MAX_FILE_BYTES is refused before it is decoded; an image whose header claims more
    pixels than MAX_DECODE_PIXELS (a few bytes of PNG claiming 48 MP, or 10,000 MP) from its header,
    413, and the namer never gets it."""
    from renamer_ray.service.api.routes import chat

    def no_base64(*_, **__):
        raise AssertionError("base64 decoded before its size was checked")

    with monkeypatch.context() as patched:
        patched.setattr(chat.base64, "b64decode", no_base64)
        over = client.post("/v1/chat/completions", json=body(data_url(b"\0" * 210_000)), headers=A)
    assert over.status_code == 413 and "200,000" in over.json()["error"]["message"], over.text
    for width, height in ((8000, 6000), (100_000, 100_000)):
        bomb = client.post("/v1/chat/completions", json=body(data_url(png_header(width, height))), headers=A)
        assert bomb.status_code == 413, (width, bomb.status_code, bomb.text)
        assert "too large" in bomb.json()["error"]["message"] and bomb.json()["error"]["param"] == "messages"
    assert "MAX_DECODE_PIXELS" in client.post("/v1/chat/completions", json=body(data_url(png_header(8000, 6000))),
                                              headers=A).json()["error"]["message"]
    assert namer.requests == [], "nothing was sent to be decoded"


def test_the_api_sends_the_images_bytes_and_the_namers_side_decodes_them(client, namer, png, monkeypatch):
    """The head never decodes an untrusted image. With every pixel decode made to fail in this process,
    the route still answers: it only sent the bytes. And with the namer's own code path standing in,
    the decode happens there, once per image."""
    import PIL.ImageFile

    from renamer_ray.images import decoder
    from renamer_ray.service import namer as namer_side

    def no_pixels(*_, **__):
        raise AssertionError("an image was decoded by the API")

    with monkeypatch.context() as patched:
        patched.setattr(PIL.ImageFile.ImageFile, "load", no_pixels)
        patched.setattr(decoder, "decode", no_pixels)
        namer.decodes = False  # the stand-in decodes nothing: any decode here would be the API's
        answer = client.post("/v1/chat/completions", json=body(data_url(png)), headers=A)
    assert answer.status_code == 200, answer.text
    assert namer.requests[-1]["image"] == png and "rgb" not in namer.requests[-1]

    decoded = []
    real = namer_side.decode
    monkeypatch.setattr(namer_side, "decode", lambda data, **options: decoded.append(data) or real(data, **options))
    namer.decodes = True
    assert client.post("/v1/chat/completions", json=body(data_url(png)), headers=A).status_code == 200
    assert decoded == [png] and len(namer.rows) == 1


def test_a_blocked_word_in_the_models_answer_never_comes_back(client, namer, png):
    """The answer passes the rules every pipeline name passes: the blocklist, kebab-case, the limits."""
    def content(answer: str, shape: dict | None = None) -> str:
        namer.answer = answer
        got = client.post("/v1/chat/completions", json={**body(data_url(png)), "response_format": shape}, headers=A)
        assert got.status_code == 200, got.text
        return got.json()["choices"][0]["message"]["content"]

    assert content("bastard-red-circle") == "red-circle"
    assert json.loads(content("red-shit-circle", {"type": "json_object"})) == {"name": "red-circle"}
    assert content("shit") == "image", "nothing left: the rules' fallback"
    assert content("Red Circle.PNG") == "red-circle"
    assert content("-".join(["word"] * 15)) == "-".join(["word"] * 10), "NAME_MAX_WORDS"


def test_a_keys_requests_beyond_its_limit_get_429_with_retry_after(settings, namer, png):
    """MAX_CHAT_CONCURRENCY_PER_KEY requests of one key run at once: one more is refused at once (429,
    Retry-After, OpenAI's shape), another key's request still goes through, and the slots come back."""
    app = create_app(settings.model_copy(update={"max_chat_concurrency_per_key": 2,
                                                 "api_keys": f"{KEY_A}:team-a,{KEY_B}:team-b"}), ask_namer=namer)
    namer.gate = threading.Event()
    request = body(data_url(png))
    with TestClient(app) as client, ThreadPoolExecutor(3) as pool:
        try:
            held = [pool.submit(client.post, "/v1/chat/completions", json=request, headers=A) for _ in range(2)]
            for _ in held:
                assert namer.arrived.acquire(timeout=30), "both requests reach the namer and wait there"
            refused = client.post("/v1/chat/completions", json=request, headers=A)
            assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit(), refused.text
            error = refused.json()["error"]
            assert "MAX_CHAT_CONCURRENCY_PER_KEY" in error["message"] and error["code"] == "rate_limit_exceeded"
            other = pool.submit(client.post, "/v1/chat/completions", json=request, headers=B)
            assert namer.arrived.acquire(timeout=30), "another key's request is not held up"
        finally:
            namer.gate.set()
        assert [f.result(timeout=30).status_code for f in (*held, other)] == [200, 200, 200]
        assert len(namer.requests) == 3
        namer.gate = None
        assert client.post("/v1/chat/completions", json=request, headers=A).status_code == 200, "slots given back"


@pytest.fixture(scope="module")
def deployed_namer(ray_local):
    """The real namer deployment (toy model) in the test's Ray: its handle."""
    from ray import serve

    from renamer_ray.service.namer import NAMER, bind_namer

    serve.start(proxy_location="Disabled")
    serve.run(bind_namer(load_settings(model_id=MODEL, batch_size=4, namer_num_cpus=0)), name="chat-namer",
              route_prefix=None)
    yield serve.get_deployment_handle(NAMER, app_name="chat-namer")
    serve.delete("chat-namer")


def asking(handle):
    """The API's ``ask_namer``: one request to the namer deployment behind ``handle``, as the ingress asks."""
    async def ask_namer(request: dict) -> dict:
        return await handle.name.remote(request)

    return ask_namer


def test_the_namer_deployment_decodes_the_bytes_and_the_api_never_does(deployed_namer, settings, monkeypatch):
    """The real namer deployment behind the route: with every pixel decode made to fail in this process
    (the API's), images are named — decoded in the namer's process — with the model's tokens
    counted, and bytes that are not an image are refused there with a sentence."""
    import PIL.ImageFile

    from renamer_ray.images import decoder
    from renamer_ray.service.namer import decoded_row

    def no_pixels(*_, **__):
        raise AssertionError("an image was decoded by the API")

    images = drawn_files(seed=1401, count=2, max_side=300)
    low, high = pixel_bounds(MODEL, 786_432)  # a pipeline run's rows come decoded, and are named as before
    row = decoded_row({"image": images[1][0]}, max_pixels=high, min_pixels=low, max_decode_pixels=40_000_000)
    assert deployed_namer.name.remote(row).result(timeout_s=120) == {"raw": images[1][2], "error": None}, (
        "a run's row gets what its columns hold: no token counts")

    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", no_pixels)
    monkeypatch.setattr(decoder, "decode", no_pixels)
    with TestClient(create_app(settings, ask_namer=asking(deployed_namer))) as client:
        for data, fmt, label in images:
            answer = client.post("/v1/chat/completions", json=body(data_url(data, f"image/{fmt.lower()}"), None),
                                 headers=A)
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["content"] == label
            usage = answer.json()["usage"]
            assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0, usage
            assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"], usage
        cut = images[0][0][: len(images[0][0]) // 2]  # its header is whole: only a decode finds it short
        truncated = client.post("/v1/chat/completions", json=body(data_url(cut), None), headers=A)
    assert truncated.status_code == 400 and "cannot be used" in truncated.json()["error"]["message"], truncated.text


# --- the openai engine's client and the official openai client over real HTTP ---------------------------

def serve_over_http(app):
    """``app`` on a real port (uvicorn in a thread) for as long as the fixture lasts: its /v1 base URL."""
    import uvicorn

    port = free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    eventually(lambda: server.started, "the API serves on its port", timeout=20, every=0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def served(settings, namer):
    """The API with the stand-in namer on a real port, as an endpoint's base URL."""
    yield from serve_over_http(create_app(settings, ask_namer=namer))


@pytest.fixture
def served_with_the_namer(settings, deployed_namer):
    """The API with the real namer deployment (toy model) on a real port, as an endpoint's base URL."""
    yield from serve_over_http(create_app(settings, ask_namer=asking(deployed_namer)))


def test_the_official_openai_client_lists_the_model_and_names_an_image_streamed_or_not(served_with_the_namer):
    """What tools built on the ``openai`` package do: list the models, retrieve one, then name a bundled
    sample (a HEIC photo) as one answer and as a stream, with the model's tokens counted."""
    from openai import NotFoundError, OpenAI

    from renamer_ray.cli import SAMPLES
    from tests.support.images import SAMPLES_EXPECTED

    client = OpenAI(base_url=served_with_the_namer, api_key=KEY_A, max_retries=0, timeout=120)
    assert [model.id for model in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(NotFoundError):
        client.models.retrieve("gpt-4o")

    sample = "IMG_0003.HEIC"
    messages = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": data_url((SAMPLES / sample).read_bytes(), "image/heic")}}]}]
    whole = client.chat.completions.create(model=MODEL, messages=messages)
    assert whole.choices[0].message.content == SAMPLES_EXPECTED[sample] and whole.choices[0].finish_reason == "stop"
    usage = whole.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0, usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == (
        SAMPLES_EXPECTED[sample])
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"
    assert chunks[-1].usage == usage, "the same answer, the same tokens (greedy decoding)"
    quiet = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
    assert all(chunk.usage is None for chunk in quiet) and quiet[-1].choices[0].finish_reason == "stop"


def images(count: int):
    from PIL import Image

    return [Image.new("RGB", (56, 56), (200, 30, 30)) for _ in range(count)]


def test_the_engine_client_names_images_and_retries_a_busy_endpoint(served, namer):
    from renamer_ray.model.openai_engine import EndpointNamer

    client = EndpointNamer(served, MODEL, api_key=KEY_A, concurrency=2, timeout=10, retries=2)
    namer.fail = 1  # the first request gets 503 and is asked again
    answers = client.name(images(3), user_prompt="name it")
    assert [a.raw for a in answers] == ["red-circle"] * 3 and not any(a.error for a in answers)
    assert len(namer.requests) == 4
    # The text the endpoint gets is the namer's own user text: here the default request, which is over this
    # API's 20-character MAX_PROMPT_CHARS: a 400 is not retried, it is the image's error sentence.
    refused = client.name(images(1))[0]
    assert refused.raw is None and refused.error.startswith("the inference endpoint answered 400: the prompt is too long")
    assert len(namer.requests) == 4


def test_the_engine_client_asks_for_structured_output_and_reads_the_name_from_it(served, namer):
    from renamer_ray.model.openai_engine import EndpointNamer

    answers = EndpointNamer(served, MODEL, api_key=KEY_A, structured=True).name(images(2), user_prompt="name it")
    assert [a.raw for a in answers] == ["red-circle"] * 2 and not any(a.error for a in answers)


@pytest.fixture
def json_server():
    """Another OpenAI-compatible server over real HTTP, as vLLM answers a structured request: it keeps
    the bodies it gets and answers every one with ``{"name": "blue-square"}`` as the content."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bodies: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            answer = json.dumps({"choices": [{"index": 0, "finish_reason": "stop", "message": {
                "role": "assistant", "content": json.dumps({"name": "blue-square"})}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", bodies
    server.shutdown()
    thread.join(10)


def test_structured_output_is_asked_for_only_when_set_and_its_json_is_read(json_server):
    from renamer_ray.model.openai_engine import EndpointNamer
    from renamer_ray.naming import NamingStyle

    url, bodies = json_server
    style = NamingStyle(max_words=3)
    structured = EndpointNamer(url, "qwen", structured=True).name(images(1), style=style)[0]
    assert structured.raw == "blue-square" and "response_format" in bodies[-1]
    assert bodies[-1]["response_format"]["json_schema"]["schema"]["properties"]["name"]["pattern"] == (
        "^[a-z0-9]+(-[a-z0-9]+){0,2}$"), "the style's word limit is in the pattern"
    plain = EndpointNamer(url, "qwen").name(images(1), style=style)[0]
    assert "response_format" not in bodies[-1] and plain.raw == '{"name": "blue-square"}'


def test_a_request_that_keeps_failing_is_that_images_error(served, namer):
    from renamer_ray.model.openai_engine import EndpointNamer

    namer.fail = 100
    answers = EndpointNamer(served, MODEL, api_key=KEY_A, retries=1, timeout=10).name(images(1), user_prompt="x")
    assert answers[0].raw is None and "503 after 2 attempts" in answers[0].error and "not answering" in answers[0].error
    wrong_key = EndpointNamer(served, MODEL, api_key="nope", retries=3).name(images(1), user_prompt="x")[0]
    assert wrong_key.error.startswith("the inference endpoint answered 401: missing or unknown API key")
    wrong_model = EndpointNamer(served, "gpt-4o", api_key=KEY_A).name(images(1), user_prompt="x")[0]
    assert "404" in wrong_model.error and "toy-shapes" in wrong_model.error


def test_an_endpoint_that_is_not_there_is_each_images_error():
    from renamer_ray.model.openai_engine import EndpointNamer

    closed = f"http://127.0.0.1:{free_ports(1)[0]}/v1"
    answers = EndpointNamer(closed, MODEL, retries=1, timeout=5).name(images(2))
    # Both attempts were refused at once, not waited out until their timeout.
    assert all(a.raw is None and "could not be reached after 2 attempts" in a.error for a in answers)
    assert all("Connection refused" in a.error for a in answers), [a.error for a in answers]
