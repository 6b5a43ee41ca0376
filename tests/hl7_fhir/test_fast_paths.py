"""The hot-path shortcuts (benchmarks/hl7_path.md) give exactly what the plain library calls give:
projected parsing vs. the whole message, connector/hl7/er7.py's split vs. hl7.parse's containers, skeleton
validation vs. full fhir.resources validation (including for invalid values at every variable path), orjson vs.
json canonical bytes, mint_id vs. uuid.uuid5."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import hl7
import pytest

from mappings.labels import LabelerInfo, LabelSet
from mappings.vocabulary import OBSERVATIONS

import connector.hl7.parse as parse_module
from connector.hl7 import er7
from connector.fhir import validate as validate_module
from connector.fhir.bundle import build_bundle, build_bundle_shared, bundle_bytes
from connector.fhir.identifiers import OutputProfile
from connector.fhir.validate import BundleValidator, InvalidResource
from connector.hl7.errors import MessageRejected
from connector.hl7.framing import split_messages, unframe
from connector.hl7.models import RADLABEL_NAMESPACE, mint_id
from connector.pipeline import build_validated_bundle, parse_reports

from tests.hl7_fhir.conftest import FIXTURES, SAMPLES, N, P, U, shared_root

INFO = LabelerInfo(name="rules", version="1.0.0")


def _messages(include_shared: bool = True) -> list[bytes]:
    paths = sorted(SAMPLES.glob("*.hl7")) + sorted(FIXTURES.glob("*.hl7")) + [FIXTURES / "garbage.bin"]
    root = shared_root()
    if include_shared and root is not None and (root / "data" / "hl7v2").is_dir():
        paths += sorted(p for p in (root / "data" / "hl7v2").rglob("*") if p.is_file())[:200]
    return [raw for path in paths for raw in split_messages(path.read_bytes())]


def _outcome(raw: bytes):
    try:
        return parse_reports(raw)
    except MessageRejected as exc:
        return ("rejected", exc.reason)


def test_projected_parse_extracts_what_a_whole_message_parse_does(monkeypatch):
    messages = _messages()
    fast = [_outcome(raw) for raw in messages]
    # Reference: whole segments (those parse.py reads; others are never parsed).
    monkeypatch.setattr(
        parse_module,
        "_project",
        lambda text: "\r".join(s for s in text.split("\r") if s[:3] in parse_module._READ_SEGMENTS),
    )
    reference = [_outcome(raw) for raw in messages]
    assert len(messages) >= 25
    # converted messages are compared field by field, not only rejections
    assert sum(isinstance(o, list) for o in fast) >= 15
    assert fast == reference


# The python-hl7 reading parse.py used before connector/hl7/er7.py: its container tree, walked per value.
def _hl7_get(segment, field: int, r: int = 1, c: int = 1, s: int = 1) -> str:
    if field >= len(segment):
        return ""
    value = list.__getitem__(segment, field)
    if isinstance(value, str):
        return value if (r, c, s) == (1, 1, 1) else ""
    if value and isinstance(list.__getitem__(value, 0), hl7.Repetition):
        if r > len(value):
            return ""
        rep = list.__getitem__(value, r - 1)
    elif r == 1:
        rep = value
    else:
        return ""
    if c > len(rep):
        return ""
    comp = list.__getitem__(rep, c - 1)
    if isinstance(comp, hl7.Component):
        return str(list.__getitem__(comp, s - 1)) if s <= len(comp) else ""
    return str(comp) if s == 1 else ""


def _hl7_repetitions(segment, field: int) -> list[str]:
    if field >= len(segment):
        return []
    value = segment[field]
    if not value:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value[0], hl7.Repetition):
        return [str(rep) for rep in value]
    return [str(value)]


def _hl7_unescaped_get(segment, field: int, r: int = 1, c: int = 1, s: int = 1) -> str:
    text = _hl7_get(segment, field, r, c, s)
    if segment.esc in text and not (field <= 2 and str(list.__getitem__(segment, 0)) == "MSH"):
        text = parse_module._unescape(segment, text)
    return text.strip()


def _fuzzed(count: int) -> list[bytes]:
    from benchmarks.hl7_fuzz import Mutator

    mutator = Mutator(20261202)
    return [mutator.input()[1] for _ in range(count)]


def _texts(messages: list[bytes]) -> list[str]:
    out = []
    for raw in messages:
        body = unframe(raw).body
        if body.startswith(b"MSH") and len(body) >= 8:
            out.append(body.decode("utf-8", "replace"))
    return out


def test_er7_split_reads_every_value_python_hl7_reads():
    """connector/hl7/er7.py against hl7.parse's containers: the same segments, and at every field, repetition,
    component and subcomponent position (past the ends too) the same text, on the corpus and on fuzzed messages
    (odd separators, broken headers, stray separators and escapes)."""
    compared = failed_alike = 0
    for text in _texts(_messages(include_shared=False) + _fuzzed(200)):
        try:
            reference = hl7.parse(text)
        except Exception as exc:  # noqa: BLE001 - the split must fail alike
            with pytest.raises(type(exc)):
                er7.split_message(text)
            failed_alike += 1
            continue
        message = er7.split_message(text)
        assert (message.esc, message.separators) == (reference.esc, reference.separators)
        assert len(message) == len(reference)
        for segment, expected in zip(message, reference, strict=True):
            assert str(segment[0]) == str(expected[0])
            for field in range(len(expected) + 2):
                assert er7.repetitions(segment, field) == _hl7_repetitions(expected, field)
                for r in (1, 2, 3):
                    for c in (1, 2, 3, 5):
                        for s in (1, 2):
                            assert er7.component(segment, field, r, c, s) == _hl7_get(expected, field, r, c, s)
        compared += 1
    assert compared >= 150 and failed_alike >= 1


def test_parse_reports_on_er7_equals_parse_reports_on_python_hl7(monkeypatch):
    """Whole-parse outcomes (reports field by field, or the rejection's reason and detail) on the corpus and on
    fuzzed messages: the parser on er7 gives what it gave on python-hl7's containers."""
    messages = _messages() + _fuzzed(600)

    def outcome(raw: bytes):
        try:
            return parse_reports(raw)
        except MessageRejected as exc:
            return ("rejected", exc.reason, exc.detail)

    fast = [outcome(raw) for raw in messages]

    def hl7_parse(text: str):
        message = hl7.parser._split(text.strip(), hl7.parser.create_parse_plan(text.strip()))
        return message, message.segment("MSH")

    monkeypatch.setattr(parse_module, "_hl7_parse", hl7_parse)
    monkeypatch.setattr(parse_module, "_get", _hl7_unescaped_get)
    monkeypatch.setattr(parse_module, "_repetitions", _hl7_repetitions)
    reference = [outcome(raw) for raw in messages]
    assert sum(isinstance(o, list) for o in fast) >= 150  # fuzzed messages mostly still convert
    assert fast == reference


def test_mint_id_is_uuid5():
    for parts in [("a",), ("Observation", "HOSP|ACC1", "Edema"), ("Patient", "é|\u2028", ""), ("x" * 500,)]:
        assert mint_id(*parts) == str(uuid.uuid5(RADLABEL_NAMESPACE, "|".join(parts)))


def _bundles() -> list[dict]:
    label_sets = [
        LabelSet(labels={}, labeler=INFO),
        LabelSet(labels={"No Finding": P}, labeler=INFO, fallback=True),
        LabelSet(
            labels={name: (U if i % 2 else N) for i, name in enumerate(OBSERVATIONS) if name != "No Finding"},
            labeler=INFO,
        ),
    ]
    bundles = []
    for raw in _messages(include_shared=False):
        outcome = _outcome(raw)
        if isinstance(outcome, list):
            bundles += [build_bundle(report, labels) for report in outcome for labels in label_sets]
    return bundles


def test_canonical_bytes_are_those_of_json_dumps():
    bundles = _bundles()
    assert len(bundles) >= 45
    for bundle in bundles:
        expected = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert bundle_bytes(bundle) == expected
    with pytest.raises(TypeError):  # like json.dumps: no silent conversion of non-JSON values
        bundle_bytes({"when": datetime(2024, 1, 1)})


def test_build_bundle_is_independent_of_the_shared_constant_parts():
    report = parse_reports((FIXTURES / "v23_tx_mllp.hl7").read_bytes())[0]
    labels = LabelSet(labels={"Edema": P}, labeler=INFO)
    before = build_validated_bundle(report, labels)
    mutated = build_bundle(report, labels)
    for entry in mutated["entry"]:
        resource = entry["resource"]
        for element in ("code", "category", "method", "valueCodeableConcept"):
            if isinstance(resource.get(element), dict):
                resource[element]["text"] = "changed"
    assert build_validated_bundle(report, labels) == before
    assert bundle_bytes(build_bundle_shared(report, labels)) == before


_BAD_VALUES = ["", " ", "a  b", " lead", "trail ", "two\nlines", "\x01", "2024-13-45", "1962-02-30", "20240412",
               "2024-04-12T25:00:00+00:00", "2024-04-12T09:30:00+15:00", "Patient/", "x" * 300, "urn:uuid:not a uuid",
               5, None, ["list"], {"dict": 1}]


def _variable_locations(node: object, spec: object, path: tuple = ()) -> list[tuple]:
    """Every (path to a value) that the validator treats as variable in this resource."""
    if isinstance(spec, validate_module._Leaf):
        return [path]
    out = []
    if isinstance(node, dict):
        for key, sub in spec.items():  # type: ignore[union-attr]
            if key in node:
                out += _variable_locations(node[key], sub, path + (key,))
    elif isinstance(node, list) and "*" in spec:  # type: ignore[operator]
        for i, value in enumerate(node):
            out += _variable_locations(value, spec["*"], path + (i,))  # type: ignore[index]
    return out


def _set(node: object, path: tuple, value: object) -> None:
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]


