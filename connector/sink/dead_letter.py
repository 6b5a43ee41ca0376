"""Dead letters of the sink: output records the FHIR server refused, or that are not applicable bundles.

The value is the record's Bundle byte for byte and the key and headers are the record's own, so a dead letter can
be put back on the output topic unchanged once the cause is fixed. Added headers: `dlq-reason` (an HTTP status
such as `http-422`, or a sink reason), `dlq-detail` (PHI-free: codes and FHIRPath locations only), the source
coordinates, and `fhir-operation-outcome` (the server's whole OperationOutcome, which may quote values: the
dead-letter topic holds PHI, like the output topic).
"""

from __future__ import annotations

from dataclasses import dataclass

from connector.stream.dlq import SourceCoords

# Reasons minted by the sink (besides http-<status>).
INVALID_BUNDLE = "invalid-bundle"
NO_REPORT_VERSION = "no-report-version"
PROFILE_MISMATCH = "profile-mismatch"
UNRESOLVED_REFERENCE = "unresolved-reference"

_MAX_DETAIL = 512
_MAX_OUTCOME = 64 * 1024
_OWN = ("dlq-reason", "dlq-detail", "fhir-operation-outcome", "source-topic", "source-partition", "source-offset",
        "source-timestamp")


@dataclass(frozen=True)
class SinkDeadLetter:
    reason: str
    detail: str
    key: bytes | None
    value: bytes
    headers_in: tuple[tuple[str, bytes], ...]
    source: SourceCoords
    outcome: bytes | None = None

    def headers(self) -> list[tuple[str, bytes]]:
        kept = [(k, v or b"") for k, v in self.headers_in if k not in _OWN]
        out = [*kept, ("dlq-reason", self.reason.encode()),
               ("dlq-detail", self.detail[:_MAX_DETAIL].encode("utf-8", "replace")), *self.source.headers()]
        if self.outcome:
            out.append(("fhir-operation-outcome", self.outcome[:_MAX_OUTCOME]))
        return out
