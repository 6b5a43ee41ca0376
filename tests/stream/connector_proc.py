"""Run `radlabel run` as a real OS process (so it can be SIGKILLed) with its logs captured to a file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from connector.settings import KafkaSettings

REPO = Path(__file__).resolve().parents[2]


def start_connector(kafka: KafkaSettings, log_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        "RADLABEL_KAFKA__SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
        "RADLABEL_KAFKA__MAX_RECORD_BYTES": str(kafka.max_record_bytes),
    }
    cmd = [sys.executable, "-m", "connector.cli", "run", "--bootstrap-servers", kafka.bootstrap_servers,
           "--input-topic", kafka.input_topic, "--output-topic", kafka.output_topic,
           "--dead-letter-topic", kafka.dead_letter_topic, "--group", kafka.group_id,
           "--max-batch", str(kafka.max_batch), "--http-port", "-1", *extra]
    with open(log_file, "ab") as log:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
