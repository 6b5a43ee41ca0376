"""Typed boundary between HL7 parsing and everything downstream (labeling, FHIR, Kafka keys)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Namespace for every id we mint (UUIDv5): the same input always gives the same ids.
RADLABEL_NAMESPACE = uuid.UUID("6f1c8d2e-4b7a-5e39-9a0d-2c6b1f7e8a41")

SECTION_NAMES: tuple[str, ...] = ("indication", "comparison", "findings", "impression")

ReportStatus = Literal["P", "F", "C", "X"]


_NAMESPACE_BYTES = RADLABEL_NAMESPACE.bytes


def mint_id(*parts: str) -> str:
    """Deterministic resource id: UUIDv5 over the parts joined with '|'. Same value as
    ``str(uuid.uuid5(RADLABEL_NAMESPACE, name))`` (a test checks), without building a UUID object: ~20 ids per
    bundle made this a measurable share of the FHIR step."""
    return _uuid_text(hashlib.sha1(_NAMESPACE_BYTES + "|".join(parts).encode("utf-8")).digest())


def mint_ids(prefix: tuple[str, ...], last: tuple[str, ...]) -> list[str]:
    """``[mint_id(*prefix, x) for x in last]``, hashing the shared prefix once (the 14 Observation ids of a report)."""
    head = hashlib.sha1(_NAMESPACE_BYTES + ("|".join(prefix) + "|").encode("utf-8"))
    out = []
    for item in last:
        h = head.copy()
        h.update(item.encode("utf-8"))
        out.append(_uuid_text(h.digest()))
    return out


def _uuid_text(sha1: bytes) -> str:
    digest = bytearray(sha1[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Authority(BaseModel):
    """An HL7 HD (hierarchic designator): an assigning authority (CX-4, EI-2..4) or a facility (MSH-4). The same
    authority may arrive as its namespace id, its universal id, or both (connector/fhir/identifiers.py)."""

    model_config = ConfigDict(frozen=True)
    namespace: str | None = None  # HD-1, e.g. "DEMOHOSP"
    universal_id: str | None = None  # HD-2, e.g. an OID
    universal_id_type: str | None = None  # HD-3, e.g. "ISO", "UUID", "DNS"

    def __bool__(self) -> bool:
        return bool(self.namespace or self.universal_id)


class Identifier(BaseModel):
    """One PID-3 repetition (CX)."""

    model_config = ConfigDict(frozen=True)
    value: str
    authority: str | None = None  # CX-4.1 namespace id, e.g. "ABC"
    authority_oid: str | None = None  # CX-4.2 universal id when CX-4.3 is ISO
    type_code: str | None = None  # CX-5, e.g. "MR"
    authority_universal_id: str | None = None  # CX-4.2 whatever its type
    authority_universal_id_type: str | None = None  # CX-4.3


class Patient(BaseModel):
    model_config = ConfigDict(frozen=True)
    identifiers: tuple[Identifier, ...] = ()
    family: str | None = None
    given: tuple[str, ...] = ()
    birth_date: date | None = None
    sex: str | None = None  # HL7 table 0001 code as sent (M, F, O, U, A, N)


class Report(BaseModel):
    """One radiology report: one OBR group of an ORU^R01 message."""

    model_config = ConfigDict(frozen=True)
    message_control_id: str
    hl7_version: str
    sending_facility: str
    # MSH-4 as a whole (namespace, universal id, type): the authority of identifiers that name none of their own.
    facility_authority: Authority | None = None
    obr_index: int = Field(ge=1)  # 1-based position of the OBR in its message
    accession: str  # OBR-3 filler number, else OBR-2 placer number
    placer: str | None = None
    filler: str | None = None
    # EI-2..4 of the order number the accession came from (OBR-3, else OBR-2): who assigned it, when sent.
    accession_authority: Authority | None = None
    procedure_code: str | None = None
    procedure_display: str | None = None
    procedure_system: str | None = None
    procedure_alt_code: str | None = None  # OBR-4.4-4.6: the alternate identifier, text and coding system
    procedure_alt_display: str | None = None
    procedure_alt_system: str | None = None
    service_section: str | None = None  # OBR-24 diagnostic service section (often the DICOM modality)
    body_part: str | None = None  # OBR-15.1, where a feed sends the body part there
    status: ReportStatus
    observation_time: datetime | None = None
    report_time: datetime | None = None
    message_time: datetime | None = None  # MSH-7: when the sender built this message
    text: str  # the full report text, line breaks as "\n"
    sections: dict[str, str] = Field(default_factory=dict)  # subset of SECTION_NAMES
    patient: Patient

    @property
    def accession_key(self) -> str:
        """Facility-qualified accession: all versions of one report share it (Kafka key, resource ids)."""
        return f"{self.sending_facility}|{self.accession}"

    @property
    def version_key(self) -> str:
        """Identifies this version of the report (one message, one OBR)."""
        return f"{self.accession_key}|{self.message_control_id}|{self.obr_index}"

    @property
    def diagnostic_report_id(self) -> str:
        return mint_id("DiagnosticReport", self.accession_key)

    def observation_id(self, observation: str) -> str:
        return mint_id("Observation", self.accession_key, observation)

    def observation_ids(self, observations: tuple[str, ...]) -> list[str]:
        """:meth:`observation_id` for several observations at once (same ids, one prefix hash)."""
        return mint_ids(("Observation", self.accession_key), observations)

    @property
    def provenance_id(self) -> str:
        return mint_id("Provenance", self.accession_key)

    @property
    def bundle_id(self) -> str:
        return mint_id("Bundle", self.version_key)
