"""The Kafka record for a received message: key and headers, shared by the gateway and `radlabel publish`.

The key is the connector's own output key (``Report.accession_key``, facility|accession, read by the same parser
with the same rules: connector.hl7.parse.accession_key, which skips building the reports), so every version of a
report lands in one input partition and is processed in order. A message without a readable order number (not
HL7, no OBR, ...) is keyed by its MSH-10; with several reports, by the first report.
"""

from __future__ import annotations

from datetime import datetime, timezone

from connector.hl7.ack import Msh, read_msh
from connector.hl7.parse import accession_key
from connector.stream.dlq import CONTENT_TYPE_HL7


def message_key(message: bytes, msh: Msh | None) -> bytes | None:
    key = accession_key(message)
    if key is not None:
        return key.encode()
    if msh is not None and msh.control_id:
        return msh.control_id
    return None


def record_headers(msh: Msh | None, received_at: datetime, peer: str | None) -> list[tuple[str, bytes]]:
    headers = [("content-type", CONTENT_TYPE_HL7),
               ("received-at", received_at.astimezone(timezone.utc).isoformat(timespec="milliseconds").encode())]
    if msh is not None and msh.control_id:
        headers.append(("hl7-message-control-id", msh.control_id))
    if peer is not None:
        headers.append(("mllp-peer", peer.encode()))
    return headers


def build_record(message: bytes, peer: str | None, msh: Msh | None = None,
                 received_at: datetime | None = None) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    msh = msh if msh is not None else read_msh(message)
    return message_key(message, msh), record_headers(msh, received_at or datetime.now(timezone.utc), peer)
