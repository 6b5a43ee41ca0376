"""Failure handling against a REAL llama.cpp server: timeouts, a crash (SIGKILL) -> retries -> circuit breaker
(fail fast, no network) -> restart -> half-open probe -> recovery; TLS verification."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from inference_client.config import ClientConfig
from inference_client.errors import CircuitOpen, ServerMisconfigured, ServerUnavailable
from inference_client.openai_compat import OpenAILabeler
from inference_client.resilience import BreakerState
from mappings.labels import LabelerUnavailable, LabelSet

from inference_client.llamacpp_server import API_KEY, LlamaServer, server_available

pytestmark = pytest.mark.slow

REPORTS = [
    "Heart size is normal. The lungs are clear.",
    "Small right pleural effusion. No pneumothorax.",
    "Mild cardiomegaly. No edema.",
]


@pytest.fixture
def own_server():
    reason = server_available()
    if reason:
        pytest.skip(reason)
    server = LlamaServer().start()
    try:
        yield server
    finally:
        server.stop()


def config(server: LlamaServer, **overrides: object) -> ClientConfig:
    values: dict = {
        "endpoint": server.url,
        "api_key": API_KEY,
        "response_format": "llamacpp",
        "model_name": "smollm2-135m",
        # The untrained SmolLM2 answers with all 14 keys (~120 tokens) now that the client switches
        # llama-cpp-python's repeat penalty off; 64 used to suffice only because the penalty cut answers short.
        "max_new_tokens": 192,
        "timeout_s": 30,
        "max_concurrency": 1,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.1,
    }
    values.update(overrides)
    return ClientConfig(**values)


async def test_per_request_timeout_is_retried_then_unavailable(own_server: LlamaServer) -> None:
    # 50 ms cannot fit a generation on this CPU: every attempt times out.
    async with OpenAILabeler(config(own_server, timeout_s=0.05, max_retries=1, breaker_failures=10)) as labeler:
        with pytest.raises(ServerUnavailable, match="timed out"):
            await labeler.label_batch_detailed(REPORTS[:1])
        assert labeler.stats.attempts == 2 and labeler.stats.retries == 1


async def test_killed_server_retries_then_opens_circuit_then_recovers(own_server: LlamaServer) -> None:
    cfg = config(own_server, max_retries=2, breaker_failures=3, breaker_reset_s=1.0)
    async with OpenAILabeler(cfg) as labeler:
        assert await labeler.ready()
        [before] = await labeler.label_batch(REPORTS[:1])
        assert isinstance(before, LabelSet) and labeler.stats.attempts == 1

        own_server.kill()
        assert await labeler.ready() is False
        with pytest.raises(LabelerUnavailable):
            await labeler.label_batch_detailed(REPORTS[1:2])
        # 1 attempt + 2 retries, all failed to connect; the third failure tripped the breaker
        assert labeler.stats.attempts == 4 and labeler.stats.retries == 2
        assert labeler.breaker.state is BreakerState.OPEN

        # open: the whole batch fails fast without touching the network
        with pytest.raises(CircuitOpen):
            await labeler.label_batch_detailed(REPORTS)
        assert labeler.stats.attempts == 4 and labeler.stats.fast_failures >= 1

        own_server.start()  # same port
        assert await labeler.ready()
        await asyncio.sleep(1.0)  # breaker reset timeout
        outcomes = await labeler.label_batch_detailed(REPORTS)
        assert all(isinstance(o, LabelSet) for o in outcomes), outcomes
        assert labeler.breaker.transitions == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


@pytest.fixture
def tls_server(tmp_path):
    reason = server_available() or (None if shutil.which("openssl") else "openssl not installed")
    if reason:
        pytest.skip(reason)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = LlamaServer(tls=(cert, key)).start()
    try:
        yield server, cert
    finally:
        server.stop()


async def test_tls_is_verified_and_a_private_ca_can_be_trusted(tls_server) -> None:
    server, cert = tls_server
    async with OpenAILabeler(config(server, max_retries=3)) as labeler:
        # self-signed certificate, no CA given: refused, not retried (retrying cannot make it trusted)
        with pytest.raises(ServerMisconfigured, match="TLS"):
            await labeler.label_batch_detailed(REPORTS[:1])
        assert labeler.stats.attempts == 1
    async with OpenAILabeler(config(server, ca_bundle=str(cert))) as labeler:
        assert await labeler.ready()
        [labels] = await labeler.label_batch(REPORTS[:1])
        assert isinstance(labels, LabelSet)
