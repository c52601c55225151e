"""OpenAI's wire shapes for ``/v1/chat/completions`` and ``/v1/models``: the answers' models, the
answer as a stream of ``chat.completion.chunk`` events, and a refusal (:class:`ChatRefused`)
answered as OpenAI's error body ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import json
from typing import Iterator, Literal

from fastapi.responses import JSONResponse
from pydantic import BaseModel


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: ErrorBody


class Message(BaseModel):
    role: str
    content: str


class Choice(BaseModel):
    index: int
    message: Message
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def completion_events(completion: ChatCompletion, *, include_usage: bool) -> Iterator[str]:
    """``completion`` as OpenAI streams it: Server-Sent Events of ``chat.completion.chunk`` (the role,
    the content, the finish reason; with ``include_usage`` each has ``"usage": null`` and a last one
    with no choices holds the usage), then ``data: [DONE]``."""
    head = {"id": completion.id, "object": "chat.completion.chunk", "created": completion.created,
            "model": completion.model}
    choice = completion.choices[0]
    usage = {"usage": None} if include_usage else {}
    for delta, finish_reason in (({"role": choice.message.role, "content": ""}, None),
                                 ({"content": choice.message.content}, None), ({}, choice.finish_reason)):
        chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **usage}
        yield f"data: {json.dumps(chunk)}\n\n"
    if include_usage:
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': completion.usage.model_dump()})}\n\n"
    yield "data: [DONE]\n\n"


class ChatRefused(Exception):
    """A chat request refused with ``status``; the app answers it in OpenAI's shape (a 401 also with
    ``WWW-Authenticate: Bearer``)."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = {**({"WWW-Authenticate": "Bearer"} if status == 401 else {}), **(headers or {})}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers or None)


def model_not_found(model: object, served: str) -> ChatRefused:
    """The refusal of a model this service does not serve (it serves ``served``: MODEL_ID)."""
    return ChatRefused(404, f"the model {model!r} does not exist here: this service names images with {served!r}",
                       param="model", code="model_not_found")
