"""HL7 v2 acknowledgments (ACK) for messages received over MLLP, and the small MSH reader they need.

The reader works on bytes and never raises: the ACK must be built for anything a sender pushes, garbage included,
and it must echo the sender's fields (MSH-3..6, MSH-10, MSH-18) byte for byte, before the character set is known.
It is not the report parser (connector.hl7.parse): that one decides what a report is; this one only reads the
header fields an acknowledgment quotes.

Acknowledgment rules (HL7 v2.x chapter 2, "acknowledgment modes"):
- original mode (MSH-15 and MSH-16 empty): MSA-1 AA / AE / AR, always sent;
- enhanced mode (MSH-15 or MSH-16 set): an accept acknowledgment CA / CE / CR, sent according to MSH-15
  (AL always, NE never, ER only on error or reject, SU only on success; empty means AL). The gateway is the
  receiving system's safe store (Kafka), so the accept ACK is the one it owes; it sends no application ACK.
- the ACK's MSH swaps sender and receiver, carries MSH-9 ``ACK^<trigger>^ACK`` (``ACK^<trigger>`` for v2.3,
  whose MSG type has no structure component), its own MSH-10, the original's processing id, version, encoding
  characters and character set; MSA-2 is the original MSH-10.
- AE / AR (CE / CR) carry an ERR segment with an HL7 table 0357 code: ERR-1 (ELD) for versions before 2.5,
  ERR-2 location + ERR-3 code + ERR-4 severity (+ ERR-8 user message) from 2.5 on.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
BOM = b"\xef\xbb\xbf"
DEFAULT_ENCODING = b"^~\\&"
DEFAULT_VERSION = b"2.5.1"

AckCode = Literal["AA", "AE", "AR"]
ENHANCED: dict[str, str] = {"AA": "CA", "AE": "CE", "AR": "CR"}

# HL7 table 0357 (message error condition codes) used by the gateway.
SEGMENT_SEQUENCE_ERROR = 100  # not HL7: the first segment is not MSH / unreadable frame
REQUIRED_FIELD_MISSING = 101  # e.g. MSH-10
DATA_TYPE_ERROR = 102  # e.g. MSH-2 encoding characters unusable
UNSUPPORTED_MESSAGE_TYPE = 200
UNSUPPORTED_EVENT_CODE = 201
UNSUPPORTED_VERSION_ID = 203
APPLICATION_INTERNAL_ERROR = 207  # broker unavailable, message over the size limit

ERROR_TEXT: dict[int, str] = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}

_SEGMENT_END = re.compile(rb"[\r\n]")
# Bytes that cannot be MSH-2 encoding characters: what chr(b).isalnum() accepts (Latin-1 letters and digits
# included), space, CR, LF. A table, so the check is one C call per message.
_UNUSABLE_ENCODING = bytes(b for b in range(256) if chr(b).isalnum() or b in b" \r\n")
_VERSION_NUMBER = re.compile(rb"^(\d+)\.(\d+)")


@dataclass(frozen=True)
class Msh:
    """The MSH segment of a message as raw bytes. ``field(n)`` is MSH-n (MSH-1 the field separator, MSH-2 the
    encoding characters), b"" when absent."""

    separator: bytes  # MSH-1, one byte
    encoding: bytes  # MSH-2 as sent (validated: 4 or 5 distinct non-alphanumeric bytes)
    fields: tuple[bytes, ...]  # index 0 = "MSH", index k = MSH-(k+1) for k >= 2

    def field(self, n: int) -> bytes:
        if n == 1:
            return self.separator
        if n == 2:
            return self.encoding
        return self.fields[n - 1] if 0 < n - 1 < len(self.fields) else b""

    def component(self, n: int, c: int) -> bytes:
        parts = self.field(n).split(self.encoding[1:2])[0].split(self.encoding[0:1])  # first repetition
        return parts[c - 1] if c - 1 < len(parts) else b""

    @property
    def control_id(self) -> bytes:
        return self.field(10).strip()

    @property
    def version(self) -> bytes:
        return self.component(12, 1).strip()

    @property
    def message_type(self) -> tuple[str, str]:
        """(MSH-9.1, MSH-9.2) upper-cased, ASCII-decoded with replacement (they are codes)."""
        return (self.component(9, 1).strip().decode("ascii", "replace").upper(),
                self.component(9, 2).strip().decode("ascii", "replace").upper())


class BadHeader(Exception):
    """Internal: what is wrong with the header (``code``: table 0357, ``detail``: PHI-free)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def message_body(frame: bytes) -> bytes:
    """The HL7 text of a frame or file chunk: MLLP bytes, a BOM and surrounding whitespace removed."""
    body = frame.strip(b" \t\r\n")
    if body.startswith(START_BLOCK):
        body = body[1:]
        end = body.rfind(END_BLOCK)
        if end >= 0:
            body = body[:end]
    if body.startswith(BOM):
        body = body[len(BOM):]
    return body.lstrip(b" \t\r\n")


def read_header(frame: bytes) -> Msh:
    """The MSH segment, or :class:`BadHeader` (code 100: not HL7; 102: unusable encoding characters)."""
    body = message_body(frame)
    if not body.startswith(b"MSH") or len(body) < 8:
        raise BadHeader(SEGMENT_SEQUENCE_ERROR, "first segment is not MSH")
    separator = body[3:4]
    if separator.isalnum() or separator in b" \r\n":
        raise BadHeader(SEGMENT_SEQUENCE_ERROR, "MSH-1 field separator is unusable")
    match = _SEGMENT_END.search(body)
    segment = body[: match.start()] if match else body
    fields = tuple(segment.split(separator))
    encoding = fields[1] if len(fields) > 1 else b""
    if not 4 <= len(encoding) <= 5 or len(set(encoding)) != len(encoding) or separator in encoding \
            or encoding.translate(None, _UNUSABLE_ENCODING) != encoding:
        raise BadHeader(DATA_TYPE_ERROR, "MSH-2 encoding characters are unusable")
    return Msh(separator, encoding, fields)


def read_msh(frame: bytes) -> Msh | None:
    """Like :func:`read_header`, None instead of an error. Never raises."""
    try:
        return read_header(frame)
    except BadHeader:
        return None
    except Exception:  # noqa: BLE001 - a header reader for ACKs must survive any bytes
        return None


@dataclass(frozen=True)
class AckError:
    """Why a message is not accepted: table 0357 code, location (segment, field), PHI-free text."""

    code: int
    detail: str
    segment: str = "MSH"
    field: int | None = None


def ack_mode(msh: Msh | None) -> Literal["original", "enhanced"]:
    if msh is not None and (msh.field(15).strip() or msh.field(16).strip()):
        return "enhanced"
    return "original"


def ack_code(msh: Msh | None, code: AckCode) -> str:
    """MSA-1 for the sender's mode: AA/AE/AR, or CA/CE/CR in enhanced mode."""
    return ENHANCED[code] if ack_mode(msh) == "enhanced" else code


def ack_wanted(msh: Msh | None, code: AckCode) -> bool:
    """Whether the sender asked for this acknowledgment (MSH-15 in enhanced mode; original mode: always)."""
    if ack_mode(msh) == "original":
        return True
    condition = msh.field(15).strip().upper() if msh is not None else b""
    if condition == b"NE":
        return False
    if condition == b"ER":
        return code != "AA"
    if condition == b"SU":
        return code == "AA"
    return True  # AL, empty or unknown: always


def _old_err_format(version: bytes) -> bool:
    """Versions before 2.5 carry the error in ERR-1 (ELD); from 2.5 on in ERR-2/3/4."""
    match = _VERSION_NUMBER.match(version)
    if not match:
        return False
    return (int(match.group(1)), int(match.group(2))) < (2, 5)


def _clean(text: str, forbidden: bytes) -> bytes:
    """Our own PHI-free text, with any delimiter byte replaced so it cannot break the segment."""
    data = text.encode("ascii", "replace")
    return bytes(b if b not in forbidden else 0x20 for b in data)


