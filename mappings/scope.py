"""Study scope: is this study a chest radiograph, the only kind of report the labelers are valid for?

Decided before labeling, from the order's facts and, only when they name no study, from the report text. The rules
are data (data/study_scope.yaml, data/procedure_codes.csv, versioned together); this module applies them. A study is
read as a (modality, body part) pair such as ``xr:chest``; it is in scope when that pair is allowed (``xr:chest`` by
default, widened per site by the ``include`` setting).

Signals, in order (docs/HL7_FHIR.md "Study scope"):
  1. procedure code (OBR-4 identifier + coding system, and the alternate identifier) against the shipped code lists
     and the site's own local codes;
  2. procedure text (OBR-4 text and alternate text);
  3. OBR-24 diagnostic service section / modality, with the body part some feeds send in OBR-15;
  4. the report text (an "EXAMINATION:" line, else cue words).
Signals 1-3 describe the order: when any of them rules the study out, it is out (exclusions win, so a feed that
codes a CT as a chest study is not labeled); else when any of them says chest radiograph, it is in. Only when all
three are silent (generic procedures such as "Radiology Event", film transfers, an empty OBR-4) does the report
text decide, and when it cannot, the study is out as ``excluded:unknown-study``: the labelers make no claim on a
study nobody can name.

Every decision carries a reason code naming the signal that decided, free of PHI (codes, never text).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["LocalCode", "ScopeDecision", "ScopeRules", "StudyFacts", "SCOPE_RULES_VERSION", "default_rules"]

_STUDY = re.compile(r"^[a-z]+:[a-z+-]+$")
CHEST_XR = "xr:chest"


class StudyFacts(BaseModel):
    """What a report says about its study: the input of :meth:`ScopeRules.decide` (all optional)."""

    model_config = ConfigDict(frozen=True)
    procedure_code: str | None = None  # OBR-4.1
    procedure_system: str | None = None  # OBR-4.3
    procedure_text: str | None = None  # OBR-4.2
    alt_code: str | None = None  # OBR-4.4
    alt_text: str | None = None  # OBR-4.5
    alt_system: str | None = None  # OBR-4.6
    service_section: str | None = None  # OBR-24
    body_part: str | None = None  # OBR-15.1 where a feed sends the body part there
    report_text: str | None = None


# StudyFacts fields that describe the order (signals 1-3), in the order :meth:`ScopeRules.decide_order` takes them.
_ORDER_FIELDS = ("procedure_code", "procedure_system", "procedure_text", "alt_code", "alt_text", "alt_system",
                 "service_section", "body_part")


class ScopeDecision(BaseModel):
    model_config = ConfigDict(frozen=True)
    in_scope: bool
    reason: str  # e.g. "code:cpt-71046", "text:procedure", "section:cr-chest", "report-text", "excluded:ct"
    signal: str  # code | procedure-text | service-section | report-text
    study: str | None = None  # modality:body-part as read, e.g. "ct:chest"; None when no signal named one


class LocalCode(BaseModel):
    """A site's own procedure code (settings YAML ``scope.local_codes``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    code: str
    system: str | None = None  # OBR-4.3 as the site sends it; None matches any system
    study: str  # modality:body-part, e.g. "xr:chest" or "mr:head"

    @field_validator("study")
    @classmethod
    def _study_form(cls, value: str) -> str:
        if not _STUDY.match(value):
            raise ValueError("study must look like 'xr:chest' (modality:body-part, lower case)")
        return value


def _words(patterns: Iterable[str]) -> re.Pattern[str]:
    # Word boundaries on both sides, except next to a pattern edge that is not a word character ("pet/ct").
    return re.compile(r"(?<![\w])(?:" + "|".join(patterns) + r")(?![\w])", re.IGNORECASE)


def _system_key(system: str | None) -> str:
    s = (system or "").strip().upper()
    if s in ("C4", "CPT", "CPT4", "CPT-4", "HCPCS", "HCPT"):
        return "CPT"
    if s in ("LN", "LOINC"):
        return "LOINC"
    if s in ("RADLEX", "RPID", "RSNA", "RADLEXPLAYBOOK", "PLAYBOOK"):
        return "RADLEX"
    return s


class _Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)
    study: str | None  # modality:part when both are known, "xr:?" / "?:chest" when one is
    modality: str | None
    parts: tuple[str, ...]


class ScopeRules:
    """The loaded rules plus a site's settings. Build once (:func:`default_rules` or :meth:`load`); pure after."""

    def __init__(self, data: dict, codes: list[dict], *, include: Iterable[str] = (),
                 local_codes: Iterable[LocalCode] = ()) -> None:
        self.version: str = str(data["version"])
        self.allowed: frozenset[str] = frozenset(data["in_scope"]) | frozenset(include)
        for study in self.allowed:
            if not _STUDY.match(study):
                raise ValueError(f"scope.include: {study!r} must look like 'ct:chest'")
        self._modalities = [(name, _words(pats)) for name, pats in data["modalities"].items()]
        self._parts = [(name, _words(pats)) for name, pats in data["body_parts"].items()]
        self._generic = re.compile(r"^\W*(?:\d+\s+)*(?:" + "|".join(data["generic_procedures"]) + r")\W*$",
                                   re.IGNORECASE)
        self._sections: dict[str, str] = {k.upper(): v for k, v in data["service_sections"].items()}
        rt = data["report_text"]
        self._exam_line = re.compile(rt["exam_line"], re.IGNORECASE | re.MULTILINE)
        self._other_modality = [(name, _words(pats)) for name, pats in rt["other_modality"].items()]
        self._chest_cues = _words(rt["chest_cues"])
        self._other_cues = _words(rt["other_cues"])
        self._min_chest_cues = int(rt["min_chest_cues"])
        self._context_heading = re.compile(
            r"^\s*(?:" + "|".join(rt["context_headings"]) + r")\s*:", re.IGNORECASE)
        self._any_heading = re.compile(r"^\s*[A-Za-z][A-Za-z /&()-]{0,40}:")
        self._aside = _words(rt["aside"])
        # (system, code) -> study. Shipped lists first, site codes on top (a site may re-map a shipped code).
        self._codes: dict[tuple[str, str], str] = {}
        for row in codes:
            self._codes[(_system_key(row["system"]), row["code"].strip().upper())] = row["study"]
        self._local_any: dict[str, str] = {}
        for local in local_codes:
            if local.system is None:
                self._local_any[local.code.strip().upper()] = local.study
            else:
                self._codes[(_system_key(local.system), local.code.strip().upper())] = local.study
        self._local_systems = {(_system_key(c.system), c.code.strip().upper()) for c in local_codes if c.system}

    @classmethod
    def load(cls, *, include: Iterable[str] = (), local_codes: Iterable[LocalCode] = ()) -> ScopeRules:
        data, codes = _shipped()
        return cls(data, codes, include=include, local_codes=local_codes)

    # -- the decision --------------------------------------------------------------------------------------------
    def decide(self, facts: StudyFacts) -> ScopeDecision:
        order = tuple(getattr(facts, name) for name in _ORDER_FIELDS)
        return self.decide_order(order, facts.report_text)

    def decide_order(self, order: tuple[str | None, ...], report_text: str | None) -> ScopeDecision:
        """:meth:`decide` from the order facts as a tuple in :data:`_ORDER_FIELDS` order (the hot path: no model)."""
        decision = self._by_order(order)
        if decision is not None:
            return decision
        return self._by_report_text(report_text or "")

    @lru_cache(maxsize=4096)  # noqa: B019 - rules live as long as the process; a feed repeats its procedures
    def _by_order(self, order: tuple[str | None, ...]) -> ScopeDecision | None:
        """Signals 1-3 (the order's own facts, never the report text, so the cache holds no PHI)."""
        facts = StudyFacts(**dict(zip(_ORDER_FIELDS, order)))
        order_decisions: list[ScopeDecision] = [
            d
            for d in (self._by_code(facts), self._by_procedure_text(facts), self._by_section(facts))
            if d is not None
        ]
        for decision in order_decisions:
            if not decision.in_scope:
                return decision  # exclusions win
        return order_decisions[0] if order_decisions else None

    def _judge(self, study: str, signal: str, in_reason: str) -> ScopeDecision:
        if study in self.allowed:
            return ScopeDecision(in_scope=True, reason=in_reason, signal=signal, study=study)
        return ScopeDecision(in_scope=False, reason=_excluded(study), signal=signal, study=study)

    def _by_code(self, facts: StudyFacts) -> ScopeDecision | None:
        for code, system in ((facts.procedure_code, facts.procedure_system), (facts.alt_code, facts.alt_system)):
            if not code:
                continue
            key = (_system_key(system), code.strip().upper())
            study = self._codes.get(key)
            local = key in self._local_systems
            if study is None:
                study = self._local_any.get(key[1])
                local = study is not None
            if study is None:
                continue
            tag = "site" if local else key[0].lower() or "local"
            return self._judge(study, "code", f"code:{tag}-{_safe(code)}")
        return None

    def _by_procedure_text(self, facts: StudyFacts) -> ScopeDecision | None:
        texts = [t for t in (facts.procedure_text, facts.alt_text) if t and t.strip()]
        verdicts = [self._read(t) for t in texts if not self._generic.match(t)]
        # Exclusions win across the two texts too; an "xr:?" (modality without part) is completed by the other text.
        studies = [v.study for v in verdicts if v.study and "?" not in v.study]
        for study in studies:
            if study not in self.allowed:
                return self._judge(study, "procedure-text", "text:procedure")
        if studies:
            return self._judge(studies[0], "procedure-text", "text:procedure")
        modality = next((v.modality for v in verdicts if v.modality), None)
        part = next((v.parts for v in verdicts if v.parts), ())
        if modality and part:
            return self._judge(_study(modality, part), "procedure-text", "text:procedure")
        if modality and modality != "xr":
            # A non-radiograph modality needs no body part to rule the study out ("MRI TRANSFER OF OUTSIDE FILMS").
            return ScopeDecision(in_scope=False, reason=_excluded(f"{modality}:?"), signal="procedure-text",
                                 study=f"{modality}:?")
        if part and not (len(part) == 1 and part[0] == "chest"):
            # Any body part other than the chest rules it out whatever the modality ("Abdomen 1 view").
            return self._judge(_study("?", part), "procedure-text", "text:procedure")
        return None

    def _by_section(self, facts: StudyFacts) -> ScopeDecision | None:
        modality = self._sections.get((facts.service_section or "").strip().upper())
        if modality is None:
            return None
        if modality != "xr":
            study = f"{modality}:?"
            # A site that widened scope to e.g. "ct:chest" still needs a body part: the section alone cannot say it.
            return ScopeDecision(in_scope=False, reason=_excluded(study), signal="service-section", study=study)
        parts = self._read(facts.body_part).parts if facts.body_part else ()
        if not parts:
            return None  # a radiograph of what? the next signal decides
        return self._judge(_study("xr", parts), "service-section", f"section:xr-{'+'.join(parts)}")

    def _by_report_text(self, text: str) -> ScopeDecision:
        radiograph = False  # an examination line said X-ray without a body part ("Single-view X-ray")
        for match in self._exam_line.finditer(text):
            verdict = self._read(match.group("what"))
            if verdict.modality and verdict.modality != "xr":
                return self._judge(_study(verdict.modality, verdict.parts or ("?",)), "report-text", "report-text")
            if verdict.parts:
                modality = verdict.modality or "xr"
                return self._judge(_study(modality, verdict.parts), "report-text", "report-text")
            radiograph = radiograph or verdict.modality == "xr"
        body = self._findings(text)
        if not radiograph:
            # With no examination line, any other modality's own vocabulary rules the study out. After "X-ray" it
            # does not: radiograph reports recommend "ultrasound to characterize the effusion".
            for name, pattern in self._other_modality:
                if pattern.search(body):
                    return ScopeDecision(in_scope=False, reason=_excluded(f"{name}:?"), signal="report-text",
                                         study=f"{name}:?")
        chest = len(self._chest_cues.findall(body))
        other = len(self._other_cues.findall(body))
        if chest >= self._min_chest_cues and chest > other:
            return self._judge(CHEST_XR, "report-text", "report-text")
        if other:
            return ScopeDecision(in_scope=False, reason="excluded:other-body-part", signal="report-text")
        return ScopeDecision(in_scope=False, reason="excluded:unknown-study", signal="report-text")

    def _findings(self, text: str) -> str:
        """The report text the cue words may read: without context sections (indication, comparison, technique)
        and without sentences that recommend or compare with another study."""
        kept: list[str] = []
        in_context = False
        for line in text.splitlines():
            if self._context_heading.match(line):
                in_context = True
                continue
            if self._any_heading.match(line):
                in_context = False
            if in_context:
                continue
            kept.extend(s for s in re.split(r"(?<=[.!?])\s+", line) if not self._aside.search(s))
        return "\n".join(kept)

    def _read(self, text: str) -> _Verdict:
        modality = next((name for name, pattern in self._modalities if pattern.search(text)), None)
        parts = tuple(name for name, pattern in self._parts if pattern.search(text))
        # "thoracic spine" also says "thoracic"; "rib" series often say "chest": the specific part wins.
        if "chest" in parts and any(p in parts for p in ("thoracic-spine", "ribs", "sternum")):
            parts = tuple(p for p in parts if p != "chest")
        if "thoracic-spine" in parts:
            parts = tuple(p for p in parts if p != "spine")
        # "cardiac"/"heart" inside a chest study name is the chest ("XR chest heart size" is rare; CT/MR heart is not).
        if parts == ("heart", "chest") and modality == "xr":
            parts = ("chest",)
        study = _study(modality, parts) if modality and parts else None
        return _Verdict(study=study, modality=modality, parts=parts)


