"""The Kafka record for a received message: key and headers, shared by the gateway and `radlabel publish`.

The key is the connector's own output key (``Report.accession_key``, facility|accession, read by the same parser
with the same rules: connector.hl7.parse.accession_key, which skips building the reports), so every version of a
report lands in one input partition and is processed in order. A message without a readable order number (not
HL7, no OBR, ...) is keyed by its MSH-10; with several reports, by the first report.
"""

from __future__ import annotations

from datetime import datetime, timezone

from connector.hl7.ack import Msh, UtcSecond, read_msh
from connector.hl7.parse import accession_key
from connector.stream.dlq import CONTENT_TYPE_HL7


def message_key(message: bytes, msh: Msh | None) -> bytes | None:
    key = accession_key(message)
    if key is not None:
        return key.encode()
    if msh is not None and msh.control_id:
        return msh.control_id
    return None


_iso_second = UtcSecond("%Y-%m-%dT%H:%M:%S")


def received_stamp(when: datetime | float) -> bytes:
    """ISO 8601 UTC with milliseconds, as ``datetime.isoformat(timespec="milliseconds")`` writes it; from epoch
    seconds, the date and time part is formatted once per second (the gateway stamps every message: formatting a
    datetime each time was a few per cent of its CPU)."""
    if isinstance(when, datetime):
        return when.astimezone(timezone.utc).isoformat(timespec="milliseconds").encode()
    second = int(when)
    micros = round((when - second) * 1e6)  # as datetime.fromtimestamp rounds, then isoformat truncates
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    return _iso_second(second) + b".%03d+00:00" % (micros // 1000)


def record_headers(msh: Msh | None, received_at: datetime | float, peer: str | None) -> list[tuple[str, bytes]]:
    """``received_at``: a datetime, or epoch seconds."""
    headers = [("content-type", CONTENT_TYPE_HL7), ("received-at", received_stamp(received_at))]
    if msh is not None and msh.control_id:
        headers.append(("hl7-message-control-id", msh.control_id))
    if peer is not None:
        headers.append(("mllp-peer", peer.encode()))
    return headers


def build_record(message: bytes, peer: str | None, msh: Msh | None = None,
                 received_at: datetime | float | None = None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    msh = msh if msh is not None else read_msh(message)
    return message_key(message, msh), record_headers(msh, received_at or datetime.now(timezone.utc), peer)
