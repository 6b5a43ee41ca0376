"""HL7 v2 ORU^R01 message bytes -> :class:`Report` (one per OBR).

Parser choice (docs/HL7_FHIR.md): python-hl7 does the ER7 work (separators from MSH-1/2, escape sequences; the
segment / field / repetition / component split is python-hl7's, done on the text by connector/hl7/er7.py without
building its container tree). hl7apy, the parser the design names, measured ~60 messages/s
here against ~1,100/s for python-hl7, rejects bytes, a BOM and LF terminators, and its strict mode rejects long
TX values; the end-to-end target (>= 1,000 messages/s) rules it out of the hot path. What python-hl7 lacks
(MLLP framing, character-set handling, version and type gating, OBR grouping) is here and in framing.py.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone, tzinfo

import hl7.containers
import hl7.util
from hl7.util import unescape as hl7_unescape

from connector.hl7 import er7
from connector.hl7.er7 import Message, Segment
from connector.hl7.errors import MessageRejected
from connector.hl7.escapes import check_escapes
from connector.hl7.framing import unframe
from connector.hl7.limits import DEFAULT_LIMITS, ParseLimits
from connector.hl7.models import SECTION_NAMES, Authority, Identifier, Patient, Report, ReportStatus

# python-hl7 logs the whole field value when it meets an unknown or broken escape sequence: that would put report
# text (PHI) into logs. The escape is dropped either way, so its log lines carry nothing we need. Its loggers are
# named by file path (logging.getLogger(__file__)), not by module.
for _module in (hl7.util, hl7.containers):
    logging.getLogger(_module.__file__).disabled = True

SUPPORTED_VERSIONS = re.compile(r"^2\.(3|3\.1|4|5|5\.1|6|7|7\.1|8|8\.1|8\.2)$")

# MSH-18 character sets (HL7 table 0211) we decode; anything else is an "encoding" rejection.
_CHARSETS: dict[str, str] = {
    "": "",  # undeclared: UTF-8, falling back to ISO-8859-1 (HL7's historical default in Europe/US feeds)
    "ASCII": "ascii",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "8859/1": "iso-8859-1",
    "8859/15": "iso-8859-15",
    "ISO IR100": "iso-8859-1",
    "ISO_IR 100": "iso-8859-1",
    "CP1252": "cp1252",
    "WINDOWS-1252": "cp1252",
}

# The fields this module reads, per segment, as positions in the segment text split on the field separator (for
# MSH that is MSH-n at n - 1: MSH-1 is the separator itself). Only these segments reach the ER7 split, and in them only
# these fields: the rest are blanked (kept as empty positions so numbering is unchanged), which spares splitting and
# escape-checking data never read (PID addresses, OBR providers, ...). Keep in step with the _get() calls; tests
# check the projected parse extracts exactly what a parse of the whole message does.
_READ_FIELDS: dict[str, tuple[int, ...]] = {
    "MSH": (1, 2, 3, 6, 8, 9, 11),  # encoding characters, MSH-3/4 sender, 7 time, 9 type, 10 control id, 12 version
    "PID": (3, 5, 7, 8),  # identifiers, name, birth date, sex
    # placer, filler, procedure, observation time, body part (15, some feeds), report time, service section, status
    "OBR": (2, 3, 4, 7, 15, 22, 24, 25),
    "OBX": (2, 3, 5, 11),  # value type, identifier, value, status
}
_READ_SEGMENTS = frozenset(_READ_FIELDS)
_TEXT_TYPES = frozenset({"TX", "FT", "ST"})
_HEADER_TYPES = frozenset({"CE", "CWE"})

# OBX-3 identifiers that name a report section: LOINC radiology report sections, and the "&IMP"/"&GDT" suffix
# convention of radiology information systems (e.g. the washu-tag scout feed).
_CODED_SECTIONS: dict[str, str | None] = {
    "18785-6": "indication",  # Radiology reason for study
    "55752-0": "indication",  # Clinical information
    "18834-2": "comparison",  # Radiology comparison study
    "18782-3": "findings",  # Radiology study observation (findings)
    "59776-5": "findings",  # Procedure findings
    "19005-8": "impression",  # Radiology impression
    "IMP": "impression",
    "FND": "findings",
    "GDT": None,  # general text: sections come from headings inside it
}

_HEADING = re.compile(
    r"^\s*(?P<name>indications?|clinical (?:history|indication|information)|history|reason for (?:exam(?:ination)?|study)"
    r"|comparisons?|findings?|impressions?|conclusions?)\s*(?::\s*(?P<rest>.*)|$)",
    re.IGNORECASE,
)
# Headings of parts that are none of the four sections: they end the current one. Sub-headings inside a section
# ("LUNGS:", "HEART:") do not.
_OTHER_HEADING = re.compile(
    r"^\s*(?:technique|examination|exam|procedure|study|addendum|recommendations?|notifications?"
    r"|critical results?|communication|signature|attestation)\s*(?::|$)",
    re.IGNORECASE,
)
# Sign-off lines end whatever section they follow (they are not part of the impression).
_SIGN_OFF = re.compile(
    r"^\s*(?:dictated|requested|transcribed|signed|electronically signed|verified|approved|attending|"
    r"this (?:document|report) (?:has been|was) (?:electronically )?signed)\b",
    re.IGNORECASE,
)
_HEADING_SECTION = {
    "indication": "indication",
    "indications": "indication",
    "clinical history": "indication",
    "clinical indication": "indication",
    "clinical information": "indication",
    "history": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "reason for study": "indication",
    "comparison": "comparison",
    "comparisons": "comparison",
    "finding": "findings",
    "findings": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
}

# OBR-25 (HL7 table 0123) and OBX-11 (table 0085) to the four report states. Some feeds send words.
_STATUS_WORDS: dict[str, ReportStatus] = {
    "P": "P",
    "PRELIM": "P",
    "PRELIMINARY": "P",
    "WET READ": "P",
    "R": "P",  # results stored, not yet verified
    "A": "P",  # some results available
    "S": "P",
    "I": "P",
    "O": "P",
    "F": "F",
    "FINAL": "F",
    "C": "C",
    "CORRECTED": "C",
    "CORRECTION": "C",
    "AMENDED": "C",
    "X": "X",
    "CANCELLED": "X",
    "CANCELED": "X",
    "D": "X",  # OBX-11: deleted
    "W": "X",  # OBX-11: posted to the wrong patient
}

_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?(?:\.(?P<f>\d{1,4}))?"
    r"(?P<tz>[+-]\d{4})?$"
)


def parse_reports(
    raw: bytes, *, default_tz: tzinfo = timezone.utc, limits: ParseLimits = DEFAULT_LIMITS
) -> list[Report]:
    """Parse one message (as split by :func:`connector.hl7.framing.split_messages`) into its reports.

    ``default_tz`` applies to HL7 timestamps without an offset (most feeds send local time without one);
    configure it to the sender's zone (setting ``hl7.sender_timezone``) rather than trusting a hidden default.
    ``limits`` bounds what one message may cost (size, escape expansion).
    Raises :class:`MessageRejected` for anything that is not a convertible ORU^R01, and for any failure of the
    parser on any field: input never raises anything else.
    """
    if len(raw) > limits.max_message_bytes:
        raise MessageRejected(
            "oversize", f"message is {len(raw)} bytes (limit {limits.max_message_bytes}: setting hl7.max_message_bytes)"
        )
    unframed = unframe(raw)
    body = unframed.body
    if not body.strip(b"\x0b\x1c \t\r"):
        raise MessageRejected("empty", "message holds no HL7 content")
    if not body.startswith(b"MSH") or len(body) < 8:
        raise MessageRejected("not-hl7", "message does not start with an MSH segment")
    text = _project(_decode(body))
    try:
        message, msh = _hl7_parse(text)
    except Exception as exc:  # python-hl7 raises several types for broken headers
        raise MessageRejected("malformed", f"HL7 header cannot be parsed ({type(exc).__name__})") from None
    # Before any field is unescaped (MSH-9 and MSH-12 are read next): see connector/hl7/escapes.py.
    check_escapes(text, msh.esc, limits)
    try:
        return _message_reports(message, msh, unframed.truncated, default_tz)
    except MessageRejected:
        raise
    except Exception as exc:  # never crash on input: the message is dead-lettered with its bytes, not lost
        raise MessageRejected("malformed", f"ORU structure cannot be read ({type(exc).__name__})") from None


def _message_reports(message: Message, msh: Segment, truncated: bool, default_tz: tzinfo) -> list[Report]:
    message_type = _get(msh, 9, c=1).upper()
    trigger = _get(msh, 9, c=2).upper()
    version = _get(msh, 12).strip()
    if not version:
        raise MessageRejected("unsupported-version", "MSH-12 version is empty")
    if not SUPPORTED_VERSIONS.match(version):
        raise MessageRejected("unsupported-version", f"HL7 version {version[:10]!r} is not 2.3-2.8")
    if (message_type, trigger) != ("ORU", "R01"):
        raise MessageRejected("not-oru", f"message type {message_type[:3]}^{trigger[:3]} is not ORU^R01")
    if truncated:
        raise MessageRejected("truncated", "MLLP frame has no end block")

    control_id = _get(msh, 10)
    facility = _facility(msh)
    message_time = _timestamp(_get(msh, 7), default_tz)
    return _reports(message, control_id, version, (facility, _facility_hd(msh)), message_time, default_tz)


def _facility(msh: Segment) -> str:
    """The sending facility that qualifies accession numbers: MSH-4.1, else MSH-4.2, else MSH-3.1."""
    return _get(msh, 4, c=1) or _get(msh, 4, c=2) or _get(msh, 3, c=1)


def _order_numbers(obr: Segment) -> tuple[str | None, str | None, str | None]:
    """(placer OBR-2, filler OBR-3, accession): the accession is the filler number, else the placer number."""
    placer = _get(obr, 2, c=1) or None
    filler = _get(obr, 3, c=1) or None
    return placer, filler, filler or placer


def _hd(segment: Segment, field: int, first: int) -> Authority | None:
    """An HD held in components ``first``..``first + 2`` of a field (EI-2..4), or None when it is empty."""
    hd = Authority(namespace=_get(segment, field, c=first) or None, universal_id=_get(segment, field, c=first + 1)
                   or None, universal_id_type=_get(segment, field, c=first + 2).upper() or None)
    return hd if hd else None


def _facility_hd(msh: Segment) -> Authority | None:
    hd = Authority(namespace=_get(msh, 4, c=1) or None, universal_id=_get(msh, 4, c=2) or None,
                   universal_id_type=_get(msh, 4, c=3).upper() or None)
    return hd if hd else None


# accession_key reads only these: the facility and the first OBR's order numbers.
_KEY_FIELDS: dict[str, tuple[int, ...]] = {"MSH": _READ_FIELDS["MSH"], "OBR": (2, 3)}


def accession_key(raw: bytes, *, limits: ParseLimits = DEFAULT_LIMITS) -> str | None:
    """``Report.accession_key`` (facility|accession) of the message's first report, read with the same parser and
    the same rules (:func:`_facility`, :func:`_order_numbers`) without building the reports: the MLLP gateway keys
    every record by it, and a full parse would be most of its CPU. None when it cannot be read (no OBR, no order
    number, not HL7, over the limits): never raises."""
    try:
        if len(raw) > limits.max_message_bytes:
            return None
        # The envelope scan is 7 of this function's ~40 us per 2 KB message, and _project drops FHS/BHS/BTS/FTS
        # segments anyway; only a message that does not start with MSH needs it (an envelope in front).
        body = unframe(raw, drop_envelope=False).body
        if not body.startswith(b"MSH"):
            body = unframe(raw).body
        if not body.startswith(b"MSH") or len(body) < 8:
            return None
        text = _project(_decode(body), _KEY_FIELDS)
        message, msh = _hl7_parse(text)
        check_escapes(text, msh.esc, limits)
        obr = next((segment for segment in message if str(segment[0]).strip() == "OBR"), None)
        if obr is None:
            return None
        accession = _order_numbers(obr)[2]
        return f"{_facility(msh)}|{accession}" if accession else None
    except Exception:  # noqa: BLE001 - a key is a routing hint: no key is the answer for anything unreadable
        return None


def _project(text: str, read_fields: dict[str, tuple[int, ...]] = _READ_FIELDS) -> str:
    """The message reduced to the segments and fields in ``read_fields`` (_READ_FIELDS, see there)."""
    separator = text[3:4]
    if not separator or separator in "\r\n":
        return text  # no field separator: python-hl7 rejects it below
    kept = []
    for segment in text.split("\r"):
        fields = read_fields.get(segment[:3])
        if fields is None:
            continue
        values = segment.split(separator)
        projected = [""] * min(len(values), fields[-1] + 1)
        projected[0] = values[0]
        for index in fields:
            if index < len(projected):
                projected[index] = values[index]
        kept.append(separator.join(projected))
    return "\r".join(kept)


def _hl7_parse(text: str) -> tuple[Message, Segment]:
    """What hl7.parse(text) reads, split into segments and fields (connector/hl7/er7.py), and its MSH segment."""
    message = er7.split_message(text)
    return message, er7.header(message)


# C0 control characters other than CR/LF/TAB are not allowed in FHIR strings; some feeds carry stray ones.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# The same characters as bytes, for a C-speed test before the regex: every supported character set (_CHARSETS) is
# ASCII-compatible and single-byte or UTF-8, so a C0 control or DEL in the text comes from that very byte.
_CONTROL_BYTES = bytes(range(0x00, 0x09)) + b"\x0b\x0c" + bytes(range(0x0E, 0x20)) + b"\x7f"


def _decode(body: bytes) -> str:
    text = _decode_charset(body)
    if len(body.translate(None, _CONTROL_BYTES)) == len(body):
        return text  # no control byte: the regex search over the whole text (most of this function's time) is moot
    return _CONTROL.sub("", text)


def _decode_charset(body: bytes) -> str:
    charset = _declared_charset(body)
    if charset not in _CHARSETS:
        raise MessageRejected("encoding", f"unsupported MSH-18 character set {charset[:20]!r}")
    codec = _CHARSETS[charset]
    if not codec:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return body.decode("iso-8859-1")
    try:
        return body.decode(codec)
    except UnicodeDecodeError as exc:
        raise MessageRejected("encoding", f"bytes are not valid {codec} at offset {exc.start}") from None


def _declared_charset(body: bytes) -> str:
    """MSH-18 read at byte level: the character set must be known before the bytes can be decoded."""
    first = body.split(b"\r", 1)[0]
    sep = first[3:4]
    fields = first.split(sep) if sep else []
    # fields[0] is "MSH", fields[1] the encoding characters: MSH-n is fields[n - 1].
    if len(fields) < 18:
        return ""
    value = fields[17].split(b"~", 1)[0].split(b"^", 1)[0]
    return value.decode("ascii", "replace").strip().upper()


def _get(segment: Segment, field: int, r: int = 1, c: int = 1, s: int = 1) -> str:
    """Field value by position (unescaped, stripped); "" when absent. MSH-1/2 are the separators: never unescaped."""
    text = er7.component(segment, field, r, c, s)
    if segment.esc in text and not (field <= 2 and segment[0] == "MSH"):
        text = _unescape(segment, text)
    return text.strip()


def _unescape(container: Segment | Message, text: str) -> str:
    """python-hl7's unescape; a malformed sequence it chokes on (e.g. "\\.brX\\") leaves the text as sent rather
    than losing the report. Control characters a hex escape spells ("\\X00\\") are dropped, as _decode drops
    them from the bytes: FHIR strings cannot hold them."""
    try:
        text = hl7_unescape(container, text)
    except ValueError:
        return text
    return _CONTROL.sub("", text) if _CONTROL.search(text) else text


def _repetitions(segment: Segment, field: int) -> list[str]:
    return er7.repetitions(segment, field)


def _reports(
    message: Message,
    control_id: str,
    version: str,
    facility: tuple[str, Authority | None],
    message_time: datetime | None,
    default_tz: tzinfo,
) -> list[Report]:
    groups: list[tuple[Segment | None, Segment, list[Segment]]] = []
    pid: Segment | None = None
    for segment in message:
        name = str(segment[0]).strip()
        if name == "PID":
            pid = segment
        elif name == "OBR":
            groups.append((pid, segment, []))
        elif name == "OBX" and groups:
            groups[-1][2].append(segment)
    if not groups:
        raise MessageRejected("truncated", "ORU^R01 has no OBR segment")
    if all(p is None for p, _, _ in groups):
        raise MessageRejected("truncated", "ORU^R01 has no PID segment")

    reports = []
    for index, (pid_segment, obr, obxs) in enumerate(groups, start=1):
        if pid_segment is None:
            raise MessageRejected("malformed", f"OBR {index} comes before any PID segment")
        reports.append(
            _report(message, index, pid_segment, obr, obxs, control_id, version, facility, message_time, default_tz)
        )
    return reports


def _report(
    message: Message,
    index: int,
    pid: Segment,
    obr: Segment,
    obxs: list[Segment],
    control_id: str,
    version: str,
    facility: tuple[str, Authority | None],  # (Report.sending_facility, MSH-4 as an HD)
    message_time: datetime | None,
    default_tz: tzinfo,
) -> Report:
    placer, filler, accession = _order_numbers(obr)
    if not accession:
        raise MessageRejected("no-accession", f"OBR {index} has neither filler (OBR-3) nor placer (OBR-2) number")

    lines, coded, has_text = _text_lines(message, obxs)
    status = _status(obr, obxs)
    if not has_text and status != "X":
        # A cancellation may come without text; anything else without text is not a report. CE/CWE values alone
        # (coded lab results, e.g. an organism) are not report text: they only count as headers around text.
        raise MessageRejected("no-report-text", f"OBR {index} has no TX/FT/ST result text")
    if not has_text:
        lines, coded = [], []

    return Report(
        message_control_id=control_id,
        hl7_version=version,
        sending_facility=facility[0],
        facility_authority=facility[1],
        accession_authority=_hd(obr, 3 if filler else 2, 2),
        obr_index=index,
        accession=accession,
        placer=placer,
        filler=filler,
        procedure_code=_get(obr, 4, c=1) or None,
        procedure_display=_get(obr, 4, c=2) or None,
        procedure_system=_get(obr, 4, c=3) or None,
        procedure_alt_code=_get(obr, 4, c=4) or None,
        procedure_alt_display=_get(obr, 4, c=5) or None,
        procedure_alt_system=_get(obr, 4, c=6) or None,
        service_section=_get(obr, 24) or None,
        body_part=_get(obr, 15, c=1) or None,
        message_time=message_time,
        status=status,
        observation_time=_timestamp(_get(obr, 7), default_tz),
        report_time=_timestamp(_get(obr, 22), default_tz) or message_time,
        text="\n".join(lines).strip("\n"),
        sections=_sections(lines, coded),
        patient=_patient(pid),
    )


def _text_lines(message: Message, obxs: list[Segment]) -> tuple[list[str], list[str | None], bool]:
    """Report text lines and, per line, the section its OBX-3 names (if any).

    When an OBX-3 code opens a section whose text carries no heading, the heading is written into the text
    ("FINDINGS:"), so labelers that read headings see the same structure as in a dictated report."""
    lines: list[str] = []
    coded: list[str | None] = []
    previous: str | None = None
    has_text = False
    for obx in obxs:
        value_type = _get(obx, 2).upper()
        if value_type not in _TEXT_TYPES and value_type not in _HEADER_TYPES:
            continue
        section = _coded_section(obx)
        if value_type in _HEADER_TYPES:
            header = _get(obx, 5, c=2) or _get(obx, 5, c=1)
            if header:
                lines.append(header if header.endswith(":") else header + ":")
                coded.append(section)
                previous = section
            continue
        obx_lines: list[str] = []
        for rep in _repetitions(obx, 5) or [""]:
            # str() re-joins components: a "^" inside free text is text, not structure.
            text = _unescape(message, str(rep)).replace("\r\n", "\n").replace("\r", "\n")
            obx_lines.extend(line.rstrip() for line in text.split("\n"))
        has_text = has_text or any(line.strip() for line in obx_lines)
        if section is not None and section != previous and not _HEADING.match(obx_lines[0]):
            lines.append(section.upper() + ":")
            coded.append(section)
        lines.extend(obx_lines)
        coded.extend([section] * len(obx_lines))
        previous = section
    return lines, coded, has_text


def _coded_section(obx: Segment) -> str | None:
    identifier = _get(obx, 3, c=1)
    if identifier.startswith("&"):
        return _CODED_SECTIONS.get(identifier[1:].upper())
    return _CODED_SECTIONS.get(identifier)


def _sections(lines: list[str], coded: list[str | None]) -> dict[str, str]:
    """Split into indication/comparison/findings/impression by headings, else by OBX-3 section codes."""
    collected: dict[str, list[str]] = {}
    current: str | None = None
    previous_code: str | None = None
    for line, code in zip(lines, coded):
        match = _HEADING.match(line)
        if match:
            current = _HEADING_SECTION[re.sub(r"\s+", " ", match.group("name").lower())]
            rest = (match.group("rest") or "").strip()
            collected.setdefault(current, [])
            if rest:
                collected[current].append(rest)
        else:
            if code is not None and code != previous_code:
                current = code
            elif _SIGN_OFF.match(line) or _OTHER_HEADING.match(line):
                current = None  # a sign-off or another part's heading ("TECHNIQUE:") ends the section
                previous_code = code
                continue
            if current is not None:
                collected.setdefault(current, []).append(line)
        previous_code = code
    sections = {}
    for name in SECTION_NAMES:
        text = "\n".join(collected.get(name, [])).strip()
        if text:
            sections[name] = text
    return sections


def _status(obr: Segment, obxs: list[Segment]) -> ReportStatus:
    for value in [_get(obr, 25)] + [_get(obx, 11) for obx in obxs]:
        status = _STATUS_WORDS.get(value.upper())
        if status:
            return status
    return "P"  # no usable status anywhere: never claim a report is final without being told


def _patient(pid: Segment) -> Patient:
    identifiers = []
    for rep in range(1, len(_repetitions(pid, 3)) + 1):
        value = _get(pid, 3, r=rep, c=1)
        if not value:
            continue
        universal_id = _get(pid, 3, r=rep, c=4, s=2)
        universal_id_type = _get(pid, 3, r=rep, c=4, s=3).upper()
        oid = universal_id if universal_id_type == "ISO" else ""
        identifiers.append(
            Identifier(
                value=value,
                authority=_get(pid, 3, r=rep, c=4, s=1) or None,
                authority_oid=oid or None,
                type_code=_get(pid, 3, r=rep, c=5) or None,
                authority_universal_id=universal_id or None,
                authority_universal_id_type=universal_id_type or None,
            )
        )
    given = tuple(g for g in (_get(pid, 5, c=2), _get(pid, 5, c=3)) if g)
    birth = _timestamp(_get(pid, 7), timezone.utc)
    return Patient(
        identifiers=tuple(identifiers),
        family=_get(pid, 5, c=1) or None,
        given=given,
        birth_date=birth.date() if birth else None,
        sex=_get(pid, 8).upper()[:1] or None,
    )


def _timestamp(value: str, default_tz: tzinfo) -> datetime | None:
    """HL7 DTM/TS -> aware datetime; None when absent or unreadable (a bad timestamp is not worth a rejection)."""
    match = _DTM.match(value.strip())
    if not match:
        return None
    g = match.groupdict()
    try:
        tz = default_tz
        if g["tz"]:
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][3:5])
            # Real offsets run from -12:00 to +14:00; FHIR accepts up to 14:00 either way. Anything else is an
            # unreadable time like any other, not a time to pass on (it would fail FHIR validation downstream).
            if minutes > 59 or hours * 60 + minutes > 14 * 60:
                return None
            sign = 1 if g["tz"][0] == "+" else -1
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        fraction = int((g["f"] or "0").ljust(6, "0")[:6])
        return datetime(
            int(g["y"]),
            int(g["mo"] or 1),
            int(g["d"] or 1),
            int(g["h"] or 0),
            int(g["mi"] or 0),
            int(g["s"] or 0),
            fraction,
            tzinfo=tz,
        )
    except ValueError:
        return None


__all__ = ["accession_key", "parse_reports", "SUPPORTED_VERSIONS"]
