"""TGI's HTTP contract, written down from its published OpenAPI document (huggingface/text-generation-inference,
docs/openapi.json, v2.4.x: GenerateRequest/GenerateParameters/GrammarType/GenerateResponse/Details/ErrorResponse,
ChatRequest/ChatCompletion/Usage, Info, /health). TGI cannot run on this machine (no GPU, no image), so the
contract tests replay request/response pairs that follow these shapes through an httpx.MockTransport that
*checks every request against the contract* before answering.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

# GenerateParameters properties (all optional) and the constraints the spec states for the ones we send.
GENERATE_PARAMETERS = {
    "adapter_id", "best_of", "decoder_input_details", "details", "do_sample", "frequency_penalty", "grammar",
    "max_new_tokens", "repetition_penalty", "return_full_text", "seed", "stop", "temperature", "top_k",
    "top_n_tokens", "top_p", "truncate", "typical_p", "watermark",
}  # fmt: skip
CHAT_REQUEST = {
    "frequency_penalty", "guideline", "logit_bias", "logprobs", "max_tokens", "messages", "model", "n",
    "presence_penalty", "response_format", "seed", "stop", "stream", "stream_options", "temperature",
    "tool_choice", "tool_prompt", "tools", "top_logprobs", "top_p",
}  # fmt: skip


class ContractViolation(AssertionError):
    pass


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise ContractViolation(what)


def check_grammar(grammar: Any) -> None:
    """GrammarType: oneOf {type: "json", value: <JSON Schema>} | {type: "regex", value: string}."""
    _check(isinstance(grammar, dict) and set(grammar) == {"type", "value"}, "GrammarType needs exactly type+value")
    _check(grammar["type"] in ("json", "regex"), f"GrammarType.type {grammar['type']!r} not in json|regex")
    if grammar["type"] == "regex":
        _check(isinstance(grammar["value"], str), "regex grammar value must be a string")


def check_generate_request(body: Any) -> None:
    _check(isinstance(body, dict) and isinstance(body.get("inputs"), str), "GenerateRequest.inputs: string required")
    _check(set(body) <= {"inputs", "parameters"}, f"unknown GenerateRequest fields {set(body) - {'inputs', 'parameters'}}")
    params = body.get("parameters", {})
    _check(isinstance(params, dict), "parameters must be an object")
    _check(set(params) <= GENERATE_PARAMETERS, f"unknown GenerateParameters {set(params) - GENERATE_PARAMETERS}")
    for flag in ("details", "do_sample", "decoder_input_details", "watermark"):
        if flag in params:
            _check(isinstance(params[flag], bool), f"{flag} must be boolean")
    if params.get("max_new_tokens") is not None:
        _check(isinstance(params["max_new_tokens"], int) and params["max_new_tokens"] >= 0, "max_new_tokens int >= 0")
    if params.get("temperature") is not None:
        _check(params["temperature"] > 0, "temperature has exclusiveMinimum 0")
    if params.get("top_p") is not None:
        _check(0 < params["top_p"] <= 1, "top_p in (0, 1]")
    if params.get("grammar") is not None:
        check_grammar(params["grammar"])


def check_chat_request(body: Any) -> None:
    _check(isinstance(body, dict) and isinstance(body.get("messages"), list), "ChatRequest.messages required")
    _check(set(body) <= CHAT_REQUEST, f"unknown ChatRequest fields {set(body) - CHAT_REQUEST}")
    for message in body["messages"]:
        _check({"role", "content"} <= set(message), "Message needs role and content")
    if body.get("response_format") is not None:
        check_grammar(body["response_format"])
    if body.get("max_tokens") is not None:
        _check(isinstance(body["max_tokens"], int) and body["max_tokens"] >= 0, "max_tokens int >= 0")


def generate_response(text: str, finish_reason: str = "eos_token", generated_tokens: int = 12) -> dict[str, Any]:
    """GenerateResponse with Details (required: finish_reason, generated_tokens, prefill, tokens)."""
    return {
        "generated_text": text,
        "details": {
            "finish_reason": finish_reason,
            "generated_tokens": generated_tokens,
            "seed": None,
            "prefill": [],
            "tokens": [{"id": 90, "text": "{", "logprob": -0.01, "special": False}],
        },
    }


def chat_completion(content: str, finish_reason: str = "eos_token", completion_tokens: int = 12) -> dict[str, Any]:
    """ChatCompletion (required: id, created, model, system_fingerprint, choices, usage); TGI 2.x reports its own
    FinishReason names ("eos_token", "length", "stop_sequence") in chat choices too."""
    return {
        "object": "chat.completion",
        "id": "",
        "created": 1_732_000_000,
        "model": "radlabel/smollm2-chexpert",
        "system_fingerprint": "2.4.1-native",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 210, "completion_tokens": completion_tokens, "total_tokens": 210 + completion_tokens},
    }


def error(message: str, error_type: str) -> dict[str, str]:
    """ErrorResponse (required: error, error_type)."""
    return {"error": message, "error_type": error_type}


INFO = {
    "model_id": "radlabel/smollm2-chexpert",
    "model_sha": None,
    "model_pipeline_tag": "text-generation",
    "max_concurrent_requests": 128,
    "max_best_of": 2,
    "max_stop_sequences": 4,
    "max_input_tokens": 3840,
    "max_total_tokens": 4096,
    "validation_workers": 2,
    "max_client_batch_size": 4,
    "router": "text-generation-router",
    "version": "2.4.1",
    "sha": None,
    "docker_label": None,
}
MODEL_INFO = {"id": "radlabel/smollm2-chexpert", "object": "model", "created": 1_732_000_000, "owned_by": "radlabel"}

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class TGIContract:
    """A recorded TGI: routes by method+path, validates requests, answers from per-route reply queues."""

    def __init__(self, replies: dict[str, list[Reply]] | None = None) -> None:
        self.replies = {k: list(v) for k, v in (replies or {}).items()}
        self.requests: list[httpx.Request] = []
        self.bodies: list[Any] = []
        self.checkers: dict[str, Callable[[Any], None]] = {
            "POST /generate": check_generate_request,
            "POST /v1/chat/completions": check_chat_request,
        }

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        route = f"{request.method} {request.url.path}"
        self.requests.append(request)
        body = json.loads(request.content) if request.content else None
        self.bodies.append(body)
        if route in self.checkers:
            self.checkers[route](body)
        queue = self.replies.get(route)
        if not queue:
            return httpx.Response(404, json=error(f"no recorded reply for {route}", "not_found"))
        status, payload, *headers = queue.pop(0) if len(queue) > 1 else queue[0]
        if payload is None:  # e.g. GET /health: 200 without a body
            return httpx.Response(status, headers=headers[0] if headers else None)
        return httpx.Response(status, json=payload, headers=headers[0] if headers else None)
