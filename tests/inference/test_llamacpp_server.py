"""Integration tests against a REAL llama.cpp server (llama-cpp-python[server], SmolLM2-135M Q4_1 GGUF).

The model is tiny and not fine-tuned, so these tests check the client and the constrained-decoding path, not
label quality: every answer must parse strictly under the answer schema, limits must hold, failures must map to
the right typed errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from inference_client.config import ClientConfig
from inference_client.errors import ServerMisconfigured, ServerUnavailable
from inference_client.openai_compat import OpenAILabeler
from mappings.labels import AnswerInvalid, LabelSet, ReportTooLong
from mappings.prompt import ANSWER_SCHEMA
from mappings.vocabulary import ALLOWED

from inference_client.llamacpp_server import API_KEY, MODEL_ALIAS, LlamaServer
from tests.inference.proxy import CountingProxy

pytestmark = pytest.mark.slow

# Written for these tests (no dataset text).
REPORTS = [
    "Heart size is normal. The lungs are clear. No pleural effusion or pneumothorax.",
    "Cardiomegaly with mild pulmonary edema. Small bilateral pleural effusions.",
    "Right lower lobe opacity, possibly pneumonia. Left subclavian central venous catheter tip in the SVC.",
    "Healed left rib fractures. No acute cardiopulmonary abnormality.",
    "Possible small left apical pneumothorax. Atelectasis at the left base.",
]


def config(server: LlamaServer, **overrides: object) -> ClientConfig:
    values: dict = {
        "endpoint": f"{server.url}/v1",
        "api_key": API_KEY,
        "max_new_tokens": 96,
        "timeout_s": 60,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.2,
    }
    values.update(overrides)
    return ClientConfig(**values)


def valid_under_schema(answer: dict) -> bool:
    """ANSWER_SCHEMA's rules, checked independently of mappings.prompt.parse_answer."""
    props = ANSWER_SCHEMA["properties"]
    return all(key in props and value in props[key]["enum"] for key, value in answer.items())


async def test_answers_parse_under_the_schema(llama_server: LlamaServer) -> None:
    raw: list[str] = []

    async def keep_answer(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/chat/completions"):
            await response.aread()
            raw.append(response.json()["choices"][0]["message"]["content"])

    async with OpenAILabeler(config(llama_server, max_concurrency=1)) as labeler:
        labeler._http.event_hooks["response"].append(keep_answer)
        assert await labeler.ready()
        assert labeler.preset == "llamacpp" and labeler.model_name == MODEL_ALIAS  # auto-detected
        outcomes = await labeler.label_batch_detailed(REPORTS[:4])
        assert labeler.stats.completion_tokens > 0
    assert all(isinstance(o, LabelSet) for o in outcomes), outcomes
    assert len(raw) == 4
    for text, outcome in zip(raw, outcomes, strict=True):
        answer = json.loads(text)
        assert valid_under_schema(answer), text
        assert {k: v.value for k, v in outcome.labels.items()} == answer
        assert all(v in ALLOWED[k] for k, v in outcome.labels.items())
        assert outcome.labeler.model == MODEL_ALIAS and outcome.labeler.name == "llm"


async def test_concurrency_limit_is_respected_and_used(llama_server: LlamaServer) -> None:
    async with CountingProxy(llama_server.url) as proxy:
        cfg = config(llama_server, endpoint=proxy.url, max_concurrency=2, max_new_tokens=24)
        async with OpenAILabeler(cfg) as labeler:
            outcomes = await labeler.label_batch_detailed(REPORTS)
    assert len(outcomes) == 5
    assert proxy.forwarded >= 5
    # bounded (never 3+ at the server) and used (the client kept 2 requests queued at a serial server)
    assert proxy.max_in_flight == 2
    assert labeler.max_in_flight == 2


async def test_bearer_token_is_required_and_sent(llama_server: LlamaServer) -> None:
    async with OpenAILabeler(config(llama_server, api_key=None, max_retries=3)) as labeler:
        assert await labeler.ready() is False
        with pytest.raises(ServerMisconfigured):
            await labeler.label_batch_detailed(REPORTS[:1])
        assert labeler.stats.attempts == 1  # a 401 is not retried


async def test_report_longer_than_context_is_report_too_long_and_others_still_labeled(
    llama_server: LlamaServer,
) -> None:
    long_report = "The heart is normal in size and the lungs are clear. " * 120  # > 1024-token context
    async with OpenAILabeler(config(llama_server, max_concurrency=1)) as labeler:
        outcomes = await labeler.label_batch_detailed([long_report, REPORTS[3]])
    assert isinstance(outcomes[0], ReportTooLong)
    assert isinstance(outcomes[1], LabelSet)


async def test_answer_cut_by_max_tokens_is_invalid(llama_server: LlamaServer) -> None:
    async with OpenAILabeler(config(llama_server, max_new_tokens=3)) as labeler:
        [outcome] = await labeler.label_batch_detailed([REPORTS[1]])
    assert isinstance(outcome, AnswerInvalid) and "finish_reason=length" in str(outcome)


async def test_wrong_preset_is_a_server_error_not_a_label(llama_server: LlamaServer) -> None:
    """llama-cpp-python answers the OpenAI json_schema form with HTTP 500: retried, then unavailable - no report
    is dead-lettered because of a configuration mistake (see docs/INFERENCE.md)."""
    cfg = config(llama_server, response_format="openai", max_retries=1)
    async with OpenAILabeler(cfg) as labeler:
        with pytest.raises(ServerUnavailable):
            await labeler.label_batch_detailed(REPORTS[:1])
        assert labeler.stats.by_status == {500: 2}


async def test_label_cli_through_the_model_server(llama_server: LlamaServer, tmp_path: Path) -> None:
    """`label --labeler llm --endpoint` end to end: settings from the environment, CheXpert CSV out, every report
    answered by the model server (counted at the proxy)."""
    import asyncio
    import csv
    import os
    import sys

    source = tmp_path / "in.csv"
    with source.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "report"])
        writer.writerows([["r1", REPORTS[0]], ["r2", REPORTS[1]]])
    env = {**os.environ, "RADLABEL_LABELER__API_KEY": API_KEY, "RADLABEL_LABELER__MAX_NEW_TOKENS": "96"}
    async with CountingProxy(llama_server.url) as proxy:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "connector.cli", "label", "--input", str(source),
            "--output", str(tmp_path / "out.csv"), "--labeler", "llm", "--endpoint", f"{proxy.url}/v1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert proxy.paths.count("POST /v1/chat/completions") == 2  # one per report, from the model server
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [row["id"] for row in rows] == ["r1", "r2"]
    assert all(set(row.values()) - {row["id"]} <= {"1", "0", "-1", ""} for row in rows)


async def test_real_reports_parse_under_the_schema(llama_server: LlamaServer, shared_data: Path) -> None:
    """12 gold-dev reports (read from ../shared at run time; skipped without it): every constrained answer parses."""
    import csv

    with (shared_data / "gold-dev" / "reports.csv").open(newline="", encoding="utf-8") as fh:
        reports = [row["report"] for row in csv.DictReader(fh)][:12]
    async with OpenAILabeler(config(llama_server, max_new_tokens=192, max_concurrency=2)) as labeler:
        outcomes = await labeler.label_batch_detailed(reports)
    assert len(outcomes) == 12
    assert all(isinstance(o, LabelSet) for o in outcomes), [type(o).__name__ for o in outcomes]
