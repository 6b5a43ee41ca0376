"""The MLLP gateway against the real broker over real loopback TCP: python-hl7's asyncio MLLP client (a framing
implementation we did not write) for the normal traffic, a raw socket for what no library client would send."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import hl7
import hl7.mllp
import httpx

from connector.pipeline import parse_reports
from connector.settings import KafkaSettings
from connector.stream.synthetic import accession

from ..stream.kafka_io import read_all
from ..stream.phi import assert_no_phi
from .conftest import running_gateway
from .messages import ADT, oru, with_msh
from .mllp_io import RawClient, field, framed, msa, parse_ack

SAMPLES = Path(__file__).resolve().parents[2] / "connector" / "samples"


async def hl7_client(port: int) -> tuple[hl7.mllp.HL7StreamReader, hl7.mllp.HL7StreamWriter]:
    return await hl7.mllp.open_hl7_connection("127.0.0.1", port, encoding="latin-1")


async def test_python_hl7_clients_every_byte_stored_keyed_acked_in_order(kafka: KafkaSettings) -> None:
    connections, per_connection = 4, 15
    # What python-hl7 puts on the wire for a parsed message (its serialisation has no trailing CR).
    sent: dict[int, list[bytes]] = {c: [str(hl7.parse(oru(c * 100 + k).decode())).encode()
                                        for k in range(per_connection)] for c in range(connections)}
    acks: dict[int, list[bytes]] = {}
    async with running_gateway(kafka) as gateway:

        async def one_connection(c: int) -> None:
            reader, writer = await hl7_client(gateway.port)
            acks[c] = []
            for message in sent[c]:
                writer.writemessage(hl7.parse(message.decode()))  # python-hl7 frames it
                await writer.drain()
                acks[c].append(await asyncio.wait_for(reader.readblock(), 10))
            writer.close()

        await asyncio.gather(*(one_connection(c) for c in range(connections)))
        total = connections * per_connection
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= total)

    assert len(records) == total
    by_value = {r.value: r for r in records}
    ack_ids = set()
    for c in range(connections):
        for k, (message, raw_ack) in enumerate(zip(sent[c], acks[c], strict=True)):
            # Every byte as sent (python-hl7 re-serialises the parsed message to the same bytes).
            record = by_value[message]
            i = c * 100 + k
            assert record.key == f"SYNHOSP|{accession(i)}".encode()
            assert record.key.decode() == parse_reports(message)[0].accession_key  # the connector's own key
            assert record.headers["hl7-message-control-id"] == f"CTL{i:010d}"
            assert record.headers["content-type"] == "application/hl7-v2"
            assert re.fullmatch(r"127\.0\.0\.1:\d+", record.headers["mllp-peer"])
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", record.headers["received-at"])
            # The ACK, field by field, read by python-hl7.
            parsed = parse_ack(raw_ack)
            assert field(parsed, "MSH", 3) == "RADLABEL" and field(parsed, "MSH", 4) == "SYNHOSP"  # receiver ...
            assert field(parsed, "MSH", 5) == "RIS" and field(parsed, "MSH", 6) == "SYNHOSP"  # ... and sender swapped
            assert field(parsed, "MSH", 9) == "ACK^R01^ACK"
            assert field(parsed, "MSH", 11) == "P" and field(parsed, "MSH", 12) == "2.5.1"
            assert re.fullmatch(r"\d{14}\.\d{4}\+0000", field(parsed, "MSH", 7))
            ack_ids.add(field(parsed, "MSH", 10))
            assert field(parsed, "MSA", 1) == "AA" and field(parsed, "MSA", 2) == f"CTL{i:010d}"
            assert len(parsed) == 2, "an AA carries no ERR segment"
    assert len(ack_ids) == total and "" not in ack_ids, "every ACK has its own MSH-10"
    # Order per connection: within a partition, a connection's records appear in the order it sent them.
    for c in range(connections):
        ids = [f"CTL{c * 100 + k:010d}" for k in range(per_connection)]
        mine = [r for r in records if r.headers["hl7-message-control-id"] in ids]
        for partition in {r.partition for r in mine}:
            in_partition = sorted((r for r in mine if r.partition == partition), key=lambda r: r.offset)
            order = [ids.index(r.headers["hl7-message-control-id"]) for r in in_partition]
            assert order == sorted(order)


async def test_samples_versions_and_charsets_forwarded_unchanged(kafka: KafkaSettings) -> None:
    samples = sorted(SAMPLES.glob("*.hl7"))
    from connector.mllp.client import file_messages

    messages = [m for path in samples for m in file_messages(path.read_bytes())]
    latin1 = with_msh(oru(7), f10="LATIN1", f18="8859/1").replace(b"Cough.", b"Toux s\xe8che.")
    messages.append(latin1)
    async with running_gateway(kafka) as gateway:
        client = await RawClient.connect(gateway.port)
        replies = []
        for message in messages:
            await client.write(framed(message))
            replies.append(await client.read_ack())
        await client.close()
        stored = [m for m, r in zip(messages, replies) if msa(r)[0] in ("AA", "CA")]  # sample 01 asks for enhanced mode
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= len(stored))
    assert len(stored) == len(messages), [msa(r) for r in replies]  # non_oru=forward: the ADT sample too
    assert sorted(r.value for r in records) == sorted(messages)
    for message, reply in zip(messages, replies):
        parsed = parse_ack(reply)
        msh = hl7.parse(message.decode("latin-1")).segment("MSH")
        assert field(parsed, "MSH", 12) == str(msh[12])  # the original's version
        assert field(parsed, "MSA", 2) == str(msh[10])
        if str(msh[12]) == "2.3":
            assert field(parsed, "MSH", 9) == f"ACK^{msh[9][0][1]}"  # v2.3 MSG type has no structure component
    latin1_ack = parse_ack(replies[-1])
    assert field(latin1_ack, "MSH", 18) == "8859/1"  # character set echoed
    # Multi-report message: keyed by its first report, with the connector's key function.
    two = next(m for m in messages if len(parse_reports(m)) == 2)
    assert next(r for r in records if r.value == two).key == parse_reports(two)[0].accession_key.encode()
    adt = next(m for m in messages if b"|ADT^" in m.split(b"\r")[0])
    assert next(r for r in records if r.value == adt).key == str(hl7.parse(adt.decode()).segment("MSH")[10]).encode()


async def test_rejects_answer_ar_with_err_and_store_nothing(kafka: KafkaSettings) -> None:
    cases = [
        (b"THIS IS NOT HL7\rPID|1\r", "100", None, "MSH^1"),
        (with_msh(oru(1), f12="2.9"), "203", "CTL0000000001", "MSH^1^12"),
        (with_msh(oru(2), f10=""), "101", "", "MSH^1^10"),
        (oru(3).replace(b"MSH|^~\\&|", b"MSH|^~|", 1), "102", None, "MSH^1^2"),
    ]
    async with running_gateway(kafka, non_oru="reject") as gateway:
        client = await RawClient.connect(gateway.port)
        for message, code, control_id, location in cases:
            await client.write(framed(message))
            parsed = parse_ack(await client.read_ack())
            assert field(parsed, "MSA", 1) == "AR"
            if control_id is not None:
                assert field(parsed, "MSA", 2) == control_id
            err = parsed.segment("ERR")
            assert str(err[2]) == location
            assert str(err[3]) .split("^")[0] == code and str(err[3]).endswith("^HL70357")
            assert str(err[4]) == "E"
        # Policy reject: ADT -> 200 (unsupported message type), ORU^R30 -> 201 (unsupported event).
        for message, code in ((ADT, "200"), (with_msh(oru(4), f9="ORU^R30^ORU_R30"), "201")):
            await client.write(framed(message))
            parsed = parse_ack(await client.read_ack())
            assert field(parsed, "MSA", 1) == "AR" and str(parsed.segment("ERR")[3]).startswith(code + "^")
        # v2.3: the error goes into ERR-1 (ELD) and MSA-3, as that version defines.
        await client.write(framed(with_msh(oru(5, control_id="OLD23"), f9="ADT^A01", f12="2.3")))
        parsed = parse_ack(await client.read_ack())
        assert field(parsed, "MSA", 1) == "AR" and field(parsed, "MSA", 2) == "OLD23"
        assert str(parsed.segment("ERR")[1]) == "MSH^1^9^200&Unsupported message type&HL70357"
        assert field(parsed, "MSA", 3) == "only ORU R01 messages are accepted"
        # The connection survives all of that: a good message is stored and acknowledged.
        await client.write(framed(oru(6)))
        assert msa(await client.read_ack()) == ("AA", "CTL0000000006")
        await client.close()
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= 1,
                                 timeout_s=3)
    assert [r.value for r in records] == [oru(6)]


async def test_non_oru_policies(kafka: KafkaSettings) -> None:
    for policy, stored in (("ack", False), ("forward", True)):
        async with running_gateway(kafka, non_oru=policy) as gateway:
            client = await RawClient.connect(gateway.port)
            await client.write(framed(ADT))
            assert msa(await client.read_ack()) == ("AA", "ADT0000001")
            await client.close()
    records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= 2, timeout_s=3)
    assert [(r.value, r.key) for r in records] == [(ADT, b"ADT0000001")], "ack drops, forward stores (once)"


async def test_enhanced_mode_accept_acks(kafka: KafkaSettings) -> None:
    async with running_gateway(kafka, non_oru="reject") as gateway:
        client = await RawClient.connect(gateway.port)
        await client.write(framed(with_msh(oru(1), f15="AL", f16="NE")))
        parsed = parse_ack(await client.read_ack())
        assert field(parsed, "MSA", 1) == "CA" and field(parsed, "MSA", 2) == "CTL0000000001"
        assert field(parsed, "MSH", 15) == "" and field(parsed, "MSH", 16) == ""  # an ACK is not acknowledged
        # ER: no accept ACK on success; SU: none on reject. The next ACK on the wire is for message 4.
        await client.write(framed(with_msh(oru(2), f15="ER", f16="AL")))
        await client.write(framed(with_msh(ADT, f15="SU")))
        await client.write(framed(with_msh(ADT, f10="ADT4", f15="ER")))
        parsed = parse_ack(await client.read_ack())
        assert field(parsed, "MSA", 1) == "CR" and field(parsed, "MSA", 2) == "ADT4"
        assert str(parsed.segment("ERR")[3]).startswith("200^")
        with_ne = with_msh(oru(5), f15="NE", f16="NE")
        await client.write(framed(with_ne) + framed(oru(6)))
        assert msa(await client.read_ack()) == ("AA", "CTL0000000006")
        await client.close()
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= 4,
                                 timeout_s=5)
    assert sorted(r.headers["hl7-message-control-id"] for r in records) == [
        "CTL0000000001", "CTL0000000002", "CTL0000000005", "CTL0000000006"]


async def test_framing_faults(kafka: KafkaSettings) -> None:
    async with running_gateway(kafka, max_message_bytes=4096, idle_timeout_s=1.0) as gateway:
        # 1. Split frames: one byte per write, slowly (a slow sender).
        client = await RawClient.connect(gateway.port)
        for b in framed(oru(1)):
            await client.write(bytes([b]))
            await asyncio.sleep(0.0005)
        assert msa(await client.read_ack()) == ("AA", "CTL0000000001")
        # 2. Several frames in one write, with garbage and whitespace between them: each frame answered in order.
        await client.write(framed(oru(2)) + b"\r\n" + b"NOISE" + framed(oru(3)) + b"\x00\x01" + framed(oru(4)))
        assert [msa(await client.read_ack())[1] for _ in range(3)] == ["CTL0000000002", "CTL0000000003",
                                                                       "CTL0000000004"]
        # 3. A frame without its end byte, then the next frame: AR 100 for the first, AA for the second.
        await client.write(b"\x0b" + oru(5) + framed(oru(6)))
        first, second = parse_ack(await client.read_ack()), await client.read_ack()
        assert field(first, "MSA", 1) == "AR" and field(first, "MSA", 2) == "CTL0000000005"
        assert str(first.segment("ERR")[3]).startswith("100^")
        assert msa(second) == ("AA", "CTL0000000006")
        # 4. Oversize: AR (207) naming its MSH-10, the rest discarded, the connection kept.
        big = oru(7) + b"OBX|99|TX|X||" + b"A" * 10_000 + b"\r"
        await client.write(framed(big))
        parsed = parse_ack(await client.read_ack())
        assert field(parsed, "MSA", 1) == "AR" and field(parsed, "MSA", 2) == "CTL0000000007"
        assert str(parsed.segment("ERR")[3]).startswith("207^") and "4096 bytes" in str(parsed.segment("ERR")[8])
        await client.write(framed(oru(8)))
        assert msa(await client.read_ack()) == ("AA", "CTL0000000008")
        # 5. Idle timeout: the gateway closes a silent connection.
        assert await client.closed_by_peer(timeout=5)
        await client.close()
        # 6. A frame cut by a disconnect (abrupt: RST) is neither stored nor ACKed; the gateway serves on.
        cut = await RawClient.connect(gateway.port)
        await cut.write(b"\x0b" + oru(9)[:200])
        cut.writer.transport.abort()
        await asyncio.sleep(0.2)
        client = await RawClient.connect(gateway.port)
        await client.write(framed(oru(10)))
        assert msa(await client.read_ack()) == ("AA", "CTL0000000010")
        await client.close()
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= 7,
                                 timeout_s=5)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http.port}") as http:
            metrics = (await http.get("/metrics")).text
    assert sorted(r.value for r in records) == sorted(oru(i) for i in (1, 2, 3, 4, 6, 8, 10))
    assert 'radlabel_mllp_framing_errors_total{kind="garbage"} 2.0' in metrics
    assert 'radlabel_mllp_framing_errors_total{kind="unterminated"} 2.0' in metrics
    assert 'radlabel_mllp_framing_errors_total{kind="oversize"} 1.0' in metrics
    assert 'radlabel_mllp_framing_errors_total{kind="idle-timeout"} 1.0' in metrics


async def test_idle_timeout_counts_from_the_last_read_not_from_connect(kafka: KafkaSettings) -> None:
    """The idle timer is one per connection, re-armed when it comes due: a sender that writes more often than the
    timeout keeps its connection for many timeouts in a row, and a silent one is closed about one timeout later."""
    idle = 0.6
    async with running_gateway(kafka, idle_timeout_s=idle) as gateway:
        client = await RawClient.connect(gateway.port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i in range(1, 8):  # 7 messages 0.35 s apart: 2.4 s, four timeouts' worth
            await client.write(framed(oru(i)))
            assert msa(await client.read_ack()) == ("AA", f"CTL000000000{i}")
            await asyncio.sleep(0.35)
        assert loop.time() - started > 4 * idle
        silent_since = loop.time()
        assert await client.closed_by_peer(timeout=5)
        assert idle - 0.35 - 0.05 <= loop.time() - silent_since <= 2 * idle + 0.5
        await client.close()


async def test_allow_list_refuses_other_peers(kafka: KafkaSettings) -> None:
    async with running_gateway(kafka, allowed_peers=["127.0.0.2/32"]) as gateway:
        refused = await RawClient.connect(gateway.port)  # from 127.0.0.1
        await refused.write(framed(oru(1)))
        assert await refused.closed_by_peer()
        await refused.close()
        allowed = await RawClient.connect(gateway.port, local_addr=("127.0.0.2", 0))
        await allowed.write(framed(oru(2)))
        assert msa(await allowed.read_ack()) == ("AA", "CTL0000000002")
        await allowed.close()
        records = await read_all(kafka.bootstrap_servers, [kafka.input_topic], until=lambda r: len(r) >= 2,
                                 timeout_s=3)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http.port}") as http:
            metrics = (await http.get("/metrics")).text
    assert [r.value for r in records] == [oru(2)]
    assert 'radlabel_mllp_connections_total{result="refused"} 1.0' in metrics


async def test_metrics_health_and_phi_free_logs(kafka: KafkaSettings, log_capture) -> None:
    async with running_gateway(kafka, non_oru="reject") as gateway:
        reader, writer = await hl7_client(gateway.port)
        for i in range(5):
            writer.writeblock(oru(i))
            await writer.drain()
            await reader.readblock()
        writer.writeblock(ADT)
        await writer.drain()
        await reader.readblock()
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.http.port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            ready = await http.get("/readyz")
            metrics = (await http.get("/metrics")).text
            await asyncio.sleep(0.1)
    assert ready.status_code == 200 and ready.text.strip() == "ready"
    assert 'radlabel_mllp_messages_total{outcome="stored"} 5.0' in metrics
    assert 'radlabel_mllp_messages_total{outcome="rejected"} 1.0' in metrics
    assert 'radlabel_mllp_acks_total{code="AA"} 5.0' in metrics
    assert 'radlabel_mllp_acks_total{code="AR"} 1.0' in metrics
    assert "radlabel_mllp_ack_seconds_count 6.0" in metrics
    assert 'radlabel_mllp_connections_total{result="accepted"} 1.0' in metrics
    assert "radlabel_mllp_connections_open 0.0" in metrics or "radlabel_mllp_connections_open 1.0" in metrics
    logs = log_capture.getvalue()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    messages = [line for line in lines if line["event"] == "mllp_message"]
    assert len(messages) == 6
    assert {m["outcome"] for m in messages} == {"stored", "rejected"}
    assert all(re.fullmatch(r"[0-9a-f]{12}", m["control_id_hash"]) for m in messages)
    assert_no_phi(logs, extra=["ADT0000001", "SYNHOSP|", "MRN9000"])
