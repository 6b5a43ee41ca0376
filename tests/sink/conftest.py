"""Fixtures for the sink tests: the real Medplum FHIR engine (tests/fhir_server/server.mjs, with its test
controls) per test, and the real Tansu broker of the streaming tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from connector.stream.broker import create_topics
from tests.stream.conftest import broker, log_capture  # noqa: F401 - shared fixtures

SERVER_DIR = Path(__file__).resolve().parents[1] / "fhir_server"


@dataclass
class Medplum:
    url: str
    process: subprocess.Popen

    def control(self, **body) -> dict:
        return httpx.post(f"{self.url}/$control", json=body, timeout=10).json()

    def counters(self) -> dict:
        return httpx.get(f"{self.url}/$control", timeout=10).json()

    def get(self, path: str, **params) -> dict:
        headers = {}
        tokens = self.counters()["tokens"]
        if tokens:
            headers["authorization"] = f"Bearer {tokens[0]}"
        response = httpx.get(f"{self.url}/{path.lstrip('/')}", params=params, headers=headers, timeout=30)
        return response.json()

    def search(self, resource_type: str, **params) -> list[dict]:
        page = self.get(resource_type, _count="1000", **params)
        return [e["resource"] for e in page.get("entry") or ()]


def start_medplum(tokens: str = "") -> Medplum:
    node = shutil.which("node")
    if node is None or not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.skip("Medplum FHIR server not installed (needs node and `npm install` in tests/fhir_server)")
    env = {**os.environ, "FHIR_TEST_TOKENS": tokens}
    process = subprocess.Popen([node, "server.mjs", "0"], cwd=SERVER_DIR, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline()  # type: ignore[union-attr]
    if not line.startswith("listening "):
        process.kill()
        raise RuntimeError(f"FHIR server did not start: {line!r}")
    return Medplum(f"http://127.0.0.1:{int(line.split()[1])}", process)


@pytest.fixture
def medplum() -> Iterator[Medplum]:
    server = start_medplum()
    try:
        yield server
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


@dataclass(frozen=True)
class Topics:
    bootstrap: str
    topic: str
    dead_letter: str
    group: str


@pytest.fixture
async def topics(broker) -> Topics:  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    t = Topics(broker.bootstrap_servers, f"fhir-{suffix}", f"fhir-dlq-{suffix}", f"sink-{suffix}")
    await create_topics(broker.bootstrap_servers, {t.topic: 3, t.dead_letter: 1})
    return t
