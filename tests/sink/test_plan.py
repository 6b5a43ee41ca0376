"""The sink's pure decisions: version order, stale/duplicate skips, retiring, conditional references, PHI-free
OperationOutcome summaries, Retry-After."""

from __future__ import annotations

import copy

import orjson
import pytest

from connector.sink.bundle_facts import NotABundle, read_record
from connector.sink.client import parse_retry_after
from connector.sink.outcome import summary
from connector.sink.plan import DIGEST_TAG_SYSTEM, Send, ServerState, Skip, plan, resolve_conditional
from connector.sink.version import ReportVersion

from tests.sink.bundles import ACC_SYSTEM, MRN_SYSTEM, PATIENT, bundle, ids, observation_id, record


def facts(accession="ACC1", status="F", findings=None, **kw):
    _, value, headers = record(accession, status, {"Pneumothorax": "+"} if findings is None else findings, **kw)
    return read_record(value, {k: v.decode() for k, v in headers})


def stored(resource: dict, version_id: str = "v1") -> dict:
    out = copy.deepcopy(resource)
    out["meta"] = {**out.get("meta", {}), "versionId": version_id}
    return out


def server_after(f) -> ServerState:
    """What the server holds after applying ``f`` (its Provenance and label Observations)."""
    send = plan(f, ServerState())
    assert isinstance(send, Send)
    resources = [e["resource"] for e in send.transaction["entry"]]
    prov = next(r for r in resources if r["resourceType"] == "Provenance")
    obs = [stored(r) for r in resources if r["resourceType"] == "Observation"]
    return ServerState(provenance=stored(prov), observations=obs)


@pytest.mark.parametrize(("older", "newer"), [
    (ReportVersion("P", "2024-01-01T10:00:00+00:00"), ReportVersion("F", "2024-01-01T09:00:00+00:00")),
    (ReportVersion("F", "2024-01-01T10:00:00+00:00"), ReportVersion("C", None)),
    (ReportVersion("F", "2024-01-01T10:00:00+00:00"), ReportVersion("A", "2024-01-01T10:00:00+00:00")),
    (ReportVersion("C", "2024-01-01T10:00:00+01:00"), ReportVersion("C", "2024-01-01T10:00:00+00:00")),
    (ReportVersion("C", "2024-01-01T10:00:00Z", "2024-01-01T10:05:00Z"),
     ReportVersion("X", "2024-01-01T10:00:00Z", "2024-01-01T10:06:00Z")),
    (ReportVersion("F", None, None), ReportVersion("F", "2024-01-01", None)),
])
def test_version_order(older, newer):
    assert older.older_than(newer)
    assert not newer.older_than(older)
    assert not newer.older_than(newer)


@pytest.mark.parametrize("order", ["in-order", "reversed"])
def test_older_version_never_overwrites_newer(order):
    prelim = facts(status="P", findings={"Pneumothorax": "+", "Pleural Effusion": "-"},
                   result_time="2024-03-01T08:00:00+00:00")
    final = facts(status="F", findings={"Pleural Effusion": "-"}, result_time="2024-03-01T09:00:00+00:00")
    first, second = (prelim, final) if order == "in-order" else (final, prelim)
    decision = plan(second, server_after(first))
    if order == "in-order":
        assert isinstance(decision, Send) and decision.retired == 1
    else:
        assert decision == Skip("stale", final.version)


def test_replay_is_a_duplicate_and_equal_version_relabel_applies():
    final = facts(status="F", findings={"Pneumothorax": "+"})
    assert plan(final, server_after(final)) == Skip("duplicate", final.version)
    relabel = facts(status="F", findings={"Pneumothorax": "-"})  # same version, another labeler's answer
    assert isinstance(plan(relabel, server_after(final)), Send)


def test_correction_retires_exactly_what_it_no_longer_asserts():
    prelim = facts(status="P", findings={"Pneumothorax": "+", "Pleural Effusion": "-"})
    corrected = facts(status="C", findings={"Pleural Effusion": "-"})
    decision = plan(corrected, server_after(prelim))
    assert isinstance(decision, Send) and decision.retired == 1
    retired = [e for e in decision.transaction["entry"] if e["resource"].get("status") == "entered-in-error"
               if "resource" in e]
    assert [e["request"] for e in retired] == [
        {"method": "PUT", "url": f"Observation/{observation_id('ACC1', 'Pneumothorax')}", "ifMatch": 'W/"v1"'}]
    assert retired[0]["resource"]["valueCodeableConcept"]["coding"][0]["code"] == "52101004"  # content kept
    # the Provenance is written against the version we read, and carries the record's digest
    prov = next(e for e in decision.transaction["entry"] if e["resource"]["resourceType"] == "Provenance")
    assert prov["request"]["ifMatch"] == 'W/"v1"'
    assert {"system": DIGEST_TAG_SYSTEM, "code": corrected.digest} in prov["resource"]["meta"]["tag"]
    # the record itself is not modified
    assert "meta" not in next(r["resource"] for r in corrected.bundle["entry"]
                              if r["resource"]["resourceType"] == "Provenance")


def test_delete_mode_cancel_and_assert_nothing():
    prelim = facts(status="P", findings={"Pneumothorax": "+", "Pleural Effusion": "-"})
    corrected = facts(status="C", findings={"Pleural Effusion": "-"})
    decision = plan(corrected, server_after(prelim), retire="delete")
    deletes = [e["request"] for e in decision.transaction["entry"] if e["request"]["method"] == "DELETE"]
    assert deletes == [{"method": "DELETE", "url": f"Observation/{observation_id('ACC1', 'Pneumothorax')}",
                        "ifMatch": 'W/"v1"'}]
    cancelled = facts(status="X", findings={}, result_time="2024-03-02T00:00:00+00:00")
    assert cancelled.observation_ids == frozenset() and cancelled.accession is not None
    assert plan(cancelled, server_after(prelim)).retired == 2
    # a version that asserts nothing (not cancelled) retires nothing
    empty = facts(status="C", findings={}, result_time="2024-03-02T00:00:00+00:00")
    assert plan(empty, server_after(prelim)).retired == 0


