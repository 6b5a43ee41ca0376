"""HTTP status/body -> typed labeler error, and response_format presets / server detection."""

from __future__ import annotations

import json

import pytest

from inference_client.errors import (
    RequestRejected,
    ServerMisconfigured,
    ServerUnavailable,
    classify_status,
    is_context_exceeded,
)
from inference_client.response_format import detect_preset, response_format
from mappings.labels import AnswerInvalid, LabelerUnavailable, ReportTooLong
from mappings.prompt import ANSWER_SCHEMA

# Error bodies as the servers send them (llama-cpp-python's was captured from the real server in this repo's
# integration test setup; TGI's and vLLM's follow their documented error formats).
LLAMA_CPP_PY_CONTEXT = {
    "error": {
        "message": "This model's maximum context length is 1024 tokens. However, you requested 1136 tokens "
        "(1131 in the messages, 5 in the completion). Please reduce the length of the messages or completion.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}
TGI_CONTEXT = {
    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. "
    "Given: 4000 `inputs` tokens and 256 `max_new_tokens`",
    "error_type": "validation",
}
VLLM_CONTEXT = {
    "object": "error",
    "message": "This model's maximum context length is 2048 tokens. However, you requested 2300 tokens in the messages",
    "type": "BadRequestError",
    "code": 400,
}


@pytest.mark.parametrize(
    ("status", "body"), [(400, LLAMA_CPP_PY_CONTEXT), (422, TGI_CONTEXT), (400, VLLM_CONTEXT)]
)
def test_context_exceeded_is_report_too_long(status: int, body: dict) -> None:
    error = classify_status(status, json.dumps(body).encode())
    assert isinstance(error, ReportTooLong)
    # the message never carries the server's body (which may echo the prompt)
    assert "tokens" not in str(error)


def test_other_validation_error_is_per_report_rejection() -> None:
    body = {"error": "Input validation error: `top_p` must be > 0.0 and < 1.0", "error_type": "validation"}
    error = classify_status(422, json.dumps(body).encode())
    assert isinstance(error, RequestRejected) and isinstance(error, AnswerInvalid)
    assert not is_context_exceeded(json.dumps(body).encode())


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 424])
def test_overload_and_server_errors_are_transient(status: int) -> None:
    error = classify_status(status, b'{"error":"Model is overloaded","error_type":"overloaded"}', "2")
    assert isinstance(error, ServerUnavailable) and isinstance(error, LabelerUnavailable)
    assert error.status == status and error.retry_after == 2.0


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_and_wrong_url_hold_the_stream(status: int) -> None:
    error = classify_status(status, b"not json")
    assert isinstance(error, ServerMisconfigured) and isinstance(error, LabelerUnavailable)


def test_presets_have_each_servers_shape() -> None:
    assert response_format("llamacpp", ANSWER_SCHEMA) == {"type": "json_object", "schema": ANSWER_SCHEMA}
    assert response_format("tgi", ANSWER_SCHEMA) == {"type": "json", "value": ANSWER_SCHEMA}
    openai = response_format("openai", ANSWER_SCHEMA)
    assert openai["type"] == "json_schema"
    assert openai["json_schema"]["schema"] == ANSWER_SCHEMA and openai["json_schema"]["strict"] is True
    with pytest.raises(ValueError):
        response_format("sglang", ANSWER_SCHEMA)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("models", "info", "expected"),
    [
        ({"object": "list", "data": [{"id": "m.gguf", "object": "model", "owned_by": "me"}]}, None, "llamacpp"),
        ({"object": "list", "data": [{"id": "m", "owned_by": "vllm"}]}, None, "openai"),
        ({"object": "list", "data": [{"id": "m", "owned_by": "sglang"}]}, None, "openai"),
        ({"object": "list", "data": [{"id": "m", "owned_by": "llamacpp"}]}, None, "openai"),
        ({"id": "org/model", "object": "model", "owned_by": "org/model"}, {"router": "text-generation-router"}, "tgi"),
        (None, None, "openai"),
    ],
)
def test_auto_detection(models: object, info: object, expected: str) -> None:
    assert detect_preset(models, info) == expected
