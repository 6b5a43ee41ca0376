from __future__ import annotations

from collections.abc import Iterator

import pytest

from inference_client.llamacpp_server import LlamaServer, server_available


@pytest.fixture(scope="module")
def llama_server() -> Iterator[LlamaServer]:
    """One real llama.cpp server per test module (starts in about a second)."""
    reason = server_available()
    if reason:
        pytest.skip(reason)
    server = LlamaServer().start()
    try:
        yield server
    finally:
        server.stop()
