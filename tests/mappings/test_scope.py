"""Study scope (mappings/scope.py): which studies the labelers may label, and why not the others."""

from __future__ import annotations

import pytest

from mappings.scope import LocalCode, ScopeRules, ScopeSettingsModel, StudyFacts, default_rules

from connector.settings import Settings

CHEST_TEXT = "FINDINGS: Lungs are clear. Heart size is normal. No pleural effusion."


def decide(**facts):
    return default_rules().decide(StudyFacts(**facts))


@pytest.mark.parametrize(
    ("facts", "in_scope", "reason"),
    [
        # signal 1: procedure codes from the shipped lists (CPT current and retired, LOINC, RadLex Playbook)
        ({"procedure_code": "71046", "procedure_system": "CPT"}, True, "code:cpt-71046"),
        ({"procedure_code": "71010", "procedure_system": "C4"}, True, "code:cpt-71010"),
        ({"procedure_code": "36643-5", "procedure_system": "LN"}, True, "code:loinc-36643-5"),
        ({"procedure_code": "RPID2503", "procedure_system": "RADLEX"}, True, "code:radlex-RPID2503"),
        ({"procedure_code": "71250", "procedure_system": "CPT"}, False, "excluded:ct"),
        ({"procedure_code": "71100", "procedure_system": "CPT"}, False, "excluded:ribs"),
        ({"procedure_code": "72070", "procedure_system": "CPT"}, False, "excluded:thoracic-spine"),
        ({"procedure_code": "43561-0", "procedure_system": "LN"}, False, "excluded:combined"),
        # an alternate identifier (OBR-4.4-4.6) counts as a code too
        ({"procedure_code": "IMG99", "procedure_system": "LOCAL", "alt_code": "71045", "alt_system": "CPT"},
         True, "code:cpt-71045"),
        # signal 2: procedure text
        ({"procedure_code": "IMG1259", "procedure_text": "XR CHEST 1 VIEW"}, True, "text:procedure"),
        ({"procedure_text": "CHEST PA AND LAT"}, True, "text:procedure"),
        ({"procedure_text": "PORTABLE CHEST"}, True, "text:procedure"),
        ({"procedure_text": "CXR"}, True, "text:procedure"),
        ({"procedure_text": "71010 Chest 1 view Frontal"}, True, "text:procedure"),
        ({"procedure_text": "CT THORAX"}, False, "excluded:ct"),
        ({"procedure_text": "MRI CHEST WO CONTRAST"}, False, "excluded:mr"),
        ({"procedure_text": "MR CARDIAC MRPH FUNC W/O"}, False, "excluded:mr"),
        ({"procedure_text": "PET/CT FDG WHOLE BODY"}, False, "excluded:pet"),
        ({"procedure_text": "XR Thoracic Spine 1 View"}, False, "excluded:thoracic-spine"),
        ({"procedure_text": "XR RIBS BILATERAL W PA CHEST"}, False, "excluded:ribs"),
        ({"procedure_text": "IR INTRO CATHETER AORTA BILATERAL"}, False, "excluded:ir"),
        ({"procedure_text": "FLUORO CHEST"}, False, "excluded:fluoro"),
        ({"procedure_text": "XR ABDOMEN AP 1 VIEW"}, False, "excluded:abdomen"),
        ({"procedure_text": "XR ANKLE 3 VIEWS"}, False, "excluded:extremity"),
        ({"procedure_text": "Diag Mammogram Unilateral"}, False, "excluded:mg"),
        ({"procedure_text": "MRI TRANSFER OF OUTSIDE FILMS"}, False, "excluded:mr"),
        # exclusions win across the order's signals: a CT coded on a "chest" procedure text is a CT
        ({"procedure_text": "CHEST 1 VIEW", "service_section": "CT"}, False, "excluded:ct"),
        ({"procedure_code": "71046", "procedure_system": "CPT", "service_section": "MR"}, False, "excluded:mr"),
        # signal 3: OBR-24 with a body part
        ({"service_section": "DX", "body_part": "CHEST"}, True, "section:xr-chest"),
        ({"service_section": "US", "report_text": CHEST_TEXT}, False, "excluded:us"),
        # signal 4: generic procedures fall to the report text
        ({"procedure_text": "Radiology Event", "alt_text": "XR SING VIEW", "service_section": "CR",
          "report_text": "EXAMINATION: Single-view X-ray of the chest\nIMPRESSION: Normal."}, True, "report-text"),
        ({"procedure_text": "Radiology Event", "report_text": "EXAMINATION: Spine X-ray\nFINDINGS: Disc disease."},
         False, "excluded:spine"),
        ({"procedure_text": "Outside Exam", "report_text": "EXAMINATION: Chest MRI\nFINDINGS: Normal."}, False,
         "excluded:mr"),
        ({"procedure_text": "Radiology Event", "report_text": CHEST_TEXT}, True, "report-text"),
        ({"report_text": "EXAMINATION: Single-view X-ray\n" + CHEST_TEXT + " Ultrasound may characterize it."},
         True, "report-text"),
        ({"report_text": "The mammogram shows scattered fibroglandular density."}, False, "excluded:mg"),
        ({"report_text": "FINDINGS: Bowel gas pattern normal. Liver and kidneys unremarkable."}, False,
         "excluded:other-body-part"),
        # cue words count only in what the study found: not in COMPARISON/INDICATION, not in recommendations
        ({"report_text": "INDICATION: Preop knee revision.\nCOMPARISON: CT chest 2019.\n" + CHEST_TEXT}, True,
         "report-text"),
        ({"report_text": CHEST_TEXT + "\nIMPRESSION: Nodule; recommend CT for further evaluation."}, True,
         "report-text"),
        ({"report_text": "FINDINGS: Axial CT images show a 2 cm nodule. No pleural effusion."}, False, "excluded:ct"),
        ({"procedure_text": "Radiology Event", "report_text": "IMPRESSION: ALSO SOMETHING"}, False,
         "excluded:unknown-study"),
        ({}, False, "excluded:unknown-study"),
    ],
)
def test_decision_table(facts, in_scope, reason):
    decision = decide(**facts)
    assert (decision.in_scope, decision.reason) == (in_scope, reason), decision


