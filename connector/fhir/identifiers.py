"""Which FHIR Identifier.system an HL7 identifier gets, and the output profile that uses them (pure, import-light).

An HL7 v2 identifier names its assigning authority with an HD (namespace id, universal id, universal id type): PID-3
CX-4 for MRNs, EI-2..4 of OBR-3/OBR-2 for accession numbers, MSH-4 for the sending facility. FHIR wants one system
URI per identifier namespace, and a hospital's FHIR server already uses its own (the ADT feed wrote the Patients).
A site maps its authorities to those URIs in settings (``fhir.patient_identifier_systems``,
``fhir.accession_identifier_systems``; docs/HL7_FHIR.md "Identifier systems"). A rule matches an HD by universal
id or by namespace id, so ``DEMOHOSP``, ``DEMOHOSP&1.2.3&ISO`` and ``&1.2.3&ISO`` all resolve to one system.

Unmapped authorities get the documented fallback URIs below (counted: radlabel_identifier_fallback_total), or make
the report a dead letter when the site says ``unknown_authority: dead-letter``. A report without any usable patient
identifier is always a dead letter: it would otherwise become an identifier-less patient (one per accession).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from connector.hl7.models import Authority, Report

ProfileKind = Literal["standalone", "enrich"]
UnknownAuthority = Literal["fallback", "dead-letter"]

# Fallback systems, when no rule matches (docs/HL7_FHIR.md "Identifier systems").
AUTHORITY_SYSTEM_PREFIX = "urn:radlabel:assigning-authority:"
ACCESSION_SYSTEM_PREFIX = "urn:radlabel:accession:"

# Dead-letter reasons (PHI-free codes, as the parser's MessageRejected reasons).
NO_PATIENT_IDENTIFIER = "no-patient-identifier"
UNKNOWN_AUTHORITY = "unknown-assigning-authority"
UNPUBLISHABLE_REASONS = (NO_PATIENT_IDENTIFIER, UNKNOWN_AUTHORITY)


class Unpublishable(Exception):
    """A report the output profile cannot write without harming the record (no patient identifier; an authority
    the site requires mapped). ``detail`` is PHI-free: it names fields, never values."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SystemRule:
    """One site mapping: an authority (by namespace id and/or universal id) -> Identifier.system."""

    system: str
    namespace: str | None = None
    universal_id: str | None = None
    universal_id_type: str | None = None  # when set, a universal id matches only with this type (or none sent)


def _lookup(rules: tuple[SystemRule, ...]) -> tuple[dict[str, int], dict[str, int]]:
    by_uid: dict[str, int] = {}
    by_ns: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.universal_id:
            by_uid.setdefault(rule.universal_id, index)
        if rule.namespace:
            by_ns.setdefault(rule.namespace, index)
    return by_uid, by_ns


