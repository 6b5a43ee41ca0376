"""The connector's labeler factory builds the right client from settings (env/YAML shape)."""

from __future__ import annotations

import pytest

from connector.labelers import make_labeler
from connector.settings import LabelerSettings, Settings
from inference_client.openai_compat import OpenAILabeler
from inference_client.tgi import TGILabeler


async def test_env_settings_build_an_openai_labeler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADLABEL_LABELER__KIND", "llm")
    monkeypatch.setenv("RADLABEL_LABELER__ENDPOINT", "https://vllm.example:8000/v1")
    monkeypatch.setenv("RADLABEL_LABELER__RESPONSE_FORMAT", "openai")
    monkeypatch.setenv("RADLABEL_LABELER__API_KEY", "s3cret")
    monkeypatch.setenv("RADLABEL_LABELER__MAX_CONCURRENCY", "16")
    labeler = make_labeler(Settings().labeler)
    async with labeler:
        assert isinstance(labeler, OpenAILabeler)
        assert labeler.preset == "openai" and labeler.config.max_concurrency == 16
        assert labeler._http.headers["authorization"] == "Bearer s3cret"
        assert str(labeler._http.base_url) == "https://vllm.example:8000"
        body = labeler.request_body("Normal chest.")
        assert body["response_format"]["type"] == "json_schema" and body["temperature"] == 0
        assert "repeat_penalty" not in body  # OpenAI rejects parameters it does not know


async def test_llama_cpp_python_requests_switch_its_default_repeat_penalty_off() -> None:
    # llama-cpp-python penalises repeats (1.1) unless told otherwise, even at temperature 0: label answers repeat
    # "negative" by design (the real server's effect on a fine-tuned model: docs/INFERENCE.md).
    labeler = make_labeler(LabelerSettings(kind="llm", endpoint="http://127.0.0.1:9/v1", response_format="llamacpp"))
    async with labeler:
        body = labeler.request_body("Normal chest.")
        assert body["repeat_penalty"] == 1.0 and body["temperature"] == 0
        assert body["response_format"] == {"type": "json_object", "schema": body["response_format"]["schema"]}


async def test_tgi_api_builds_the_native_labeler() -> None:
    labeler = make_labeler(LabelerSettings(kind="llm", endpoint="http://tgi:8080", api="tgi", max_new_tokens=128))
    async with labeler:
        assert isinstance(labeler, TGILabeler)
        assert labeler.request_body("x")["parameters"]["max_new_tokens"] == 128


def test_endpoint_must_be_http() -> None:
    with pytest.raises(ValueError):
        make_labeler(LabelerSettings(kind="llm", endpoint="tgi:8080"))