def _verdict(check) -> str:
    try:
        check()
        return "valid"
    except InvalidResource:
        return "invalid"


@pytest.mark.parametrize("profile", [OutputProfile(), OutputProfile(kind="enrich", placeholders=True)],
                         ids=["standalone", "enrich-placeholders"])
def test_skeleton_validation_agrees_with_full_validation_at_every_variable_path(profile):
    """Oracle: fhir.resources on the whole bundle. A warmed validator (every skeleton already cached) must give the
    same verdict for each bad value at each variable path of each resource type, and for structural changes."""
    report = parse_reports((FIXTURES / "v251_ft_escapes_crlf_bom.hl7").read_bytes())[0]
    labels = LabelSet(labels={"Edema": P, "Pneumonia": U, "Pneumothorax": N}, labeler=INFO)
    fast = BundleValidator()
    base = build_bundle(report, labels, profile=profile)
    fast.validate(base)
    compared = invalid = 0
    # standalone: Patient, Device, DR, 2 Observations, Provenance; enrich with placeholders: the conditionally
    # created Patient and DR (POST, ifNoneExist, no id), Device, 2 Observations, Provenance
    for index, entry in enumerate(base["entry"][:5] + base["entry"][-1:]):
        position = base["entry"].index(entry)
        resource_type = entry["resource"]["resourceType"]
        for location in _variable_locations(entry["resource"], validate_module._SPECS[resource_type]):
            for bad in _BAD_VALUES:
                bundle = json.loads(json.dumps(base))
                _set(bundle["entry"][position]["resource"], location, bad)
                full = _verdict(lambda: BundleValidator().validate(bundle, full=True))
                assert _verdict(lambda: fast.validate(bundle)) == full, (resource_type, location, bad)
                compared += 1
                invalid += full == "invalid"
        # structure: an unknown element, a required element removed, an element of the wrong kind
        required = {"Patient": None, "Device": None, "DiagnosticReport": "code", "Observation": "code",
                    "Provenance": "recorded"}
        for change in ("add", "remove", "kind"):
            bundle = json.loads(json.dumps(base))
            resource = bundle["entry"][position]["resource"]
            if change == "add":
                resource["notAnElement"] = "x"
            elif change == "remove":
                if required[resource_type] is None:
                    continue
                resource.pop(required[resource_type])
            else:
                resource["identifier" if resource_type == "Patient" else "id"] = {"value": "x"}
            assert _verdict(lambda: fast.validate(bundle)) == "invalid", (resource_type, change)
            assert _verdict(lambda: BundleValidator().validate(bundle, full=True)) == "invalid"
    # envelope and entries
    for mutate in (
        lambda b: b.__setitem__("timestamp", "yesterday"),
        lambda b: b.__setitem__("id", "has space"),
        lambda b: b["entry"][2].__setitem__("fullUrl", 7),
        lambda b: b["entry"][2]["request"].__setitem__("url", None),
        lambda b: b["entry"][0]["request"].__setitem__("ifNoneExist", 5),
        lambda b: b["entry"][0]["request"].__setitem__("ifNoneExist", ""),
    ):
        bundle = json.loads(json.dumps(base))
        mutate(bundle)
        full = _verdict(lambda: BundleValidator().validate(bundle, full=True))
        assert _verdict(lambda: fast.validate(bundle)) == full
        invalid += full == "invalid"
    assert compared >= 400
    assert invalid >= 200  # the bad values do fail: the comparison is not between two accepting validators


