"""OpenAI's ``GET /v1/models`` and ``GET /v1/models/{id}``: the model the chat endpoint names images
with (MODEL_ID, the one ``model`` it accepts), listed as OpenAI lists models, since OpenAI clients and
the tools built on them (LangChain, Open WebUI, LiteLLM) list models before they ask. The chat
endpoint's keys (X-API-Key or ``Authorization: Bearer``) and its errors in OpenAI's shape."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from renamer_ray.service.api.deps import SettingsDep
from renamer_ray.service.api.openai_shapes import ChatRefused, Model, ModelList, model_not_found
from renamer_ray.service.api.routes.chat import RESPONSES, chat_caller

router = APIRouter(prefix="/v1", tags=["openai"])
OWNER = "renamer_ray"
STARTED = int(time.time())  # a model's ``created``: when this API process started serving it

Caller = Annotated[str, Depends(chat_caller)]


def unrouted(path: str, served: str) -> ChatRefused | None:
    """The refusal for a ``/v1/models/…`` path that no route matched (Starlette's ``{id:path}`` takes
    no line breaks): the same 404 in OpenAI's shape as any other unknown id; None for other paths."""
    prefix = router.prefix + "/models/"
    if not path.startswith(prefix):
        return None
    return model_not_found(path.removeprefix(prefix), served)


def _model(model_id: str) -> Model:
    return Model(id=model_id, created=STARTED, owned_by=OWNER)


@router.get("/models", response_model=ModelList, responses={401: RESPONSES[401]})
async def list_models(settings: SettingsDep, _: Caller) -> ModelList:
    """The models this service answers with: its MODEL_ID."""
    return ModelList(data=[_model(settings.model_id)])


@router.get("/models/{model_id:path}", response_model=Model, responses={401: RESPONSES[401], 404: RESPONSES[404]})
async def retrieve_model(model_id: Annotated[str, Path(min_length=1)], settings: SettingsDep, _: Caller) -> Model:
    """One model by its id (which may hold a ``/``, as hub ids do: ``Qwen/Qwen2-VL-2B-Instruct``)."""
    if model_id != settings.model_id:
        raise model_not_found(model_id, settings.model_id)
    return _model(model_id)
