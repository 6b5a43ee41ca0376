"""Prometheus metrics for the MLLP gateway, in the connector's style (connector/stream/metrics.py): labels carry
outcome and ACK codes only, never peers' message content or identifiers."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# ACK latency (frame received -> ACK written): a broker write on loopback is ~1 ms, a broker outage is seconds.
_ACK_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class MllpMetrics:
    """One registry per gateway instance, so tests can run several in one process."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("radlabel_mllp_messages", "Messages received, by outcome "
                                "(stored, dropped, rejected, not-stored)", ["outcome"], registry=r)
        self.acks = Counter("radlabel_mllp_acks", "Acknowledgments sent, by MSA-1 code", ["code"], registry=r)
        self.ack_latency = Histogram("radlabel_mllp_ack_seconds", "Frame received to ACK written",
                                     buckets=_ACK_BUCKETS, registry=r)
        self.connections_open = Gauge("radlabel_mllp_connections_open", "Open MLLP connections", registry=r)
        self.connections = Counter("radlabel_mllp_connections", "Connections, by result (accepted, refused)",
                                   ["result"], registry=r)
        self.framing_errors = Counter("radlabel_mllp_framing_errors", "Framing faults, by kind (garbage, "
                                      "unterminated, oversize, idle-timeout)", ["kind"], registry=r)
        self.bytes = Counter("radlabel_mllp_received_bytes", "Message bytes received in frames", registry=r)
        self.broker_unavailable = Gauge("radlabel_mllp_broker_unavailable",
                                        "1 while the last write to the broker failed or timed out", registry=r)
        # Labelled children, looked up once: ``labels()`` takes a lock and builds a key on every call, and these
        # two are counted for every message.
        self._messages: dict[str, Counter] = {}
        self._acks: dict[str, Counter] = {}

    def count_message(self, outcome: str) -> None:
        _child(self._messages, self.messages, outcome).inc()

    def count_ack(self, code: str) -> None:
        _child(self._acks, self.acks, code).inc()


def _child(cache: dict[str, Counter], family: Counter, label: str) -> Counter:
    child = cache.get(label)
    if child is None:
        child = cache[label] = family.labels(label)
    return child