def test_values_orjson_writes_alike_do_not_share_a_cached_skeleton():
    """orjson writes None and NaN both as null: a skeleton validated with None must not vouch for NaN."""
    report = parse_reports((FIXTURES / "v23_tx_mllp.hl7").read_bytes())[0]
    fast = BundleValidator()
    bundle = build_bundle(report, LabelSet(labels={}, labeler=INFO))
    bundle["entry"][0]["resource"]["active"] = None  # absent: valid
    fast.validate(bundle)
    fast.validate(bundle)
    bundle["entry"][0]["resource"]["active"] = float("nan")
    assert _verdict(lambda: BundleValidator().validate(bundle, full=True)) == "invalid"
    assert _verdict(lambda: fast.validate(bundle)) == "invalid"


def test_observation_ids_in_one_pass_equal_one_by_one():
    from mappings.vocabulary import OBSERVATIONS

    report = parse_reports((FIXTURES / "v23_tx_mllp.hl7").read_bytes())[0]
    assert report.observation_ids(OBSERVATIONS) == [report.observation_id(name) for name in OBSERVATIONS]


def test_triage_fast_path_decides_as_the_study_facts_model():
    from connector.pipeline import study_facts, triage
    from mappings.scope import default_rules

    for path in sorted(FIXTURES.glob("*.hl7")):
        try:
            reports = parse_reports(path.read_bytes())
        except Exception:
            continue
        for report in reports:
            decision = default_rules().decide(study_facts(report))
            skip = triage(report)
            if not decision.in_scope and report.status != "X":
                assert skip is not None and skip.reason == decision.reason


