"""Prometheus metrics of `radlabel sink`, registered next to the shared loop's (consumed, commits, paused, lag).
Labels carry outcome and cause codes and HTTP statuses only, never identifiers (PHI policy, connector/logging.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# One FHIR transaction: milliseconds on a local engine, seconds on a loaded hospital server.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class SinkMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        # Per report version, whether it went alone or in a merged transaction (connector.sink.merge).
        self.sent = Counter("radlabel_sink_transactions", "Records (report versions) the FHIR server accepted",
                            registry=r)
        self.merged = Counter("radlabel_sink_merged_transactions", "Accepted transactions that carried several "
                              "reports' first versions", registry=r)
        self.retried = Counter("radlabel_sink_retries", "FHIR requests retried, by cause (HTTP status, timeout, "
                               "connection, token, conflict, merge-refused)", ["cause"], registry=r)
        self.rejected = Counter("radlabel_sink_rejected", "Records dead-lettered, by reason (HTTP status or sink "
                                "reason)", ["reason"], registry=r)
        self.stale = Counter("radlabel_sink_stale", "Records skipped because the server holds a newer version",
                             registry=r)
        self.duplicates = Counter("radlabel_sink_duplicates", "Records skipped because the server already holds "
                                  "exactly this record (replays)", registry=r)
        self.retired = Counter("radlabel_sink_retired_observations", "Label Observations withdrawn because a newer "
                               "version no longer asserts them", registry=r)
        self.request_seconds = Histogram("radlabel_sink_transaction_seconds", "One transaction POST, retries "
                                         "included", buckets=_BUCKETS, registry=r)
        self.end_to_end = Histogram("radlabel_sink_end_to_end_seconds", "Output record timestamp to the server's "
                                    "acceptance", buckets=_BUCKETS, registry=r)
