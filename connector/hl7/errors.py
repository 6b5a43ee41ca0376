"""The one typed rejection for input we cannot turn into a report."""

from __future__ import annotations

from typing import Literal

# Short, stable codes: they go into dead-letter files, Kafka headers and metrics labels.
RejectReason = Literal[
    "empty",  # nothing but whitespace / framing bytes
    "oversize",  # larger than hl7.max_message_bytes: refused before parsing (bounded memory per message)
    "not-hl7",  # does not start with an MSH segment
    "not-oru",  # well-formed HL7, but not ORU^R01
    "unsupported-version",  # MSH-12 outside 2.3 .. 2.8.x
    "encoding",  # bytes cannot be decoded under the declared character set
    "truncated",  # MLLP frame without end block, or an ORU that stops before its order/result segments
    "malformed",  # an ORU whose structure the parser cannot read
    "no-accession",  # an OBR with neither filler (OBR-3) nor placer (OBR-2) number
    "no-report-text",  # an ORU with no text result (TX/FT/ST/CE/CWE OBX)
]

REJECT_REASONS: tuple[str, ...] = RejectReason.__args__  # type: ignore[attr-defined]


class MessageRejected(Exception):
    """A message that cannot be converted. ``detail`` is PHI-free (it never quotes message content), so it can be
    logged and stored beside the raw bytes in a dead-letter record."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail
