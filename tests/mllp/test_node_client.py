"""The gateway against an MLLP client from another ecosystem: Medplum's @medplum/hl7 (Node.js), installed by the
Makefile (tests/mllp/node_client). Several concurrent connections; ACKs read by Medplum's own HL7 parser."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import hl7
import pytest

from connector.settings import KafkaSettings
from connector.stream.synthetic import accession

from ..stream.kafka_io import read_all
from .conftest import running_gateway
from .messages import oru, with_msh
from .mllp_io import field, parse_ack

CLIENT = Path(__file__).resolve().parent / "node_client"


@pytest.fixture(scope="module")
def node_client() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (CLIENT / "node_modules" / "@medplum" / "hl7").is_dir():
        pytest.skip("tests/mllp/node_client/node_modules missing: run `make install` (npm install there)")
    return CLIENT / "send.mjs"


async def run_node(script: Path, port: int, connections: list[list[str]], tmp_path: Path) -> list[list[dict]]:
    import asyncio

    source = tmp_path / "messages.json"
    source.write_text(json.dumps(connections), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec("node", str(script), "127.0.0.1", str(port), str(source),
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


async def test_medplum_client_messages_stored_byte_for_byte_and_acked(node_client: Path, kafka: KafkaSettings,
                                                                      tmp_path: Path) -> None:
    connections = [[oru(c * 100 + k).decode() for k in range(10)] for c in range(3)]
    # UTF-8 content declared in MSH-18, and an enhanced-mode message (Medplum's client waits for its CA).
    connections[0].append(with_msh(oru(50), f18="UNICODE UTF-8").decode().replace("Cough.", "Toux sèche."))
    connections[1].append(with_msh(oru(51), f15="AL", f16="NE").decode())
    async with running_gateway(kafka) as gateway:
        results = await run_node(node_client, gateway.port, connections, tmp_path)
        total = sum(len(c) for c in connections)
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= total)
    assert len(records) == total
    by_value = {r.value: r for r in records}
    for c, exchanges in enumerate(results):
        assert len(exchanges) == len(connections[c])
        for exchange in exchanges:
            sent = exchange["sent"].encode("utf-8")  # Medplum's client encodes UTF-8 by default
            record = by_value[sent]  # every byte as the client sent it
            control_id = str(hl7.parse(exchange["sent"]).segment("MSH")[10])
            assert record.headers["hl7-message-control-id"] == control_id
            i = int(control_id[3:])
            assert record.key == f"SYNHOSP|{accession(i)}".encode()
            ack = parse_ack(exchange["ack"].encode("utf-8"))
            expected = "CA" if i == 51 else "AA"
            assert field(ack, "MSA", 1) == expected and field(ack, "MSA", 2) == control_id
            assert field(ack, "MSH", 9) == "ACK^R01^ACK" and field(ack, "MSH", 5) == "RIS"
    assert "Toux sèche.".encode() in b"".join(by_value)