def _study(modality: str, parts: Iterable[str]) -> str:
    return f"{modality}:{'+'.join(parts)}"


def _excluded(study: str) -> str:
    modality, _, part = study.partition(":")
    if modality not in ("xr", "?"):
        return f"excluded:{modality}"
    if "+" in part:
        return "excluded:combined"
    return f"excluded:{part}" if part not in ("", "?") else "excluded:unknown-study"


def _safe(code: str) -> str:
    """A code as a label value: procedure codes are not PHI, but keep them short and printable."""
    return re.sub(r"[^A-Za-z0-9.\-]", "_", code.strip())[:24]


@lru_cache(maxsize=1)
def _shipped() -> tuple[dict, list[dict]]:
    base = resources.files("mappings").joinpath("data")
    data = yaml.safe_load(base.joinpath("study_scope.yaml").read_text(encoding="utf-8"))
    codes = list(csv.DictReader(base.joinpath("procedure_codes.csv").read_text(encoding="utf-8").splitlines()))
    for row in codes:
        if not _STUDY.match(row["study"]):
            raise RuntimeError(f"procedure_codes.csv: bad study {row['study']!r} for {row['code']}")
    return data, codes


@lru_cache(maxsize=1)
def default_rules() -> ScopeRules:
    return ScopeRules.load()


SCOPE_RULES_VERSION: str = str(_shipped()[0]["version"])


class ScopeSettingsModel(BaseModel):
    """The settings section (connector/settings.py embeds it as ``scope``)."""

    model_config = ConfigDict(extra="forbid")
    # Studies accepted besides chest radiographs, e.g. ["ct:chest"], for a site that has validated the labeler there.
    include: list[str] = Field(default_factory=list)
    # The site's own procedure codes: [{code: IMG1259, system: UNKDEV, study: "xr:chest"}, ...]
    local_codes: list[LocalCode] = Field(default_factory=list)

    def rules(self) -> ScopeRules:
        if not self.include and not self.local_codes:
            return default_rules()
        return ScopeRules.load(include=self.include, local_codes=self.local_codes)