class UtcSecond:
    """An epoch second in UTC, formatted by ``time.strftime`` and kept until the second changes: a per-message
    stamp (the ACK's MSH-7, the gateway's received-at header) formats the date and time once per second, not per
    message. A plain cache of the last value: cheaper per call than functools.lru_cache."""

    __slots__ = ("fmt", "second", "text")

    def __init__(self, fmt: str) -> None:
        self.fmt, self.second, self.text = fmt, -1, b""

    def __call__(self, second: int) -> bytes:
        if second != self.second:
            self.second, self.text = second, time.strftime(self.fmt, time.gmtime(second)).encode()
        return self.text


_hl7_second = UtcSecond("%Y%m%d%H%M%S")


def _stamp_now() -> bytes:
    """The current UTC time as a DTM to 1/10,000 s, as ``strftime`` wrote it (an ACK per message made the
    datetime formatting a visible share of the gateway's CPU)."""
    now = time.time()
    second = int(now)
    return _hl7_second(second) + b".%04d+0000" % int((now - second) * 10_000)


_ID_PREFIX = os.urandom(5).hex().upper()  # per process: 40 random bits
_id_counter = itertools.count(1)


def new_control_id() -> str:
    """The ACK's own MSH-10: unique, 20 characters (the ST length of MSH-10 up to v2.6). A random prefix per
    process and a counter: unique within a process by construction and across processes by the prefix, without a
    system call per ACK (os.urandom per ACK was 2 % of the gateway's CPU)."""
    return f"{_ID_PREFIX}{next(_id_counter) % 10**10:010d}"


def build_ack(msh: Msh | None, code: AckCode, error: AckError | None = None, *, control_id: str | None = None,
              now: datetime | None = None) -> bytes:
    """The acknowledgment for a message (``msh`` None when its header could not be read), segments ended by CR.
    ``code`` is the original-mode code; it becomes CA/CE/CR when the sender uses enhanced mode."""
    sep = msh.separator if msh else b"|"
    enc = msh.encoding if msh else DEFAULT_ENCODING
    comp, sub = enc[0:1], enc[3:4] or b"&"
    version = (msh.field(12) if msh else b"") or DEFAULT_VERSION
    version_number = msh.version if msh else DEFAULT_VERSION
    trigger = msh.component(9, 2).strip() if msh else b""
    if trigger:
        structure = b"" if version_number == b"2.3" else comp + b"ACK"
        message_type = b"ACK" + comp + trigger + structure
    else:
        message_type = b"ACK"
    stamp = _stamp_now() if now is None else now.strftime("%Y%m%d%H%M%S.%f")[:-2].encode() + b"+0000"
    get = (lambda n: msh.field(n)) if msh else (lambda n: b"")
    header = [b"MSH", enc, get(5), get(6), get(3), get(4), stamp, b"", message_type,
              (control_id or new_control_id()).encode(), get(11) or b"P", version]
    charset = get(18)
    if charset:
        header += [b"", b"", b"", b"", b"", charset]  # MSH-13..17 empty, MSH-18 echoed
    segments = [sep.join([header[0], *header[1:]])]
    forbidden = sep + enc + b"\r\n"
    msa = [b"MSA", ack_code(msh, code).encode(), msh.control_id if msh else b""]
    if error is not None and _old_err_format(version_number):
        msa.append(_clean(error.detail, forbidden))  # MSA-3 text message (before v2.5)
    segments.append(sep.join(msa))
    if error is not None:
        location = [error.segment.encode(), b"1"] + ([str(error.field).encode()] if error.field else [])
        label = _clean(ERROR_TEXT.get(error.code, "Error"), forbidden)
        coded = [str(error.code).encode(), label, b"HL70357"]
        if _old_err_format(version_number):
            # ERR-1 (ELD): segment ^ sequence ^ field position ^ code (CE, as subcomponents)
            eld = comp.join([location[0], location[1], location[2] if len(location) > 2 else b"", sub.join(coded)])
            segments.append(sep.join([b"ERR", eld]))
        else:
            severity = b"E"
            segments.append(sep.join([b"ERR", b"", comp.join(location), comp.join(coded), severity,
                                      b"", b"", b"", _clean(error.detail, forbidden)]))
    return b"\r".join(segments) + b"\r"
