"""`radlabel sink`: the output topic -> a FHIR server, as the `act` of the shared consume loop
(connector/stream/loop.py: commit after acknowledgement, pause on an outage, health, lag).

The act applies the batch (connector.sink.writer: one transaction per record, reports concurrently, each report's
versions in order), produces the batch's dead letters with acks=all, and returns; the loop then commits. When the
FHIR server stays unavailable after the client's retries (FhirUnavailable), the loop holds the batch uncommitted,
pauses the partitions and retries it later, staying in the group.
"""

from __future__ import annotations

import asyncio

import httpx

from connector.logging import get_logger
from connector.settings import Settings
from connector.sink.client import FhirClient, FhirUnavailable
from connector.sink.metrics import SinkMetrics
from connector.sink.writer import SinkWriter
from connector.stream.loop import ConsumeLoop
from connector.stream.metrics import Metrics
from connector.stream.process import InputRecord

log = get_logger(__name__)



class SinkApp(ConsumeLoop):
    holds = (FhirUnavailable,)
    hold_reason = "FHIR server unavailable"
    program = "sink"

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None, http_port: int | None = None,
                 http_host: str | None = None, poll_timeout_ms: int = 200, outage_backoff_s: float = 0.5,
                 outage_backoff_max_s: float = 15.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        sink = settings.sink
        super().__init__(
            settings.kafka, topics=[sink.topic or settings.kafka.output_topic], metrics=metrics,
            http_port=settings.http_port if http_port is None else http_port,
            http_host=settings.http_host if http_host is None else http_host,
            poll_timeout_ms=poll_timeout_ms, outage_backoff_s=outage_backoff_s,
            outage_backoff_max_s=outage_backoff_max_s, group_id=sink.group_id,
        )
        self.settings = settings
        self.sink_metrics = SinkMetrics(self.metrics.registry)
        self.client = FhirClient(sink, self.sink_metrics, transport=transport)
        self.writer = SinkWriter(self.client, sink, self.sink_metrics)

    def on_started(self) -> None:
        log.info("sink_started", topics=self.topics, group=self.group_id, profile=self.settings.sink.profile or "any",
                 retire=self.settings.sink.retire)

    async def act(self, inputs: list[InputRecord]) -> None:
        result = await self.writer.write(inputs)
        futures = [await self.producer.send(self.settings.sink.dead_letter_topic, d.value, key=d.key,
                                            headers=d.headers()) for d in result.dead_letters or ()]
        await asyncio.gather(*futures)  # acks=all: the dead letters are on the broker before any offset moves
        for dead in result.dead_letters or ():
            self.sink_metrics.rejected.labels(dead.reason).inc()

    async def probe_downstream(self) -> tuple[bool, str]:
        """The server answers its CapabilityStatement: an idle sink whose server is down or refuses our credentials
        is not ready either."""
        response = await self.client.http.get("metadata")
        ok = response.status_code < 500 and response.status_code not in (401, 403)
        return ok, "ready" if ok else f"FHIR server answered HTTP {response.status_code}"

    def probe_failed(self, exc: BaseException) -> str:
        return f"FHIR server unreachable ({type(exc).__name__})"

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            await self.client.aclose()