@dataclass(frozen=True)
class OutputProfile:
    """What a bundle writes (docs/HL7_FHIR.md "Output profiles") and how identifiers get their systems."""

    kind: ProfileKind = "standalone"
    placeholders: bool = False  # enrich: conditional create of a minimal Patient / DiagnosticReport if none matches
    patient_systems: tuple[SystemRule, ...] = ()
    accession_systems: tuple[SystemRule, ...] = ()
    unknown_authority: UnknownAuthority = "fallback"
    _patient: tuple[dict[str, int], dict[str, int]] = field(init=False, repr=False, compare=False, hash=False)
    _accession: tuple[dict[str, int], dict[str, int]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_patient", _lookup(self.patient_systems))
        object.__setattr__(self, "_accession", _lookup(self.accession_systems))


STANDALONE = OutputProfile()


# An HD as plain values (namespace id, universal id, universal id type): built per identifier on the hot path,
# where a pydantic Authority per identifier was a measurable share of the FHIR step.
_HD = tuple[str | None, str | None, str | None]


def _hd(authority: Authority | None) -> _HD:
    return (authority.namespace, authority.universal_id, authority.universal_id_type) if authority else (None, None, None)


def _match(hd: _HD, rules: tuple[SystemRule, ...], lookup: tuple[dict[str, int], dict[str, int]]) -> int | None:
    """Index of the rule naming this authority: by universal id first (it is global), then by namespace id."""
    if not rules:
        return None
    namespace, uid, uid_type = hd
    by_uid, by_ns = lookup
    if uid:
        index = by_uid.get(uid)
        if index is not None:
            wanted = rules[index].universal_id_type
            if not wanted or not uid_type or wanted.upper() == uid_type.upper():
                return index
    if namespace:
        return by_ns.get(namespace)
    return None


def _fallback_authority_system(hd: _HD) -> str:
    """The namespace id when sent (so the same authority with or without its universal id stays one system), else
    the universal id: urn:oid: for ISO, urn:uuid: for UUID, else our URN."""
    namespace, uid, uid_type = hd
    if namespace:
        return AUTHORITY_SYSTEM_PREFIX + quote(namespace, safe="")
    uid = uid or ""
    kind = (uid_type or "").upper()
    if kind == "ISO":
        return "urn:oid:" + uid
    if kind == "UUID":
        return "urn:uuid:" + uid.lower()
    return AUTHORITY_SYSTEM_PREFIX + quote(uid, safe="")


@dataclass(frozen=True)
class ResolvedIdentifiers:
    """The report's identifiers with their systems."""

    patient: tuple[tuple[str, str, str | None, str | None], ...]  # (system, value, CX-5 type, assigner) for Patient
    primary: tuple[str, str]  # (system, MRN): the patient identifier references and the Patient id use
    accession: tuple[str, str]  # (system, accession number)
    fallbacks: tuple[str, ...] = ()  # "patient" / "accession": which of the two used a fallback system


def resolve_identifiers(report: Report, profile: OutputProfile = STANDALONE) -> ResolvedIdentifiers:
    """Systems for the patient's identifiers and the accession. The primary patient identifier is the one the
    site's first matching rule names (rule order is preference, e.g. an enterprise MRN before a local one), else
    the first PID-3 repetition. A repetition with an empty CX-4 is assigned by the sending facility (MSH-4).
    Raises :class:`Unpublishable`."""
    strict = profile.unknown_authority == "dead-letter"
    facility = _hd(report.facility_authority) if report.facility_authority else (
        report.sending_facility or None, None, None)
    candidates: list[tuple[str, str, str | None, str | None, int | None]] = []
    for ident in report.patient.identifiers:
        if not ident.value.strip():
            continue
        uid = ident.authority_universal_id or ident.authority_oid
        hd: _HD = (ident.authority, uid, ident.authority_universal_id_type or ("ISO" if ident.authority_oid else None))
        if not (hd[0] or hd[1]):
            hd = facility  # CX-4 empty: assigned by the sending facility
        rule = _match(hd, profile.patient_systems, profile._patient)
        if rule is None and strict:
            continue  # the site wants only identifiers it knows on its records
        system = profile.patient_systems[rule].system if rule is not None else (
            _fallback_authority_system(hd) if (hd[0] or hd[1]) else AUTHORITY_SYSTEM_PREFIX + "local")
        candidates.append((system, ident.value, ident.type_code, hd[0] or hd[1], rule))
    if not candidates:
        if strict and any(i.value.strip() for i in report.patient.identifiers):
            raise Unpublishable(UNKNOWN_AUTHORITY, "no PID-3 identifier has an assigning authority in "
                                "fhir.patient_identifier_systems (fhir.unknown_authority: dead-letter)")
        raise Unpublishable(NO_PATIENT_IDENTIFIER, "PID-3 holds no patient identifier")
    mapped = [c for c in candidates if c[4] is not None]
    primary = min(mapped, key=lambda c: c[4]) if mapped else candidates[0]  # type: ignore[arg-type,return-value]
    fallbacks = [] if mapped else ["patient"]

    acc_rule = _match(_hd(report.accession_authority), profile.accession_systems, profile._accession)
    if acc_rule is None:
        acc_rule = _match(facility, profile.accession_systems, profile._accession)
    if acc_rule is not None:
        acc_system = profile.accession_systems[acc_rule].system
    elif strict:
        raise Unpublishable(UNKNOWN_AUTHORITY, "neither the order number's assigning authority nor MSH-4 is in "
                            "fhir.accession_identifier_systems (fhir.unknown_authority: dead-letter)")
    else:
        acc_system = ACCESSION_SYSTEM_PREFIX + quote(report.sending_facility or "local", safe="")
        fallbacks.append("accession")
    return ResolvedIdentifiers(
        patient=tuple(c[:4] for c in candidates),  # type: ignore[misc]
        primary=(primary[0], primary[1]),
        accession=(acc_system, report.accession),
        fallbacks=tuple(fallbacks),
    )


def search_value(system: str, value: str) -> str:
    """``system|value`` for a token search in a (conditional) reference or ifNoneExist: FHIR's search escapes
    (backslash before ``\\ | , $``) then URL encoding, keeping ``:`` and ``/`` readable."""
    def escape(text: str) -> str:
        text = text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
        return quote(text, safe=":/")
    return f"{escape(system)}|{escape(value)}"
