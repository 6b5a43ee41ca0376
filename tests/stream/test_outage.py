"""Labeler outage: retry, then pause and stop committing; after recovery the backlog drains. With the explicit
fallback, the rule labeler's labels are published flagged as fallback."""

from __future__ import annotations

import asyncio
import json

from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, LabelerSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .flaky_server import FlakyLabelService, HttpLabeler
from .kafka_io import Tail, committed, end_offsets, publish


async def wait_until(predicate, timeout_s: float = 20.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def fast_retry_settings(kafka: KafkaSettings) -> Settings:
    return Settings(kafka=kafka, labeler=LabelerSettings(kind="llm", max_retries=1))


async def test_outage_pauses_commits_nothing_then_drains(kafka: KafkaSettings) -> None:
    with FlakyLabelService() as service:
        labeler = HttpLabeler(service.url)
        app = StreamApp(fast_retry_settings(kafka), labeler, http_port=-1, outage_backoff_s=0.1,
                        outage_backoff_max_s=0.5)
        task = asyncio.create_task(app.run())
        tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
        try:
            first = await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(20)])
            assert await tail.wait_for(lambda r: len(r) >= 20, 30)
            await wait_until(lambda: app.metrics.commits._value.get() > 0)
            await asyncio.sleep(0.3)
            committed_before = await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3)
            assert committed_before == {p: end_offsets(first).get(p, 0) for p in range(3)}

            service.failing = True
            second = await publish(kafka.bootstrap_servers, kafka.input_topic,
                                   [oru_message(i) for i in range(20, 60)])
            await wait_until(lambda: app.paused and service.failed_requests >= 4)
            assert (await app.ready())[0] is False
            assert app.metrics.paused._value.get() == 1
            await asyncio.sleep(1.0)  # a while into the outage: still nothing new out, nothing committed
            assert len(tail.records) == 20
            assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == committed_before
            assert app.metrics.labeler_unavailable._value.get() >= 4

            service.failing = False
            assert await tail.wait_for(lambda r: len(r) >= 60, 30), "backlog did not drain after recovery"
            await wait_until(lambda: not app.paused)
            assert (await app.ready())[0] is True
            everything = end_offsets([*first, *second])
            for _ in range(40):
                if await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {
                        p: everything.get(p, 0) for p in range(3)}:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("offsets not committed after recovery")
            assert {r.source for r in tail.records} == {(s.partition, s.offset) for s in [*first, *second]}
            assert all(r.headers["labeler"] == "http-test" and r.headers["fallback"] == "false"
                       for r in tail.records), "only labels the configured labeler produced"
        finally:
            app.request_stop()
            await asyncio.wait_for(task, 30)
            await tail.close()
            await labeler.aclose()


async def test_explicit_fallback_is_flagged(kafka: KafkaSettings) -> None:
    with FlakyLabelService() as service:
        service.failing = True
        labeler, rules = HttpLabeler(service.url), RuleLabeler()
        app = StreamApp(fast_retry_settings(kafka), labeler, fallback=rules, http_port=-1)
        task = asyncio.create_task(app.run())
        tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
        try:
            await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(10)])
            assert await tail.wait_for(lambda r: len(r) >= 10, 30)
            assert service.failed_requests >= 2  # the model was tried (and retried) first
            assert all(r.headers["fallback"] == "true" and r.headers["labeler"] == rules.info.name
                       for r in tail.records)
            for record in tail.records:  # the FHIR output itself says so (Observation.method)
                methods = [e["resource"]["method"]["text"] for e in json.loads(record.value)["entry"]
                           if e["resource"]["resourceType"] == "Observation"]
                assert methods and all(m.endswith("[fallback]") for m in methods)
            assert app.metrics.fallback._value.get() == 10
            assert app.metrics.labeled.labels(rules.info.name, "true")._value.get() == 10
        finally:
            app.request_stop()
            await asyncio.wait_for(task, 30)
            await tail.close()
            await labeler.aclose()
