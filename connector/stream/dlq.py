"""Dead letters: input records that cannot become a labeled report.

The record value is the raw input, byte for byte, and the key is the input key, so a dead letter can be
replayed onto the input topic unchanged once the cause is fixed. Why and where it came from travel in headers.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTENT_TYPE_HL7 = b"application/hl7-v2"

# Reason codes minted by the connector itself (the HL7 parser's MessageRejected.reason codes pass through as-is).
OVERSIZE = "oversize"
EMPTY = "empty"
LABEL_INVALID = "label-invalid"
REPORT_TOO_LONG = "report-too-long"
LABEL_FAILED = "label-failed"
CONVERSION_ERROR = "conversion-error"

# Header detail is bounded: it explains the cause, it does not carry the message.
_MAX_DETAIL = 512


@dataclass(frozen=True)
class SourceCoords:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        out = [
            ("source-topic", self.topic.encode()),
            ("source-partition", str(self.partition).encode()),
            ("source-offset", str(self.offset).encode()),
        ]
        if self.timestamp_ms is not None:
            out.append(("source-timestamp", str(self.timestamp_ms).encode()))
        return out


@dataclass(frozen=True)
class DeadLetter:
    reason: str
    detail: str
    key: bytes | None
    value: bytes
    source: SourceCoords

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("dlq-reason", self.reason.encode()),
            ("dlq-detail", self.detail[:_MAX_DETAIL].encode("utf-8", "replace")),
            *self.source.headers(),
            ("content-type", CONTENT_TYPE_HL7),
        ]
