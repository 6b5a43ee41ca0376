"""Label every report of a poll batch together: chunks of ``max_batch`` reports, at most ``max_concurrency``
chunks in flight, transient failures retried with exponential backoff.

When retries are exhausted the chunk either raises :class:`LabelerUnavailable` (the connector then pauses its
partitions and stops committing: backpressure) or, only when explicitly configured, is labeled by the rule
labeler with ``LabelSet.fallback = True`` so the FHIR output and metrics say so. Labels are only ever ones a
labeler returned; nothing is guessed or defaulted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from mappings.labels import Labeler, LabelerError, LabelerUnavailable, LabelSet, PerReportLabeler

from connector.logging import get_logger
from connector.stream.metrics import Metrics

log = get_logger(__name__)


class BatchLabeler(PerReportLabeler):
    """A Labeler decorator: the connector hands it whole poll batches."""

    def __init__(self, labeler: Labeler, metrics: Metrics, *, max_batch: int = 16, max_concurrency: int = 4,
                 max_retries: int = 4, backoff_s: float = 0.2, backoff_max_s: float = 5.0,
                 fallback: Labeler | None = None) -> None:
        self.labeler = labeler
        self.fallback = fallback
        self.metrics = metrics
        self.max_batch = max(1, max_batch)
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.info = labeler.info
        self._slots = asyncio.Semaphore(max(1, max_concurrency))

    async def label_batch_detailed(self, texts: Sequence[str]) -> list[LabelSet | LabelerError]:
        chunks = [list(texts[i:i + self.max_batch]) for i in range(0, len(texts), self.max_batch)]
        results = await asyncio.gather(*(self._chunk(chunk) for chunk in chunks))
        return [item for chunk_result in results for item in chunk_result]

    async def _chunk(self, texts: list[str]) -> list[LabelSet | LabelerError]:
        async with self._slots:
            for attempt in range(self.max_retries + 1):
                started = time.perf_counter()
                try:
                    out = await self.labeler.label_batch_detailed(texts)
                except LabelerUnavailable as exc:
                    self.metrics.labeler_unavailable.inc()
                    log.warning("labeler_unavailable", attempt=attempt + 1, reports=len(texts),
                                error=type(exc).__name__)
                    if attempt < self.max_retries:
                        await asyncio.sleep(min(self.backoff_max_s, self.backoff_s * 2**attempt))
                    continue
                self.metrics.labeler_latency.observe(time.perf_counter() - started)
                if len(out) != len(texts):
                    # A backend bug, not a transient failure: crash rather than mis-attribute labels.
                    raise RuntimeError(f"labeler returned {len(out)} results for {len(texts)} reports")
                return list(out)
        if self.fallback is None:
            raise LabelerUnavailable(f"labeler unavailable after {self.max_retries + 1} attempts")
        labeled = await self.fallback.label_batch(texts)
        self.metrics.fallback.inc(len(texts))
        log.warning("labeler_fallback", reports=len(texts), fallback=self.fallback.info.name)
        return [label_set.model_copy(update={"fallback": True}) for label_set in labeled]