def test_accession_key_equals_the_first_reports_key_on_every_message(tmp_path):
    """The MLLP gateway keys records with parse.accession_key (no reports built): the same key the connector gives
    the report's output, on every fixture and sample (and, with ../shared, every scout message)."""
    from benchmarks.scope_accuracy import scout_to_mllp
    from connector.hl7.framing import split_messages
    from connector.hl7.parse import accession_key
    from tests.hl7_fhir.conftest import SAMPLES, shared_root

    paths = sorted(FIXTURES.glob("*.hl7")) + sorted(SAMPLES.glob("*.hl7"))
    shared = shared_root()
    if shared is not None:
        scout_to_mllp(shared, tmp_path)
        paths += sorted(tmp_path.glob("*.hl7"))
    compared = 0
    for path in paths:
        for raw in split_messages(path.read_bytes()):
            try:
                reports = parse_reports(raw)
            except Exception:
                continue
            assert accession_key(raw) == reports[0].accession_key, path.name
            compared += 1
    assert compared >= 20
    assert accession_key(b"not hl7") is None and accession_key(b"MSH|^~\\&|A|B\rPID|1\r") is None


def test_accession_key_reads_through_batch_envelopes():
    """accession_key skips unframe's envelope scan when the message starts with MSH: envelope segments in front
    (FHS/BHS) or behind (BTS/FTS), framed or not, still give the bare message's key."""
    from connector.hl7.parse import accession_key

    raw = (FIXTURES / "v251_ft_escapes_crlf_bom.hl7").read_bytes()
    bare = accession_key(raw)
    assert bare is not None
    body = raw.replace(b"\xef\xbb\xbf", b"").strip()
    for wrapped in (b"FHS|^~\\&|RIS\rBHS|^~\\&|RIS\r" + body, body + b"\rBTS|1\rFTS|1\r",
                    b"\x0bFHS|^~\\&|RIS\r" + body + b"\rFTS|1\r\x1c\r", b"BHS|^~\\&\n" + body.replace(b"\r", b"\n")):
        assert accession_key(wrapped) == bare, wrapped[:20]


