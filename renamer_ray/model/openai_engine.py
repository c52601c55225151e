"""The ``openai`` engine: names images through any OpenAI-compatible chat-completions endpoint
(vLLM, SGLang, Ollama, a hosted API, or this project's own service: ``POST /v1/chat/completions``).

Each image goes as a PNG ``data:`` URL of the pixels the decode stage made (lossless: the endpoint
sees what the ``transformers`` engine would), with the same prompt text (``prompts.py``), greedy
(temperature 0) and at most ``max_tokens`` new tokens. Requests run on a bounded thread pool; a
connection error, 429 or 5xx is retried a bounded number of times with backoff, and an image whose
request still fails gets that as its error sentence: it fails alone, never its batch or the run.
The answer's first line is the raw name: the rules, the style and de-duplication come after, as for
every engine. With ``structured`` (``ENGINE_STRUCTURED``) the request asks for OpenAI's structured
output: a JSON object whose one ``name`` is kebab-case words within the word limit (the pattern of
``ENGINE=vllm``), so a server that supports it keeps the model in the rules' words as it writes.
HTTP with urllib3 (a runtime dependency); no model, no torch here.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import random
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import urllib3

from renamer_ray.naming import prompts
from renamer_ray.model.answers import ImageContext, Naming, first_line, per_image
from renamer_ray.naming.rules import name_regex

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
BACKOFF_SECONDS = 0.5             # first wait; doubled per retry (with jitter), at most MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 8.0
MAX_ANSWER_BYTES = 1024 * 1024    # an answer larger than this is not a name
CONNECT_TIMEOUT_SECONDS = 10.0
JSON_TOKENS = 16                  # the JSON around a structured answer's name: {"name": "…"}
_NAME_FIELD = re.compile(r'"name"\s*:\s*"((?:[^"\\]|\\.)*)')


class EndpointError(RuntimeError):
    """A request failed for good (after its retries, or with an answer no retry would change)."""


def png_data_url(image) -> str:
    """A PIL image as a ``data:image/png;base64,…`` URL."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def response_format(max_words: int, language: str | None) -> dict:
    """OpenAI's structured output for a name: ``{"name": "…"}``, the name in the rules' words."""
    return {"type": "json_schema", "json_schema": {"name": "file_name", "strict": True, "schema": {
        "type": "object", "properties": {"name": {"type": "string", "pattern": f"^{name_regex(max_words, language)}$"}},
        "required": ["name"], "additionalProperties": False}}}


def chat_request(model: str, image_url: str, user_prompt: str | None, context: ImageContext = ImageContext(), *,
                 language: str | None = None, max_chars: int = 60, max_words: int = 10,
                 max_tokens: int = 60, structured: bool = False) -> dict:
    """The body of one chat-completions request: the namer's system prompt and user text, one image;
    ``structured``: the answer asked for as ``{"name": "…"}`` (:func:`response_format`)."""
    system = prompts.system_prompt(language=language, max_chars=max_chars, max_words=max_words)
    text = prompts.user_text(user_prompt, date=context.date, camera=context.camera, language=language)
    extra = ({"response_format": response_format(max_words, language), "max_tokens": max_tokens + JSON_TOKENS}
             if structured else {})
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url}},
                                         {"type": "text", "text": text}]},
        ],
        "temperature": 0,
        "max_tokens": max_tokens,
        "n": 1,
        "stream": False,
        **extra,
    }


def structured_name(text: str) -> str:
    """The name in a structured answer: its JSON's ``name``; from a JSON cut short by the token limit,
    what it holds of the name; from a server that ignored ``response_format``, the first line."""
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("name"), str):
        return answer["name"].strip()
    if match := _NAME_FIELD.search(text):
        return match.group(1).strip()
    return first_line(text)