def test_first_version_and_foreign_observations_retire_nothing():
    prelim = facts(status="P", findings={"Pneumothorax": "+"})
    state = server_after(facts(accession="ACC1", status="P", findings={"Edema": "?"}))
    foreign = copy.deepcopy(state.observations[0])
    foreign["id"] = "other"
    foreign["identifier"][0]["value"] = "another-report:edema"
    assert plan(prelim, ServerState()).retired == 0
    assert plan(prelim, ServerState(state.provenance, [foreign])).retired == 0


def test_a_cancel_finds_its_accession_without_labels():
    cancelled = facts(accession="ACC9", status="X", findings={}, profile="enrich")
    assert cancelled.accession.system == ACC_SYSTEM and cancelled.accession.value == "ACC9"  # Provenance entity
    assert cancelled.profile == "enrich"
    # without the entity's identifier, the conditional DiagnosticReport reference still names it
    b = bundle("ACC9", "X", {}, profile="enrich")
    for entry in b["entry"]:
        entry["resource"].pop("entity", None)
    assert read_record(orjson.dumps(b), {}).accession.value == "ACC9"


def test_conditional_references_resolved_by_the_sink():
    b = bundle("ACC2", "F", {"Pneumothorax": "+"}, profile="enrich")
    ref = f"Patient?identifier={MRN_SYSTEM}|{PATIENT[2]}"
    dr_ref = f"DiagnosticReport?identifier={ACC_SYSTEM}|ACC2"
    resolve_conditional(b, {ref: "Patient/p1", dr_ref: "DiagnosticReport/d1"})
    obs = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Observation")
    assert obs["subject"] == {"reference": "Patient/p1"} and obs["derivedFrom"] == [{"reference": "DiagnosticReport/d1"}]
    with pytest.raises(KeyError):
        resolve_conditional(bundle("ACC2", "F", {"Edema": "?"}, profile="enrich"), {})
    # no match, but the bundle creates a placeholder conditionally: the reference points at that entry
    b = bundle("ACC3", "F", {"Edema": "?"}, profile="enrich")
    b["entry"].insert(0, {"fullUrl": "urn:uuid:placeholder", "resource": {"resourceType": "Patient"},
                          "request": {"method": "POST", "url": "Patient",
                                      "ifNoneExist": f"identifier={MRN_SYSTEM}|{PATIENT[2]}"}})
    resolve_conditional(b, {ref: None, f"DiagnosticReport?identifier={ACC_SYSTEM}|ACC3": "DiagnosticReport/d"})
    obs = next(e["resource"] for e in b["entry"] if e["resource"].get("resourceType") == "Observation")
    assert obs["subject"] == {"reference": "urn:uuid:placeholder"}


def test_records_that_are_not_report_versions():
    with pytest.raises(NotABundle) as exc:
        read_record(b"MSH|^~\\&|", {})
    assert exc.value.reason == "invalid-bundle"
    b = bundle("ACC4", "F", {"Edema": "?"})
    for entry in b["entry"]:
        entry["resource"].pop("extension", None)
    with pytest.raises(NotABundle) as exc:
        read_record(orjson.dumps(b), {})
    assert exc.value.reason == "no-report-version"
    # the headers stand in when the bundle carries no extension
    assert read_record(orjson.dumps(b), {"report-status": "C"}).version == ReportVersion("C")
    # without a report-id header, the report id comes from the labels' identifiers
    assert read_record(orjson.dumps(b), {"report-status": "C"}).report_id == ids("ACC4")["report"]


def test_outcome_summary_keeps_codes_not_values():
    body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": f"Patient {PATIENT[0]} MRN {PATIENT[2]} invalid",
         "details": {"text": f"name {PATIENT[1]}", "coding": [{"code": "MSG_BAD_FORMAT"}]},
         "expression": ["Bundle.entry[2].resource.subject", f"value = '{PATIENT[2]}'"]}]})
    text = summary(422, body)
    assert text == "HTTP 422; error/invalid MSG_BAD_FORMAT at Bundle.entry[2].resource.subject"
    for token in PATIENT:
        assert token not in text
    assert summary(400, b"<html>") == "HTTP 400; body is not JSON"


def test_retry_after_forms():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_ids_are_stable():
    assert ids("ACC1") == ids("ACC1") and ids("ACC1")["report"] != ids("ACC2")["report"]


@pytest.mark.parametrize("mangle", [
    lambda b: b.update(entry={"not": "a list"}),
    lambda b: b["entry"].append("a string"),
    lambda b: b["entry"][0].update(resource=["a list"]),
    lambda b: b["entry"][-1]["resource"].update(extension="text"),
    lambda b: b["entry"][-1]["resource"].update(extension=["text", {"url": "urn:radlabel:extension:report-version",
                                                                    "extension": "x"}]),
    lambda b: [e["resource"].update(identifier="x") for e in b["entry"]],
    lambda b: b["entry"][-1]["resource"].update(entity=[{"what": "x"}], id=None),
])
def test_malformed_records_are_dead_letters_or_decisions_never_crashes(mangle):
    b = bundle("BAD1", "F", {"Edema": "?"})
    mangle(b)
    try:
        facts = read_record(orjson.dumps(b), {"report-status": "F"})
    except NotABundle as exc:
        assert exc.reason in ("invalid-bundle", "no-report-version")
        return
    assert isinstance(plan(facts, ServerState()), Send)
