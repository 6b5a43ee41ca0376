"""CONTRACT TEST for deploy/tgi/check_tgi.py: the script a user runs against a real TGI, run here against a small
local HTTP server that answers like TGI (shapes from tgi_contract.py, requests validated against the contract)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from inference_client.llamacpp_server import free_port
from mappings.prompt import render_answer
from mappings.vocabulary import Certainty

from tests.inference.tgi_contract import (
    INFO,
    MODEL_INFO,
    ContractViolation,
    chat_completion,
    check_chat_request,
    check_generate_request,
    error,
    generate_response,
)

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parents[2]
ANSWER = render_answer({"Cardiomegaly": Certainty.POSITIVE, "Edema": Certainty.NEGATIVE})


class FakeTGI:
    """ASGI app: TGI's routes, context limit from /info, truncation at small max_new_tokens."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.routes: list[str] = []

    def reply(self, method: str, path: str, body: dict | None) -> tuple[int, object]:
        self.routes.append(f"{method} {path}")
        if path == "/health":
            return 200, None
        if path == "/info":
            return 200, INFO
        if path == "/v1/models":
            return 200, MODEL_INFO
        if path == "/generate":
            check_generate_request(body)
            params = body["parameters"]  # type: ignore[index]
            if len(body["inputs"].split()) > INFO["max_input_tokens"]:  # type: ignore[index]
                return 422, error("Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096", "validation")
            if params["max_new_tokens"] < 10:
                return 200, generate_response(ANSWER[:5], "length", params["max_new_tokens"])
            return 200, generate_response(ANSWER)
        if path == "/v1/chat/completions":
            check_chat_request(body)
            return 200, chat_completion(ANSWER)
        return 404, error("not found", "not_found")

    async def __call__(self, scope, receive, send) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            status, payload = self.reply(scope["method"], scope["path"], json.loads(raw) if raw else None)
        except ContractViolation as exc:
            self.violations.append(str(exc))
            status, payload = 422, error(str(exc), "validation")
        data = b"" if payload is None else json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": data})


async def test_contract_check_tgi_script_passes_against_a_tgi_shaped_server() -> None:
    if importlib.util.find_spec("uvicorn") is None:
        pytest.skip("uvicorn (llama-cpp-python[server] extra) not installed")
    import uvicorn

    app = FakeTGI()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(REPO / "deploy/tgi/check_tgi.py"), "--endpoint", f"http://127.0.0.1:{port}",
            "--token", "t", "--reports", "8", "--concurrency", "4",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        server.should_exit = True
        await task
    text = out.decode()
    assert proc.returncode == 0, text
    assert app.violations == []
    assert "FAIL" not in text and text.rstrip().endswith("OK")
    for check in ("GET /health", "POST /generate with grammar", "-> AnswerInvalid", "-> ReportTooLong", "preset=tgi"):
        assert check in text, check
    assert "POST /generate" in app.routes and "POST /v1/chat/completions" in app.routes
