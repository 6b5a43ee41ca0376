"""Terminology for the FHIR output: SNOMED CT finding codes, the local CheXpert code system, and presence
qualifiers. The finding map is a versioned data file (data/snomed_map.csv) so codes can be corrected without
touching code; every Observation also carries the local code, so nothing depends on an unverified SNOMED code.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

from pydantic import BaseModel

from mappings.vocabulary import OBSERVATIONS, Certainty

SNOMED_SYSTEM = "http://snomed.info/sct"
# Local code system carrying the CheXpert observation name on every Observation.
LOCAL_SYSTEM = "urn:radlabel:codesystem:chexpert-observation"
MAP_VERSION = "1"

# Presence qualifiers (DOMAIN.md §7, as used by Open Imaging Finding Models and mCODE).
PRESENCE_QUALIFIER: dict[Certainty, tuple[str, str]] = {
    Certainty.POSITIVE: ("52101004", "Present"),
    Certainty.NEGATIVE: ("2667000", "Absent"),
    Certainty.UNCERTAIN: ("82334004", "Indeterminate"),
}


class FindingCode(BaseModel):
    observation: str
    local_code: str
    snomed_code: str | None
    snomed_display: str | None
    verified: str  # "verified" | "unverified" | "none"


@lru_cache(maxsize=1)
def finding_codes() -> dict[str, FindingCode]:
    text = resources.files("mappings").joinpath("data/snomed_map.csv").read_text(encoding="utf-8")
    rows = {}
    for row in csv.DictReader(text.splitlines()):
        rows[row["observation"]] = FindingCode(
            observation=row["observation"],
            local_code=row["local_code"],
            snomed_code=row["snomed_code"] or None,
            snomed_display=row["snomed_display"] or None,
            verified=row["verified"],
        )
    missing = set(OBSERVATIONS) - set(rows)
    if missing:
        raise RuntimeError(f"snomed_map.csv lacks {sorted(missing)}")
    return rows
