"""The OpenAI json_schema preset against the C++ llama-server (continuous batching), when a binary is available.

llama-cpp-python's server only accepts the json_object form; llama-server (built from llama.cpp, see
docs/INFERENCE.md) takes the OpenAI json_schema form that vLLM and SGLang use, and serves parallel slots.
Set RADLABEL_LLAMA_SERVER=/path/to/llama-server (or put it on PATH) to run these; otherwise they skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference_client.config import ClientConfig
from inference_client.llamacpp_server import (
    API_KEY,
    MODEL_ALIAS,
    LlamaCppServer,
    find_gguf,
    find_llama_server_binary,
)
from inference_client.openai_compat import OpenAILabeler
from mappings.labels import LabelSet

from tests.inference.proxy import CountingProxy

pytestmark = pytest.mark.slow

REPORTS = [
    "Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Cardiomegaly with mild pulmonary edema. Small bilateral pleural effusions.",
    "Right lower lobe opacity, possibly pneumonia. Left subclavian central venous catheter tip in the SVC.",
    "Healed left rib fractures. No acute cardiopulmonary abnormality.",
]


@pytest.fixture(scope="module")
def cpp_server() -> Iterator[LlamaCppServer]:
    binary = find_llama_server_binary()
    if binary is None or find_gguf() is None:
        pytest.skip("no llama-server binary (RADLABEL_LLAMA_SERVER) or no SmolLM2 GGUF")
    server = LlamaCppServer(binary, parallel=4).start()
    try:
        yield server
    finally:
        server.stop()


async def test_json_schema_preset_auto_detected_and_answers_parse(cpp_server: LlamaCppServer) -> None:
    cfg = ClientConfig(endpoint=cpp_server.url, api_key=API_KEY, max_new_tokens=96, max_concurrency=4)
    async with CountingProxy(cpp_server.url) as proxy:
        async with OpenAILabeler(cfg.model_copy(update={"endpoint": proxy.url})) as labeler:
            assert await labeler.ready()
            assert labeler.preset == "openai" and labeler.model_name == MODEL_ALIAS
            body = labeler.request_body("x")
            assert body["response_format"]["type"] == "json_schema"
            outcomes = await labeler.label_batch_detailed(REPORTS * 2)
    assert all(isinstance(o, LabelSet) for o in outcomes), outcomes
    assert proxy.max_in_flight == 4  # all four server slots kept busy, never more
