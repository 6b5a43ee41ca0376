"""The real model-server path: connector -> OpenAILabeler (inference_client) -> llama.cpp server (SmolLM2 GGUF).
The server is SIGKILLed mid-stream and restarted on the same port: the connector pauses, commits nothing past
the failure, and drains the backlog with the model's labels once the server is back."""

from __future__ import annotations

import asyncio

import pytest

from connector.labelers import make_labeler
from connector.settings import KafkaSettings, LabelerSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .kafka_io import Tail, committed, end_offsets, publish

llamacpp = pytest.importorskip("inference_client.llamacpp_server")

pytestmark = pytest.mark.slow


async def test_model_server_crash_pauses_then_drains(kafka: KafkaSettings) -> None:
    if reason := llamacpp.server_available():
        pytest.skip(reason)
    server = llamacpp.LlamaServer(n_ctx=2048).start()
    settings = Settings(kafka=kafka.model_copy(update={"max_batch": 4}), labeler=LabelerSettings(
        kind="llm", endpoint=f"{server.url}/v1", api="openai", api_key=llamacpp.API_KEY, max_new_tokens=120,
        timeout_s=60, max_retries=1, max_concurrency=1, breaker_failures=2, breaker_reset_s=0.5))
    labeler = make_labeler(settings.labeler)
    app = StreamApp(settings, labeler, http_port=-1, outage_backoff_s=0.2, outage_backoff_max_s=1.0)
    tail = Tail(kafka.bootstrap_servers, [kafka.output_topic, kafka.dead_letter_topic])
    task = asyncio.create_task(app.run())
    try:
        first = await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i, padding_lines=0)
                                                                          for i in range(2)])
        assert await tail.wait_for(lambda r: len(r) >= 2, 120)
        await asyncio.sleep(0.5)
        before = await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3)
        assert before == {p: end_offsets(first).get(p, 0) for p in range(3)}

        server.kill()
        second = await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i, padding_lines=0)
                                                                           for i in range(2, 4)])
        for _ in range(200):
            if app.paused:
                break
            await asyncio.sleep(0.1)
        assert app.paused and not (await app.ready())[0]
        assert len(tail.records) == 2
        assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == before

        server.start()
        assert await tail.wait_for(lambda r: len(r) >= 4, 180), "backlog did not drain after the server came back"
        sources = {(s.partition, s.offset) for s in [*first, *second]}
        assert {r.source for r in tail.records} == sources
        outputs = [r for r in tail.records if r.topic == kafka.output_topic]
        print(f"\nllama.cpp outage: bundles={len(outputs)} dead-lettered={len(tail.records) - len(outputs)} "
              f"labeler_unavailable={app.metrics.labeler_unavailable._value.get():.0f}")
        assert outputs, "the model labeled at least some reports"
        assert all(r.headers["labeler"] == labeler.info.name and r.headers["fallback"] == "false" for r in outputs)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 60)
        await tail.close()
        await labeler.aclose()
        server.stop()
