"""OpenAI-compatible chat completions (TGI /v1, vLLM, SGLang, llama.cpp, OpenAI) with JSON-Schema output."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from pydantic import BaseModel, Field, ValidationError

from mappings.labels import AnswerInvalid
from mappings.prompt import ANSWER_SCHEMA, build_messages

from inference_client.base import Generation, HTTPLabeler
from inference_client.config import ClientConfig
from inference_client.errors import ServerMisconfigured, ServerUnavailable
from inference_client.response_format import Preset, detect_preset, response_format


class _Message(BaseModel):
    content: str | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class ChatCompletion(BaseModel):
    """The part of a chat.completion object this client reads (servers add more, which is ignored)."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage | None = None


def first_model_id(models: Any) -> str | None:
    """Model id from GET /v1/models: an OpenAI list {"data":[{"id":..}]} or TGI's single {"id":..} object."""
    if not isinstance(models, dict):
        return None
    data = models.get("data")
    entry = data[0] if isinstance(data, list) and data else models
    model_id = entry.get("id") if isinstance(entry, dict) else None
    return str(model_id) if model_id else None


class OpenAILabeler(HTTPLabeler):
    api = "openai"

    def __init__(
        self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None, seed: int | None = None
    ) -> None:
        super().__init__(config, transport=transport, seed=seed)
        self.preset: Preset | None = None if config.response_format == "auto" else config.response_format
        self.model_name: str | None = config.model_name
        self._discovery = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: object, **kwargs: Any) -> OpenAILabeler:
        return cls(ClientConfig.from_settings(settings), **kwargs)

    async def _discover(self, models: Any = None) -> bool:
        """Resolve the "auto" preset and a missing model name from the server (once). False if unreachable."""
        if self.preset is not None and self.model_name is not None:
            return True
        async with self._discovery:
            if self.preset is not None and self.model_name is not None:
                return True
            if models is None:
                models = await self._get_json("/v1/models", strict=True)
                if models is None:
                    return False
            if self.model_name is None:
                self.model_name = first_model_id(models)
                if self.model_name is not None:
                    self.info = self.info.model_copy(update={"model": self.model_name})
            if self.preset is None:
                info = await self._get_json("/info")  # TGI only; others 404 -> None
                self.preset = detect_preset(models, info)
            return True

    async def ready(self) -> bool:
        """Readiness: GET /v1/models answers (every OpenAI-compatible server has it; not all have /health)."""
        try:
            models = await self._get_json("/v1/models", strict=True)
        except ServerMisconfigured:
            return False
        return models is not None and await self._discover(models)

    def request_body(self, report: str) -> dict[str, Any]:
        if self.preset is None:
            raise RuntimeError("response_format not resolved yet: call ready() or label first")
        body: dict[str, Any] = {
            "messages": build_messages(report),
            # Greedy decoding: no sampling randomness in labels (see docs/INFERENCE.md on server-side nondeterminism).
            "temperature": 0.0,
            "top_p": 1.0,
            "n": 1,
            "max_tokens": self.config.max_new_tokens,
            "stream": False,
            "response_format": response_format(self.preset, ANSWER_SCHEMA),
        }
        if self.preset == "llamacpp":
            # llama-cpp-python's server applies repeat_penalty 1.1 unless the request says otherwise, even at
            # temperature 0. A label answer repeats "negative" and the JSON punctuation by design, so the penalty
            # flips later values and makes the model close the object before the last keys: measured on the
            # issue-16 SmolLM2, it never emitted Fracture or Support Devices through the server (0 of 220 lock-box
            # reports) while the same GGUF, greedy without the penalty, answered as the trained model does.
            # Only this preset: OpenAI rejects unknown parameters, and vLLM/TGI/llama-server default to no penalty.
            body["repeat_penalty"] = 1.0
        if self.model_name is not None:
            body["model"] = self.model_name
        return body

    async def _generate(self, report: str) -> Generation:
        if not await self._discover():
            raise ServerUnavailable("cannot reach model server (GET /v1/models)")
        data = await self._post("/v1/chat/completions", self.request_body(report))
        try:
            completion = ChatCompletion.model_validate(data)
        except ValidationError:
            raise ServerMisconfigured("reply is not a chat completion: check api/endpoint", 200) from None
        choice = completion.choices[0]
        if choice.message.content is None:
            raise AnswerInvalid("reply has no message content")
        usage = completion.usage or _Usage()
        return Generation(choice.message.content, choice.finish_reason, usage.prompt_tokens, usage.completion_tokens)
