"""CONTRACT TESTS (pytest mark `contract`): the TGI clients against recorded request/response pairs that follow
TGI's published OpenAPI document (see tgi_contract.py). TGI itself cannot run here; deploy/tgi/check_tgi.py runs
the same checks against a real TGI.
"""

from __future__ import annotations

import pytest

from inference_client.config import ClientConfig
from inference_client.errors import ServerMisconfigured, ServerUnavailable
from inference_client.openai_compat import OpenAILabeler
from inference_client.tgi import TGILabeler
from mappings.labels import AnswerInvalid, LabelSet, ReportTooLong
from mappings.prompt import ANSWER_SCHEMA, build_messages, render_answer
from mappings.vocabulary import Certainty

from tests.inference.tgi_contract import (
    INFO,
    MODEL_INFO,
    TGIContract,
    chat_completion,
    error,
    generate_response,
)

pytestmark = pytest.mark.contract

REPORT = "Heart size normal. Small right pleural effusion. No pneumothorax."
ANSWER = render_answer({"Pleural Effusion": Certainty.POSITIVE, "Pneumothorax": Certainty.NEGATIVE})


def config(**overrides: object) -> ClientConfig:
    values: dict = {
        "endpoint": "https://tgi.hospital.example",
        "api_key": "tok-123",
        "max_new_tokens": 64,
        "max_retries": 3,
        "backoff_base_s": 0.001,
        "backoff_cap_s": 0.002,
    }
    values.update(overrides)
    return ClientConfig(**values)


async def test_contract_generate_request_shape_and_labels() -> None:
    tgi = TGIContract({"POST /generate": [(200, generate_response(ANSWER))]})
    async with TGILabeler(config(), transport=tgi.transport()) as labeler:
        [labels] = await labeler.label_batch([REPORT])
    assert labels.labels == {"Pleural Effusion": Certainty.POSITIVE, "Pneumothorax": Certainty.NEGATIVE}
    body = tgi.bodies[0]
    params = body["parameters"]
    assert params["grammar"] == {"type": "json", "value": ANSWER_SCHEMA}
    assert params["details"] is True and params["do_sample"] is False and params["max_new_tokens"] == 64
    assert "temperature" not in params  # TGI rejects temperature 0 (exclusiveMinimum)
    # the chat template is applied client-side: ChatML around the one shared prompt, ending at the assistant turn
    assert body["inputs"].startswith("<|im_start|>user\n" + build_messages(REPORT)[0]["content"])
    assert body["inputs"].endswith("<|im_start|>assistant\n")
    request = tgi.requests[0]
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.url == "https://tgi.hospital.example/generate"


async def test_contract_generate_truncated_answer_is_invalid() -> None:
    cut = ANSWER[:20]
    tgi = TGIContract({"POST /generate": [(200, generate_response(cut, "length", generated_tokens=64))]})
    async with TGILabeler(config(), transport=tgi.transport()) as labeler:
        [outcome] = await labeler.label_batch_detailed([REPORT])
    assert isinstance(outcome, AnswerInvalid) and "finish_reason=length" in str(outcome)


async def test_contract_generate_context_exceeded_is_report_too_long_and_batch_continues() -> None:
    too_long = error(
        "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4090 `inputs` tokens "
        "and 64 `max_new_tokens`",
        "validation",
    )
    tgi = TGIContract({"POST /generate": [(422, too_long), (200, generate_response(ANSWER))]})
    async with TGILabeler(config(max_concurrency=1), transport=tgi.transport()) as labeler:
        outcomes = await labeler.label_batch_detailed(["x " * 5000, REPORT])
    assert isinstance(outcomes[0], ReportTooLong)
    assert isinstance(outcomes[1], LabelSet)
    assert len(tgi.requests) == 2  # the 422 was not retried


async def test_contract_generate_overloaded_then_served() -> None:
    tgi = TGIContract(
        {
            "POST /generate": [
                (429, error("Model is overloaded", "overloaded"), {"Retry-After": "0"}),
                (424, error("Request failed during generation", "generation")),
                (200, generate_response(ANSWER)),
            ]
        }
    )
    async with TGILabeler(config(), transport=tgi.transport()) as labeler:
        [labels] = await labeler.label_batch([REPORT])
        assert labeler.stats.retries == 2 and labeler.stats.by_status == {429: 1, 424: 1, 200: 1}
    assert labels.labels["Pleural Effusion"] is Certainty.POSITIVE


