"""Prometheus metrics for the connector. Labels carry reason codes, labeler names and Kafka coordinates only:
never report text or identifiers (PHI policy, connector/logging.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 1 ms to 2 min: rule labeling is milliseconds, a model server backlog is minutes.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """One registry per connector instance, so tests can run several instances in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("radlabel_records_consumed", "Input records consumed", registry=r)
        self.labeled = Counter("radlabel_reports_labeled", "Reports labeled and published", ["labeler", "fallback"],
                               registry=r)
        self.published = Counter("radlabel_bundles_published", "FHIR Bundles acknowledged by the broker", registry=r)
        self.dead_lettered = Counter("radlabel_dead_lettered", "Input records sent to the dead-letter topic",
                                     ["reason"], registry=r)
        self.skipped = Counter("radlabel_skipped", "Reports (or whole records) that publish nothing, by reason: out of study scope "
                               "(excluded:*), text that asserts nothing (non-diagnostic:*), non-ORU by configuration", ["reason"],
                               registry=r)
        # An assigning authority no fhir.*_identifier_systems rule names: the identifier got the fallback system
        # (docs/HL7_FHIR.md "Identifier systems"); the site should map it. kind: patient | accession.
        self.identifier_fallback = Counter("radlabel_identifier_fallback", "Published reports whose patient or "
                                           "accession identifier got the fallback system (unmapped assigning "
                                           "authority)", ["kind"], registry=r)
        self.fallback = Counter("radlabel_fallback_used", "Reports labeled by the rule fallback", registry=r)
        self.labeler_unavailable = Counter("radlabel_labeler_unavailable",
                                           "Labeler calls that failed transiently (before retry)", registry=r)
        self.commits = Counter("radlabel_offset_commits", "Offset commits after acknowledged output", registry=r)
        # One per assignment received from the group coordinator: a rise without a deploy or crash means spurious
        # rebalances (a session timeout too short for the pauses this process sees; docs/STREAMING.md).
        self.rebalances = Counter("radlabel_rebalances", "Partition assignments received from the consumer group",
                                  registry=r)
        self.paused = Gauge("radlabel_paused", "1 while partitions are paused because what the program writes to (labeler, FHIR server) is down",
                            registry=r)
        self.lag = Gauge("radlabel_consumer_lag", "High watermark minus committed offset",
                         ["topic", "partition"], registry=r)
        self.end_to_end = Histogram("radlabel_end_to_end_seconds",
                                    "Input record timestamp to output acknowledged", buckets=_LATENCY_BUCKETS,
                                    registry=r)
        self.labeler_latency = Histogram("radlabel_labeler_seconds", "One label_batch call",
                                         buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("radlabel_batch_records", "Records per poll batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)
