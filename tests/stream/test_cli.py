"""`radlabel demo` and `radlabel broker` as a user runs them: real processes, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from connector.stream.broker import find_tansu

from .connector_proc import REPO

ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def tansu_pids_on(port: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "tansu" in cmdline and f":{port}" in cmdline:
                pids.append(int(entry.name))
    return pids


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_find_tansu_is_executable() -> None:
    path = find_tansu()
    assert path.is_file() and os.access(path, os.X_OK)


def test_demo_prints_table_writes_bundles_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    result = subprocess.run([sys.executable, "-m", "connector.cli", "demo", "--out", str(out)], cwd=tmp_path,
                            env=ENV, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    port = int(re.search(r"Tansu on 127\.0\.0\.1:(\d+)", result.stdout).group(1))
    table = [line for line in result.stdout.splitlines() if line.startswith(("DEMOHOSP|", "-  "))]
    files = sorted(out.glob("*.json"))
    bundle_rows = [line for line in table if line.startswith("DEMOHOSP|")]
    assert len(files) == len(bundle_rows) >= 7
    for path in files:
        bundle = json.loads(path.read_bytes())
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        assert str(path) in result.stdout
    assert any("dead-letter: not-oru" in line for line in table)
    # the brain MRI on the same feed is shown as skipped, with its reason, and writes no bundle
    (skipped,) = [line for line in table if "skipped:" in line]
    assert "excluded:mr" in skipped and "09-not-chest-brain-mri" in skipped
    assert any(re.search(r"\b(final|preliminary|corrected)\b.*[+?-]", line) for line in bundle_rows)
    assert not tansu_pids_on(port) and not port_open(port)


def test_broker_command_serves_topics_and_stops_on_sigint() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "connector.cli", "broker", "--topics", "a,b", "--partitions", "2"],
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))

        async def topics() -> list[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
            await admin.start()
            try:
                return await admin.list_topics()
            finally:
                await admin.close()

        assert {"a", "b"} <= set(asyncio.run(topics()))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
        assert not tansu_pids_on(port) and not port_open(port)
    finally:
        if proc.poll() is None:
            proc.kill()
