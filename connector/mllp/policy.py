"""What the gateway does with one received message: a pure decision from its header and the settings.

Checks, in order (the first that fails answers AR with the table 0357 code):
not HL7 (100) / unusable encoding characters (102) -> unsupported MSH-12 version (203) -> no MSH-10 (101) ->
not ORU^R01 (settings.non_oru: ack and drop, forward like an ORU, or AR 200/201). Everything else is written to the
input topic and answered AA once the broker holds it. Content problems inside an ORU (no accession, no report
text, bad character set) are the connector's job: it dead-letters them with their bytes, so they are forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from connector.hl7 import ack
from connector.hl7.parse import SUPPORTED_VERSIONS

Action = Literal["store", "ack", "reject"]


@dataclass(frozen=True)
class Decision:
    action: Action  # store: write then AA; ack: AA without writing; reject: AR with error
    msh: ack.Msh | None
    error: ack.AckError | None = None
    reason: str = "oru"  # PHI-free outcome detail for logs and metrics


def decide(frame: bytes, non_oru: Literal["ack", "forward", "reject"]) -> Decision:
    try:
        msh = ack.read_header(frame)
    except ack.BadHeader as bad:
        field = 2 if bad.code == ack.DATA_TYPE_ERROR else None
        return Decision("reject", None, ack.AckError(bad.code, bad.detail, "MSH", field), "not-hl7")
    version = msh.version.decode("ascii", "replace")
    if not version or not SUPPORTED_VERSIONS.match(version):
        return Decision("reject", msh, ack.AckError(ack.UNSUPPORTED_VERSION_ID,
                                                    "HL7 version is not 2.3-2.8", "MSH", 12), "unsupported-version")
    if not msh.control_id:
        return Decision("reject", msh, ack.AckError(ack.REQUIRED_FIELD_MISSING, "MSH-10 message control id is empty",
                                                    "MSH", 10), "no-control-id")
    message_type, trigger = msh.message_type
    if (message_type, trigger) != ("ORU", "R01"):
        if non_oru == "ack":
            return Decision("ack", msh, reason="not-oru")
        if non_oru == "reject":
            code = ack.UNSUPPORTED_EVENT_CODE if message_type == "ORU" else ack.UNSUPPORTED_MESSAGE_TYPE
            return Decision("reject", msh, ack.AckError(code, "only ORU R01 messages are accepted", "MSH", 9), "not-oru")
        return Decision("store", msh, reason="not-oru")
    return Decision("store", msh)
