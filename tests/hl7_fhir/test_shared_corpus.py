"""Every message in ../shared/data/hl7v2 (when present): each well-formed ORU with report text converts to a
validated bundle; everything else is rejected with a reason. Skips cleanly without ../shared."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from connector.fhir.validate import validate_bundle
from connector.hl7.framing import unframe
from connector.pipeline import REJECT_REASONS, MessageRejected, Skipped, convert_message, split_messages

from benchmarks.scope_accuracy import scout_to_mllp as _scout_to_mllp
from tests.hl7_fhir.conftest import TableLabeler

_TEXT_OBX = re.compile(rb"(?:^|\r)OBX\|[^|\r]*\|(?:TX|ST|FT)\|[^|\r]*\|[^|\r]*\|[^|\r]*[^|\r\s~]")


def _well_formed_radiology_oru(chunk: bytes) -> bool:
    """Independent of the parser: MSH says ORU^R01, the frame is complete, and an OBX carries report text."""
    unframed = unframe(chunk)
    body = unframed.body
    return (
        not unframed.truncated
        and body.startswith(b"MSH")
        and b"|ORU^R01" in body.split(b"\r", 1)[0]
        and b"\rOBR|" in body
        and _TEXT_OBX.search(body) is not None
    )


def test_shared_hl7v2_corpus(shared, tmp_path):
    scout = tmp_path / "scout"
    _scout_to_mllp(shared, scout)
    files = sorted(scout.glob("*.hl7")) + sorted((shared / "data" / "hl7v2" / "microsoft-fhir-converter").glob("*.hl7"))
    assert len(files) > 300
    labeler = TableLabeler(default={})
    outcomes: Counter[str] = Counter()
    bundle_ids: set[str] = set()
    for path in files:
        for chunk in split_messages(path.read_bytes()):
            expected_ok = _well_formed_radiology_oru(chunk)
            try:
                converted = asyncio.run(convert_message(chunk, labeler))
            except MessageRejected as exc:
                assert not expected_ok, f"{path.name}: well-formed ORU rejected ({exc.reason})"
                assert exc.reason in REJECT_REASONS and exc.detail
                outcomes[exc.reason] += 1
                continue
            assert expected_ok, f"{path.name}: converted a message the independent check calls broken"
            for item in converted:
                if isinstance(item, Skipped):  # not a chest radiograph, or no diagnostic text: counted, not lost
                    assert item.reason.startswith(("excluded:", "non-diagnostic:"))
                    outcomes["skipped"] += 1
                    continue
                bundle = json.loads(item.bundle)
                validate_bundle(bundle)
                bundle_ids.add(item.bundle_id)
                outcomes["converted"] += 1
    # ~1 in 8 of this real-shaped feed is a chest radiograph (the rest: MR, CT, mammography, US, NM, IR, ...)
    assert outcomes["converted"] + outcomes["skipped"] >= 390
    assert 40 <= outcomes["converted"] <= 60
    # the broken-on-purpose inputs: "Bad file", an empty message, junk, and ORUs without any text
    assert outcomes["not-hl7"] >= 2 and outcomes["empty"] >= 1 and outcomes["no-report-text"] >= 1
    # a duplicated message converts to the same bundle id (idempotent replay), so ids <= conversions
    assert len(bundle_ids) <= outcomes["converted"]


def test_shared_latin1_message_decodes(shared, tmp_path):
    scout = tmp_path / "scout"
    _scout_to_mllp(shared, scout)
    latin = [p for p in scout.glob("*.hl7") if b"\xe9" in p.read_bytes() or re.search(rb"[\xc0-\xff][^\x80-\xbf]", p.read_bytes())]
    assert latin, "expected the ISO-8859-1 file in the scout set"
    for path in latin:
        for chunk in split_messages(path.read_bytes()):
            try:
                converted = asyncio.run(convert_message(chunk, TableLabeler()))
            except MessageRejected as exc:
                assert exc.reason != "encoding"
                continue
            for item in converted:
                if not isinstance(item, Skipped):
                    assert "\ufffd" not in item.bundle.decode("utf-8")


@pytest.mark.parametrize("name", ["ORU-R01-01.hl7", "LAB-ORU-1.hl7"])
def test_microsoft_lab_samples_are_not_reports(shared, name):
    path = shared / "data" / "hl7v2" / "microsoft-fhir-converter" / name
    chunks = split_messages(path.read_bytes())
    assert len(chunks) == 1
    # a lab ORU whose only results are coded values (CWE organism, NM, RP): not a report
    with pytest.raises(MessageRejected) as info:
        asyncio.run(convert_message(chunks[0], TableLabeler()))
    assert info.value.reason == "no-report-text"


def test_scope_decisions_match_the_truth_set(shared):
    """Study scope on every report of the shared HL7 data against tests/hl7_fhir/data/scope_truth_shared_hl7v2.csv
    (written by reading each procedure, and the report text where the procedure is generic, before the classifier
    ran). Targets (issue 10): every procedure-coded study right; >= 95% of generic ones; no study whose procedure
    says chest radiograph is skipped."""
    from benchmarks.scope_accuracy import measure

    result = measure(shared)
    coded, generic = result["by_group"]["coded procedure"], result["by_group"]["generic procedure"]
    assert coded["decided"] >= 300 and coded["right"] == coded["decided"], result["wrong"]
    assert generic["decided"] >= 30 and generic["right"] >= 0.95 * generic["decided"], result["wrong"]
    assert result["chest_procedures_skipped"] == 0
    assert result["in_scope_truth"] == 50


def test_report_text_alone_recognises_chest_radiographs(shared):
    """Signal 4 (generic procedures, `label --scope text`) on reports that are all chest radiographs."""
    from benchmarks.scope_accuracy import measure_text_only

    result = measure_text_only(shared)
    assert result["iu-xray"]["reports"] > 3000 and result["iu-xray"]["in_scope"] >= 0.95 * result["iu-xray"]["reports"]
    assert result["gold-dev"]["in_scope"] >= 95