class EndpointNamer:
    """Names images through ``{url}/chat/completions``. Thread-safe; one per worker process."""

    def __init__(self, url: str, model: str, *, api_key: str | None = None, concurrency: int = 8,
                 timeout: float = 120.0, retries: int = 3, max_tokens: int = 60, structured: bool = False):
        self.endpoint = url.rstrip("/") + "/chat/completions"
        self.model, self.retries, self.max_tokens, self.structured = model, retries, max_tokens, structured
        self.concurrency = max(1, concurrency)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        "User-Agent": "renamer-ray"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.http = urllib3.PoolManager(
            num_pools=4, maxsize=self.concurrency, block=True, retries=False,
            timeout=urllib3.Timeout(connect=min(CONNECT_TIMEOUT_SECONDS, timeout), read=timeout))
        self.pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="engine")

    def name(self, images: Sequence, contexts: Sequence[ImageContext] | None = None, user_prompt=None,
             style=None) -> list[Naming]:
        """Answers for ``images`` (PIL images), in order; at most ``concurrency`` requests in flight.
        ``user_prompt`` and ``style`` (a ``NamingStyle``): one for every image, or one per image, as
        for the transformers namer; a style's limits and language go into the prompt, its case is the
        rules' business."""
        contexts, prompts, styles = per_image(len(images), contexts, user_prompt, style)
        bodies = [chat_request(self.model, png_data_url(image), prompt, context, max_tokens=self.max_tokens,
                               structured=self.structured, **_limits(each))
                  for image, context, prompt, each in zip(images, contexts, prompts, styles)]
        return list(self.pool.map(self.ask, bodies))

    def ask(self, body: dict) -> Naming:
        """One request, retried; never raises: a failure is the image's error sentence."""
        try:
            answer = self._complete(body)
        except EndpointError as exc:
            return Naming(error=str(exc))
        return Naming(raw=structured_name(answer) if self.structured else first_line(answer))

    def _complete(self, body: dict) -> str:
        payload = json.dumps(body).encode()
        request_id = uuid.uuid4().hex[:12]
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.request("POST", self.endpoint, body=payload, preload_content=False,
                                             headers={**self.headers, "X-Request-Id": request_id})
                try:
                    data = response.read(MAX_ANSWER_BYTES + 1)
                finally:
                    response.release_conn()
            except urllib3.exceptions.HTTPError as exc:  # connection refused or reset, timeouts
                if last:
                    raise EndpointError(f"the inference endpoint {self.endpoint} could not be reached after "
                                        f"{self.retries + 1} attempts: {_reason(exc)}") from None
                self._wait(attempt, None)
                continue
            if response.status == 200:
                return self._content(data)
            message = _error_message(data) or response.reason or "no reason given"
            if response.status in RETRY_STATUSES and not last:
                self._wait(attempt, response.headers.get("Retry-After"))
                continue
            tries = f" after {attempt + 1} attempts" if attempt else ""
            raise EndpointError(f"the inference endpoint answered {response.status}{tries}: {message}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _content(self, data: bytes) -> str:
        if len(data) > MAX_ANSWER_BYTES:
            raise EndpointError("the inference endpoint's answer is too large to be a name")
        try:
            choice = json.loads(data)["choices"][0]
            content = choice["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise EndpointError("the inference endpoint's answer is not a chat completion "
                                f"(no choices[0].message.content): {data[:200]!r}") from None
        if isinstance(content, list):  # content parts, as some servers send them
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(content, str) or not content.strip():
            raise EndpointError("the inference endpoint answered with no text")
        return content

    @staticmethod
    def _wait(attempt: int, retry_after: str | None) -> None:
        delay = min(MAX_BACKOFF_SECONDS, BACKOFF_SECONDS * 2 ** attempt) * (0.5 + random.random() / 2)
        if retry_after:
            try:
                delay = min(MAX_BACKOFF_SECONDS, max(delay, float(retry_after)))
            except ValueError:
                pass
        time.sleep(delay)

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.http.clear()


def _limits(style) -> dict:
    """A style's limits and language as :func:`chat_request` takes them (none: its defaults)."""
    return dict(language=style.language, max_chars=style.max_chars, max_words=style.max_words) if style else {}


def _reason(exc: Exception) -> str:
    reason = getattr(exc, "reason", None) or exc
    return str(reason).split(": ", 1)[-1][:200] or type(exc).__name__


def _error_message(data: bytes) -> str | None:
    """The sentence of an error answer: OpenAI's ``{"error": {"message"}}``, FastAPI's ``{"detail"}``."""
    try:
        body = json.loads(data)
    except ValueError:
        text = data.decode("utf-8", "replace").strip()
        return text[:300] or None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
        if isinstance(error, str):
            return error[:300]
        if body.get("detail"):
            return str(body["detail"])[:300]
    return None