async def test_contract_generate_persistent_overload_is_unavailable() -> None:
    tgi = TGIContract({"POST /generate": [(429, error("Model is overloaded", "overloaded"))]})
    async with TGILabeler(config(max_retries=2), transport=tgi.transport()) as labeler:
        with pytest.raises(ServerUnavailable):
            await labeler.label_batch_detailed([REPORT])
    assert len(tgi.requests) == 3


async def test_contract_generate_unconstrained_garbage_is_invalid_not_guessed() -> None:
    tgi = TGIContract({"POST /generate": [(200, generate_response('{"Cardiomegaly":"yes"}'))]})
    async with TGILabeler(config(), transport=tgi.transport()) as labeler:
        [outcome] = await labeler.label_batch_detailed([REPORT])
    assert isinstance(outcome, AnswerInvalid)


async def test_contract_generate_reply_of_another_api_is_misconfiguration() -> None:
    tgi = TGIContract({"POST /generate": [(200, chat_completion(ANSWER))]})
    async with TGILabeler(config(), transport=tgi.transport()) as labeler:
        with pytest.raises(ServerMisconfigured):
            await labeler.label_batch_detailed([REPORT])


async def test_contract_health_and_info() -> None:
    down = TGIContract({"GET /health": [(503, error("unhealthy", "healthcheck"))]})
    async with TGILabeler(config(), transport=down.transport()) as labeler:
        assert await labeler.ready() is False
    up = TGIContract({"GET /health": [(200, None)], "GET /info": [(200, INFO)]})
    async with TGILabeler(config(), transport=up.transport()) as labeler:
        assert await labeler.ready() is True
        assert labeler.info.model == "radlabel/smollm2-chexpert"


async def test_contract_tgi_v1_chat_auto_detects_tgi_grammar_form() -> None:
    tgi = TGIContract(
        {
            "GET /v1/models": [(200, MODEL_INFO)],
            "GET /info": [(200, INFO)],
            "POST /v1/chat/completions": [(200, chat_completion(ANSWER))],
        }
    )
    async with OpenAILabeler(config(endpoint="https://tgi.hospital.example/v1"), transport=tgi.transport()) as labeler:
        assert await labeler.ready()
        [labels] = await labeler.label_batch([REPORT])
    assert labeler.preset == "tgi" and labeler.model_name == "radlabel/smollm2-chexpert"
    chat = tgi.bodies[-1]
    assert chat["response_format"] == {"type": "json", "value": ANSWER_SCHEMA}
    assert chat["messages"] == build_messages(REPORT) and chat["temperature"] == 0
    assert labels.labels["Pneumothorax"] is Certainty.NEGATIVE


async def test_contract_tgi_v1_chat_length_is_truncation() -> None:
    tgi = TGIContract({"POST /v1/chat/completions": [(200, chat_completion(ANSWER[:10], "length", 64))]})
    labeler = OpenAILabeler(config(response_format="tgi", model_name="tgi"), transport=tgi.transport())
    async with labeler:
        [outcome] = await labeler.label_batch_detailed([REPORT])
    assert isinstance(outcome, AnswerInvalid)
    assert len(tgi.requests) == 1  # preset and model configured: no discovery calls


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": "x", "parameters": {"temperature": 0.0}},
        {"inputs": "x", "parameters": {"grammar": {"type": "json_object", "schema": {}}}},
        {"inputs": "x", "parameters": {"response_format": {}}},
        {"prompt": "x"},
    ],
)
def test_contract_checker_rejects_requests_tgi_would_refuse(body: dict) -> None:
    from tests.inference.tgi_contract import ContractViolation, check_generate_request

    with pytest.raises(ContractViolation):
        check_generate_request(body)


async def test_contract_logs_carry_no_report_text() -> None:
    """Retries are logged (status, error class, delay) but never the report or the server's error body."""
    from structlog.testing import capture_logs

    secret = "Patient John Q Doe MRN 12345678: large left pleural effusion."
    tgi = TGIContract(
        {
            "POST /generate": [
                (503, error(f"backend echo: {secret}", "unhealthy")),
                (200, generate_response(ANSWER)),
            ]
        }
    )
    with capture_logs() as logs:
        async with TGILabeler(config(), transport=tgi.transport()) as labeler:
            [labels] = await labeler.label_batch([secret])
    assert isinstance(labels, LabelSet)
    assert [entry["event"] for entry in logs] == ["labeler_retry"]
    assert logs[0]["status"] == 503
    assert all("John" not in repr(entry) and "12345678" not in repr(entry) for entry in logs)