@pytest.mark.parametrize("warm", [True, False], ids=["known-shapes", "new-shapes"])
def test_a_bad_value_in_an_object_the_resources_share_is_caught(warm):
    """The validator walks an object several resources of a bundle share (the report-version extension, the
    accession identifier, the subject reference) once per bundle: a bad value there must still fail the bundle."""
    report = parse_reports((FIXTURES / "v251_ft_escapes_crlf_bom.hl7").read_bytes())[0]
    labels = LabelSet(labels={"Edema": P, "Pneumonia": U, "Pneumothorax": N}, labeler=INFO)
    for profile in (OutputProfile(), OutputProfile(kind="enrich")):
        fast = BundleValidator()
        if warm:
            fast.validate(build_bundle_shared(report, labels, profile=profile))
        mutations = (
            lambda obs: obs["extension"][0]["extension"][1].__setitem__("valueDateTime", "2024-13-45T99:00:00Z"),
            lambda obs: obs["identifier"][1].__setitem__("value", ""),
            lambda obs: obs["subject"].__setitem__("reference", ""),
        )
        for mutate in mutations:
            bundle = build_bundle_shared(report, labels, profile=profile)  # fresh: shared objects inside
            observations = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
            assert observations[0]["extension"] is observations[1]["extension"]  # the sharing under test
            mutate(observations[-1])
            with pytest.raises(InvalidResource):
                fast.validate(bundle)
            with pytest.raises(InvalidResource):
                BundleValidator().validate(bundle, full=True)


def test_decode_control_byte_check_matches_the_regex() -> None:
    """_decode skips its regex when no control byte is present: the byte table must name exactly the characters
    the regex removes, for every byte value, or a control character would reach the FHIR strings."""
    for value in range(256):
        char = bytes([value]).decode("latin-1")
        assert (bytes([value]) in parse_module._CONTROL_BYTES) == bool(parse_module._CONTROL.search(char)), value
    body = b"MSH|^~\\&|A\x01B|\x7fC\x0bD\x1f\rPID|1||\xe9\t\n"
    # \xe9 alone is not UTF-8: the undeclared character set falls back to ISO-8859-1.
    assert parse_module._decode(body) == "MSH|^~\\&|AB|CD\rPID|1||\xe9\t\n"
    assert parse_module._decode(b"MSH|^~\\&|plain\r") == "MSH|^~\\&|plain\r"

