"""OpenAI-compatible ``POST /v1/chat/completions`` for images, answered by the warm namer: other
tools (and this project's own ``ENGINE=openai``) can name an image through any OpenAI client.

One image per request, as a ``data:`` URL (``image_url`` content part); the user message's text
parts are the user prompt (at most ``MAX_PROMPT_CHARS``). System messages are not used: the namer
keeps its own rules prompt. http(s) image URLs are refused, never fetched (a server that fetches
what callers name is an SSRF hole). ``model`` must be ``MODEL_ID``. The API keys are those of the
jobs API, in ``X-API-Key`` or ``Authorization: Bearer``, as OpenAI clients send them. Errors are
in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

Nothing here decodes the image: this route runs in the API's process, on the head, which never
decodes an untrusted image. It reads the base64 (at most MAX_FILE_BYTES, checked before decoding
it) and the image's header (at most MAX_DECODE_PIXELS, as the decoder allows; 413 beyond), then
sends the bytes to the namer, which decodes them where it runs, as the pipeline does
(``service/namer.py``). One API key has at most MAX_CHAT_CONCURRENCY_PER_KEY requests running at
once per API replica (429 with Retry-After beyond); the body's JSON is bounded in size, in nesting
(MAX_JSON_DEPTH) and in structure outside its strings before it is parsed (``chat_body.py``). The name answered is the
model's, fitted to the naming rules as every name of the pipeline is (kebab-case, NAME_MAX_CHARS,
NAME_MAX_WORDS, the blocklist, ``image`` when nothing is left).

``response_format`` (OpenAI's structured output) is honoured for the shape of the answer: with a
``json_schema`` of an object with one string property (as ``ENGINE_STRUCTURED`` sends), the content is
that object with the name in it; with ``json_object``, ``{"name": …}``. The name itself is what the
namer's own constrained decoding allows (kebab-case words within NAME_MAX_WORDS), not a compiled
``pattern``: a client's rules fit it to its own limits after, as for every answer.

``stream: true`` is answered as OpenAI streams: ``chat.completion.chunk`` Server-Sent Events ending in
``data: [DONE]``, with the usage in a last chunk when ``stream_options.include_usage`` asks for it.
The name comes in one content chunk: it is fitted to the rules once the model has finished, so no
part of it is known before. ``usage`` counts the model's tokens: the prompt's (its text and the
image's tokens) and those it generated. ``GET /v1/models`` lists the model (``routes/models.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
import uuid
from typing import Annotated, AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from renamer_ray.service.api.chat_body import MAX_JSON_DEPTH, answer_field, image_and_prompt, read_body, streaming
from renamer_ray.service.api.deps import ApiKeyDep, BearerDep, Services, caller_namespace, get_services
from renamer_ray.service.api.limits import LimitReached
from renamer_ray.service.api.openai_shapes import (ChatCompletion, ChatRefused, Choice, Message, OpenAIError, Usage,
                                                   completion_events, model_not_found)

router = APIRouter(prefix="/v1", tags=["openai"])
DATA_URL = re.compile(r"^data:(?P<type>image/[A-Za-z0-9.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.S)
NAMER_TIMEOUT_SECONDS = 120


_ERROR = {"model": OpenAIError}
RESPONSES = {
    200: {"description": "the completion; with stream: true, Server-Sent Events of chat.completion.chunk objects "
                         "ending in data: [DONE]",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    400: {**_ERROR, "description": "a malformed request: no image, an image URL that is not a data: URL, a bad "
                                   f"image, JSON nested deeper than {MAX_JSON_DEPTH} levels or too complex, a "
                                   "stream or stream_options of the wrong type"},
    401: {**_ERROR, "description": "a missing or unknown API key (X-API-Key or Authorization: Bearer)"},
    404: {**_ERROR, "description": "the model is not this service's MODEL_ID"},
    413: {**_ERROR, "description": "the image or the request is over MAX_FILE_BYTES, or the image's header "
                                   "claims more pixels than MAX_DECODE_PIXELS"},
    422: {**_ERROR, "description": "the model could not name this image"},
    429: {**_ERROR, "description": "MAX_CHAT_CONCURRENCY_PER_KEY requests of this API key are running; see "
                                   "Retry-After"},
    503: {**_ERROR, "description": "the namer is not connected or not answering"},
}
_TEXT_PART = {"type": "object", "required": ["type", "text"],
              "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}
_IMAGE_PART = {"type": "object", "required": ["type", "image_url"], "properties": {
    "type": {"type": "string", "enum": ["image_url"]},
    "image_url": {"type": "object", "required": ["url"], "properties": {
        "url": {"type": "string", "description": "data:image/…;base64,… (http(s) URLs are refused)"},
        "detail": {"type": "string"}}}}}
BODY = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["model", "messages"], "properties": {
        "model": {"type": "string", "description": "MODEL_ID"},
        "messages": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["role", "content"], "properties": {
                "role": {"type": "string", "enum": ["system", "user", "assistant"]},
                "content": {"oneOf": [{"type": "string"},
                                      {"type": "array", "items": {"oneOf": [_TEXT_PART, _IMAGE_PART]}}]}}}},
        "max_tokens": {"type": "integer"}, "temperature": {"type": "number"},
        "stream": {"type": "boolean", "description": "answer as chat.completion.chunk Server-Sent Events"},
        "stream_options": {"type": "object", "properties": {"include_usage": {
            "type": "boolean", "description": "end the stream with a chunk holding the usage"}}},
        "response_format": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
            "json_schema": {"type": "object", "description": "{name, schema}: an object schema with one string "
                                                             "property, which the answer holds the name in"}}}}}}}}}


def chat_caller(services: Annotated[Services, Depends(get_services)], x_api_key: ApiKeyDep,
                bearer: BearerDep) -> str:
    """The caller's namespace: the same keys as the jobs API (:func:`caller_namespace`), in X-API-Key
    or as a Bearer token, as OpenAI clients send it (ChatRefused 401 otherwise, answered in OpenAI's
    shape by the app's handler)."""
    token = bearer.credentials if bearer else None
    if (namespace := caller_namespace(services, x_api_key, token)) is not None:
        return namespace
    raise ChatRefused(401, "missing or unknown API key: send it as Authorization: Bearer <key> or in the "
                           "X-API-Key header", kind="authentication_error", code="invalid_api_key")


async def chat_slot(services: Annotated[Services, Depends(get_services)],
                    ns: Annotated[str, Depends(chat_caller)]) -> AsyncIterator[str]:
    """One of the caller's MAX_CHAT_CONCURRENCY_PER_KEY slots for the whole request (its body, the
    namer's answer), or 429 with Retry-After in OpenAI's shape when all are taken; yields the
    caller's namespace."""
    try:
        services.chats.take(ns)
    except LimitReached as full:
        raise ChatRefused(429, full.message, kind="requests", code="rate_limit_exceeded",
                          headers=full.headers) from None
    try:
        yield ns
    finally:
        services.chats.give_back(ns)


def _image_bytes(url: str, max_bytes: int) -> bytes:
    if url.lower().startswith(("http://", "https://")):
        raise ChatRefused(400, "image URLs are not fetched by this server (fetching what callers name would let them "
                               "reach its network): send the image itself as a data:image/…;base64,… URL",
                          param="messages", code="image_url_not_allowed")
    match = DATA_URL.match(url)
    if not match:
        raise ChatRefused(400, "the image must be a base64 data: URL (data:image/png;base64,…)", param="messages")
    encoded = match.group("data")
    if len(encoded) > (max_bytes + 2) // 3 * 4 + 4:
        raise ChatRefused(413, f"the image is too large: at most {max_bytes:,} bytes (MAX_FILE_BYTES)")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ChatRefused(400, "the image's data: URL is not valid base64", param="messages") from None
    if len(data) > max_bytes:
        raise ChatRefused(413, f"the image is too large: at most {max_bytes:,} bytes (MAX_FILE_BYTES)")
    return data


def _check_header(data: bytes, settings) -> None:
    """Refuse, from the image's header alone, what the decoder would refuse: bytes that are not a
    supported image (400) and more pixels than it decodes (413: MAX_DECODE_PIXELS for the formats
    decoded at full size, Pillow's bomb limit for JPEG). Nothing is decoded here (the namer does)."""
    from renamer_ray.images import DEFAULT_MAX_IMAGE_PIXELS, REDUCED_DECODE_FORMATS, ImageError
    from renamer_ray.images.sniff import open_image

    try:
        with open_image(data) as image:  # the header only: Pillow reads pixels on load(), never called here
            kind, (width, height) = image.format or "", image.size
    except ImageError as exc:
        status = 413 if str(exc).startswith("image too large") else 400  # Pillow's own bomb guard, at open
        raise ChatRefused(status, f"the image cannot be used: {exc}", param="messages") from None
    limit, setting = ((DEFAULT_MAX_IMAGE_PIXELS, "the decompression-bomb guard") if kind in REDUCED_DECODE_FORMATS
                      else (settings.max_decode_pixels, "MAX_DECODE_PIXELS"))
    if width * height > limit:
        raise ChatRefused(413, f"the image is too large: its header says {width}x{height} pixels, over the "
                               f"{limit:,}-pixel limit for {kind} images ({setting})", param="messages")


def _image(url: str, settings) -> bytes:
    """The image's bytes from its data: URL, refused before anything is decoded where they are too
    many (MAX_FILE_BYTES) or their header claims too many pixels."""
    data = _image_bytes(url, settings.max_file_bytes)
    _check_header(data, settings)
    return data


@router.post("/chat/completions", response_model=ChatCompletion, responses=RESPONSES, openapi_extra=BODY)
async def chat_completions(request: Request, services: Annotated[Services, Depends(get_services)],
                           _: Annotated[str, Depends(chat_slot)]):
    """Name one image, answering as OpenAI's chat completions: ``choices[0].message.content`` is the
    model's name for it, fitted to the naming rules (kebab-case within NAME_MAX_CHARS and
    NAME_MAX_WORDS, no blocked word; the jobs API's names also get the job's style and
    de-duplication); with ``response_format``, a JSON object holding it; ``usage``, the model's
    tokens. With ``stream``, the same answer as ``chat.completion.chunk`` Server-Sent Events."""
    settings = services.settings
    try:
        body = await read_body(request, settings.max_file_bytes * 4 // 3 + 64 * 1024 + settings.max_prompt_chars * 8)
        model = body.get("model")
        if model != settings.model_id:
            raise model_not_found(model, settings.model_id)
        url, prompt = image_and_prompt(body)
        field = answer_field(body)
        stream, include_usage = streaming(body)
        if prompt and len(prompt) > settings.max_prompt_chars:
            raise ChatRefused(400, f"the prompt is too long: at most {settings.max_prompt_chars} characters "
                                   "(MAX_PROMPT_CHARS)", param="messages")
        image = await run_in_threadpool(_image, url, settings)
        if services.ask_namer is None:
            raise ChatRefused(503, "no namer is connected to this API", kind="server_error")
        try:  # the namer decodes the bytes, where it runs (never this process: see the module's docstring)
            answer = await asyncio.wait_for(services.ask_namer({"image": image, "prompt": prompt, "style": None}),
                                            timeout=NAMER_TIMEOUT_SECONDS)
        except Exception as exc:  # a dead, restarting or overloaded namer: say so, never a 500
            raise ChatRefused(503, f"the namer is not answering: {type(exc).__name__}: {exc}"[:300],
                              kind="server_error") from None
        if answer.get("unusable"):  # the namer could not decode it
            raise ChatRefused(400, f"the image cannot be used: {answer.get('error')}", param="messages")
        if answer.get("error"):
            raise ChatRefused(422, answer["error"], code="image_not_named")
    except ChatRefused as refused:
        return refused.response()
    # The rules every name of the pipeline passes: kebab-case (the model's), the limits, the blocklist.
    name = settings.naming_style.for_model().sanitize(answer.get("raw") or "")
    content = json.dumps({field: name}) if field else name
    prompt_tokens, completion_tokens = answer["prompt_tokens"], answer["completion_tokens"]
    completion = ChatCompletion(
        id="chatcmpl-" + uuid.uuid4().hex, object="chat.completion", created=int(time.time()), model=settings.model_id,
        choices=[Choice(index=0, message=Message(role="assistant", content=content), finish_reason="stop")],
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                    total_tokens=prompt_tokens + completion_tokens))
    if stream:
        return StreamingResponse(completion_events(completion, include_usage=include_usage),
                                 media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    return completion
