"""Run `radlabel mllp` as a real OS process (so it can be SIGKILLed), logs to a file, ready line parsed."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from connector.settings import KafkaSettings

from ..stream.connector_proc import REPO

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connector.cli", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def start_gateway(kafka: KafkaSettings, log_file: Path, *extra: str,
                  timeout_s: float = 30) -> tuple[subprocess.Popen[bytes], dict]:
    cmd = [sys.executable, "-m", "connector.cli", "mllp", "--bootstrap-servers", kafka.bootstrap_servers,
           "--port", "0", "--host", "127.0.0.1", "--topic", kafka.input_topic, "--http-port", "0", *extra]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=log)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line:
                return proc, json.loads(line)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"gateway did not announce readiness: {log_file.read_text()[-2000:]}")
