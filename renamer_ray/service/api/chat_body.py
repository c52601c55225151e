"""Reading a chat-completions request: its JSON body within bounds (size, nesting, structure outside
its strings, checked before it is parsed), the one image URL and the prompt of its last user message,
the shape the answer is asked in (``response_format``) and whether it is streamed (``stream``).
Refusals are :class:`ChatRefused`."""

from __future__ import annotations

import json
import re

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from renamer_ray.service.api.openai_shapes import ChatRefused
from renamer_ray.service.uploads import decimal

MAX_JSON_DEPTH = 32                   # a chat request nests 6 deep, with a response_format schema about 10
MAX_JSON_STRUCTURE = 64 * 1024        # characters outside the JSON's strings: a chat request has a few hundred
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BRACKETS = re.compile(r"[\[\]{}]")


async def read_body(request: Request, limit: int) -> dict:
    """The JSON body, read up to ``limit`` bytes (413 beyond: nothing larger is held in memory),
    parsed off the event loop once its shape is known to be bounded (:func:`_parse`)."""
    declared = decimal(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise ChatRefused(413, f"the request is too large: at most {limit:,} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ChatRefused(413, f"the request is too large: at most {limit:,} bytes")
        chunks.append(chunk)
    return await run_in_threadpool(_parse, b"".join(chunks))


def _parse(raw: bytes) -> dict:
    """The body as JSON, refused (400) before parsing where its structure outside strings is over
    MAX_JSON_STRUCTURE characters or nests deeper than MAX_JSON_DEPTH: 100,000 ``[`` would exhaust
    the parser's recursion, and a body of small values would take many times its size in memory.
    A chat request is one large string (the image) in a small structure."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ChatRefused(400, "the body must be a JSON chat-completions request in UTF-8") from None
    structure = _JSON_STRING.sub('""', text)
    if len(structure) > MAX_JSON_STRUCTURE:
        raise ChatRefused(400, f"the body's JSON is too complex: at most {MAX_JSON_STRUCTURE:,} characters outside "
                               f"its strings (this one has {len(structure):,}; a chat-completions request has a "
                               "few hundred)")
    depth = deepest = 0
    for bracket in _BRACKETS.findall(structure):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_JSON_DEPTH:
        raise ChatRefused(400, f"the body's JSON is nested too deeply: at most {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise ChatRefused(400, "the body must be a JSON chat-completions request") from None
    if not isinstance(body, dict):
        raise ChatRefused(400, "the body must be a JSON object")
    return body


def image_and_prompt(body: dict) -> tuple[str, str | None]:
    """(the image URL, the user prompt) from the last user message."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRefused(400, "messages must be a non-empty list", param="messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise ChatRefused(400, "messages holds no user message with an image", param="messages")
    content = users[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise ChatRefused(400, "a user message's content must be a string or a list of parts", param="messages")
    images, texts = [], []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise ChatRefused(400, "an image_url part needs image_url.url (a data: URL)", param="messages")
            images.append(url)
        else:
            raise ChatRefused(400, "content parts must be {\"type\": \"text\"} or {\"type\": \"image_url\"}",
                              param="messages")
    if len(images) != 1:
        raise ChatRefused(400, f"send exactly one image per request (as an image_url part); this one has {len(images)}",
                          param="messages")
    prompt = "\n".join(text.strip() for text in texts if text.strip()) or None
    return images[0], prompt


def answer_field(body: dict) -> str | None:
    """The property a structured answer holds the name in (``response_format``), or None for text."""
    shape = body.get("response_format")
    if shape is None:
        return None
    kind = shape.get("type") if isinstance(shape, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return "name"
    if kind == "json_schema":
        schema = shape.get("json_schema", {}).get("schema") if isinstance(shape.get("json_schema"), dict) else None
        fields = schema.get("properties") if isinstance(schema, dict) else None
        if isinstance(fields, dict) and len(fields) == 1:
            (field, spec), = fields.items()
            if isinstance(spec, dict) and spec.get("type") == "string":
                return field
        raise ChatRefused(400, "this server's structured output is the name alone: response_format.json_schema.schema "
                               "must be an object with one string property", param="response_format")
    raise ChatRefused(400, "response_format.type must be text, json_object or json_schema", param="response_format")


def streaming(body: dict) -> tuple[bool, bool]:
    """(whether the answer is streamed, whether its stream ends with the usage): ``stream`` and
    ``stream_options.include_usage``, as OpenAI reads them (``null`` is their default; stream_options
    without a stream asks nothing)."""
    stream, options = body.get("stream"), body.get("stream_options")
    if stream is not None and not isinstance(stream, bool):
        raise ChatRefused(400, "stream must be true or false", param="stream")
    include_usage = options.get("include_usage") if isinstance(options, dict) else None
    if options is not None and not (isinstance(options, dict) and isinstance(include_usage, (bool, type(None)))):
        raise ChatRefused(400, 'stream_options must be an object such as {"include_usage": true}',
                          param="stream_options")
    return bool(stream), bool(stream and include_usage)