def test_every_reason_names_its_signal_and_carries_no_text():
    decision = decide(procedure_text="Radiology Event", report_text="EXAMINATION: Spine X-ray of MR JONES")
    assert decision.signal == "report-text"
    assert "JONES" not in decision.model_dump_json()
    assert decide(procedure_code="71046", procedure_system="CPT").signal == "code"


def test_a_site_widens_scope_and_adds_local_codes():
    base = default_rules()
    assert not base.decide(StudyFacts(procedure_text="CT THORAX")).in_scope
    widened = ScopeRules.load(include=["ct:chest"])
    assert widened.decide(StudyFacts(procedure_text="CT THORAX")).in_scope
    assert not widened.decide(StudyFacts(procedure_text="CT ABDOMEN")).in_scope
    site = ScopeRules.load(local_codes=[LocalCode(code="RAD77", system="EPIC", study="xr:chest"),
                                        LocalCode(code="CXR1", study="xr:chest")])
    decision = site.decide(StudyFacts(procedure_code="rad77", procedure_system="EPIC"))
    assert (decision.in_scope, decision.reason) == (True, "code:site-rad77")
    assert site.decide(StudyFacts(procedure_code="CXR1", procedure_system="ANY")).in_scope
    # a code in another system is not that site's code
    assert site.decide(StudyFacts(procedure_code="RAD77", procedure_system="OTHER")).reason == "excluded:unknown-study"
    # a site may also move a shipped code out of scope
    stricter = ScopeRules.load(local_codes=[LocalCode(code="71045", system="CPT", study="xr:portable-chest")])
    assert not stricter.decide(StudyFacts(procedure_code="71045", procedure_system="CPT")).in_scope


def test_scope_settings_from_yaml_and_env(tmp_path, monkeypatch):
    config = tmp_path / "site.yaml"
    config.write_text("scope:\n  include: ['ct:chest']\n  local_codes:\n    - {code: IMG1259, system: UNKDEV, "
                      "study: 'xr:chest'}\n", encoding="utf-8")
    monkeypatch.setenv("RADLABEL_CONFIG", str(config))
    settings = Settings()
    rules = settings.scope.rules()
    assert rules.decide(StudyFacts(procedure_text="CT THORAX")).in_scope
    assert rules.decide(StudyFacts(procedure_code="IMG1259", procedure_system="UNKDEV")).reason == "code:site-IMG1259"
    monkeypatch.setenv("RADLABEL_SCOPE__INCLUDE", "[]")
    assert not Settings().scope.rules().decide(StudyFacts(procedure_text="CT THORAX")).in_scope


@pytest.mark.parametrize("bad", [{"include": ["CT chest"]}, {"local_codes": [{"code": "X", "study": "chest"}]},
                                 {"local_codes": [{"code": "X", "study": "xr:chest", "sytem": "CPT"}]},
                                 {"inclde": ["ct:chest"]}])
def test_bad_scope_settings_are_refused_by_name(bad):
    with pytest.raises(Exception) as info:
        ScopeSettingsModel.model_validate(bad).rules()
    assert any(word in str(info.value) for word in ("include", "study", "sytem", "inclde"))


def test_shipped_code_lists_are_versioned_and_marked():
    import csv
    from importlib import resources

    rows = list(csv.DictReader(resources.files("mappings").joinpath("data/procedure_codes.csv")
                               .read_text(encoding="utf-8").splitlines()))
    assert {r["verified"] for r in rows} <= {"verified", "secondary", "unverified"}
    chest_cpt = {r["code"] for r in rows if r["system"] == "CPT" and r["study"] == "xr:chest"}
    assert {"71045", "71046", "71047", "71048", "71010", "71020"} <= chest_cpt
    assert all(r["source"] for r in rows)
    assert default_rules().version
