"""TGI's native API: POST /generate with ``parameters.grammar`` = the answer JSON Schema.

Plain httpx rather than the ``text-generation`` client package: that package pins huggingface-hub < 1.0, which
breaks transformers 5 in the same environment. /generate takes one prompt string, so the chat template is applied
here (chat_template.py), exactly as in training.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from mappings.prompt import ANSWER_SCHEMA, build_messages

from inference_client.base import Generation, HTTPLabeler
from inference_client.chat_template import prompt_renderer
from inference_client.config import ClientConfig
from inference_client.errors import ServerMisconfigured


class _Details(BaseModel):
    finish_reason: str  # "length" | "eos_token" | "stop_sequence"
    generated_tokens: int | None = None


class GenerateResponse(BaseModel):
    generated_text: str
    details: _Details | None = None


class TGILabeler(HTTPLabeler):
    api = "tgi"

    def __init__(
        self, config: ClientConfig, *, transport: httpx.AsyncBaseTransport | None = None, seed: int | None = None
    ) -> None:
        super().__init__(config, transport=transport, seed=seed)
        self._render = prompt_renderer(config.tokenizer)

    @classmethod
    def from_settings(cls, settings: object, **kwargs: Any) -> TGILabeler:
        return cls(ClientConfig.from_settings(settings), **kwargs)

    def request_body(self, report: str) -> dict[str, Any]:
        return {
            "inputs": self._render(build_messages(report)),
            "parameters": {
                "do_sample": False,  # greedy; TGI rejects temperature 0, so sampling is switched off instead
                "max_new_tokens": self.config.max_new_tokens,
                "details": True,  # finish_reason, to detect answers cut by max_new_tokens
                "return_full_text": False,
                "grammar": {"type": "json", "value": ANSWER_SCHEMA},
            },
        }

    async def _generate(self, report: str) -> Generation:
        data = await self._post("/generate", self.request_body(report))
        try:
            reply = GenerateResponse.model_validate(data)
        except ValidationError:
            raise ServerMisconfigured("reply does not follow TGI's /generate API: check api/endpoint", 200) from None
        details = reply.details
        return Generation(
            reply.generated_text,
            details.finish_reason if details else None,
            None,
            details.generated_tokens if details else None,
        )

    async def ready(self) -> bool:
        """Readiness: TGI's GET /health is 200 once the model is loaded (503 while it is not)."""
        if await self._get_json("/health") is None:
            return False
        if self.info.model is None:
            info = await self._get_json("/info")
            if isinstance(info, dict) and info.get("model_id"):
                self.info = self.info.model_copy(update={"model": str(info["model_id"])})
        return True
