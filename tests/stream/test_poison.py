"""Poison messages go to the dead-letter topic, raw bytes preserved, while the good ones keep flowing.
The captured logs carry none of the fixtures' PHI."""

from __future__ import annotations

import asyncio
import io
from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream import dlq
from connector.stream.app import StreamApp
from connector.stream.process import NOT_FOR_US
from connector.stream.synthetic import accession, oru_message

from .kafka_io import publish, read_all
from .phi import assert_no_phi

ADT = (b"MSH|^~\\&|ADT|SYNHOSP|RADLABEL|SYNHOSP|20250101120000||ADT^A01^ADT_A01|CTLADT0001|P|2.5.1\r"
       b"PID|1||MRN90009^^^SYNHOSP^MR||YYPHANTOM^DOROTHEA||19700101|F\r"
       b"PV1|1|I|WARD1\r")


def poison_inputs() -> dict[str, bytes]:
    good = oru_message(10_000)
    return {
        "garbage": b"\x00\xff this is not HL7 at all \x13\x37",
        "truncated": good[:60],  # cut inside MSH: no OBR, no report
        "non-oru": ADT,
        "oversize": oru_message(10_001, padding_lines=400),  # ~25 KB > max_record_bytes below
        "empty": b"",
    }


async def run_until(kafka: KafkaSettings, values: list[bytes], expect: int) -> tuple[list, list, StreamApp]:
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    labeler = RuleLabeler()
    app = StreamApp(Settings(kafka=kafka), labeler, http_port=-1)
    task = asyncio.create_task(app.run())
    try:
        records = await read_all(kafka.bootstrap_servers, [kafka.output_topic, kafka.dead_letter_topic],
                                 until=lambda r: len(r) >= expect, timeout_s=30)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
        await labeler.aclose()
    return sent, records, app


async def test_poison_to_dead_letter_stream_keeps_flowing(kafka: KafkaSettings, log_capture: io.StringIO) -> None:
    logs = log_capture
    kafka = kafka.model_copy(update={"max_record_bytes": 16_384, "non_oru": "dead-letter"})
    poison = poison_inputs()
    good = [oru_message(i) for i in range(20)]
    # Poison interleaved with good messages, so a dead letter in mid-batch must not block what follows.
    values = good[:5] + list(poison.values()) + good[5:]
    sent, records, app = await run_until(kafka, values, expect=len(good) + len(poison))

    outputs = [r for r in records if r.topic == kafka.output_topic]
    dead = [r for r in records if r.topic == kafka.dead_letter_topic]
    assert sorted(r.key for r in outputs) == sorted(f"SYNHOSP|{accession(i)}".encode() for i in range(20))
    assert len(dead) == len(poison)
    by_value = {s.value: s for s in sent}
    reasons = {}
    for record in dead:
        source = by_value[record.value]  # raw bytes preserved exactly
        assert record.source == (source.partition, source.offset)
        assert record.headers["source-topic"] == kafka.input_topic
        assert record.headers["dlq-reason"] and "dlq-detail" in record.headers
        name = next(k for k, v in poison.items() if v == record.value)
        reasons[name] = record.headers["dlq-reason"]
    assert reasons["oversize"] == dlq.OVERSIZE
    assert reasons["non-oru"] in NOT_FOR_US
    assert reasons["garbage"] not in NOT_FOR_US | {dlq.OVERSIZE}
    assert reasons["truncated"] not in NOT_FOR_US | {dlq.OVERSIZE}
    assert app.metrics.dead_lettered.labels(dlq.OVERSIZE)._value.get() == 1
    assert_no_phi(logs.getvalue(), extra=("YYPHANTOM", "DOROTHEA", "MRN90009"))
    assert "dead_lettered" in logs.getvalue()  # the capture did see the connector's log lines


async def test_non_oru_skip_is_counted_not_dead_lettered(kafka: KafkaSettings) -> None:
    kafka = kafka.model_copy(update={"non_oru": "skip"})
    values = [oru_message(1), ADT, oru_message(2)]
    _, records, app = await run_until(kafka, values, expect=2)
    await asyncio.sleep(0)  # the skip is counted with its batch, before the commit
    assert [r.topic for r in records] == [kafka.output_topic] * 2
    assert sum(s._value.get() for s in app.metrics.skipped._metrics.values()) == 1
