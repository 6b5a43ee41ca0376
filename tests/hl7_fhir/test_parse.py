from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from connector.pipeline import MessageRejected, parse_reports, split_messages

from tests.hl7_fhir.conftest import fixture_bytes


def reports_of(name: str):
    chunks = split_messages(fixture_bytes(name))
    assert len(chunks) == 1
    return parse_reports(chunks[0])


def rejection(name: str) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        for chunk in split_messages(fixture_bytes(name)):
            parse_reports(chunk)
    return info.value


def test_v23_tx_lines_mllp():
    (report,) = reports_of("v23_tx_mllp.hl7")
    assert report.hl7_version == "2.3"
    assert report.message_control_id == "FIX0001"
    assert report.sending_facility == "FIXHOSP"
    assert (report.accession, report.placer, report.filler) == ("ACC20001", "PL20001", "ACC20001")
    assert (report.procedure_code, report.procedure_display, report.procedure_system) == (
        "71045",
        "XR CHEST 1 VIEW",
        "CPT",
    )
    assert report.status == "F"
    assert report.observation_time == datetime(2023, 1, 2, 7, 10, tzinfo=timezone.utc)
    assert report.report_time == datetime(2023, 1, 2, 8, 0, tzinfo=timezone.utc)
    # one OBX per line, order kept
    assert report.text.splitlines()[2] == "FINDINGS: Patchy right lower lobe opacity. Heart size normal."
    assert report.sections == {
        "indication": "Fever.",
        "comparison": "None.",
        "findings": "Patchy right lower lobe opacity. Heart size normal.\nNo pleural effusion.",
        "impression": "Right lower lobe pneumonia.",  # the sign-off line is not part of it
    }
    patient = report.patient
    assert [(i.value, i.authority, i.type_code) for i in patient.identifiers] == [
        ("MRN200001", "FIXHOSP", "MR"),
        ("555-11-2222", "SSA", "SS"),
    ]
    assert (patient.family, patient.given, patient.birth_date, patient.sex) == (
        "PEMBERTON",
        ("OLIVE", "R"),
        date(1960, 1, 1),
        "F",
    )


def test_v24_tilde_repetitions_are_line_breaks_and_obx_status_is_used():
    (report,) = reports_of("v24_tx_tilde_lf.hl7")
    assert report.hl7_version == "2.4"
    assert report.text.split("\n") == [
        "CLINICAL HISTORY: Chest pain.",
        "",
        "FINDINGS:",
        "Mild cardiomegaly.",
        "Lungs clear.",
        "",
        "IMPRESSION:",
        "Mild cardiomegaly.",
    ]
    assert report.sections["indication"] == "Chest pain."
    assert report.sections["findings"] == "Mild cardiomegaly.\nLungs clear."
    # OBR-25 is empty in this message: the OBX-11 result status decides.
    assert report.status == "F"
    assert report.placer == "PL20002"


def test_v251_ft_escapes_bom_crlf_timezone_and_coded_sections():
    (report,) = reports_of("v251_ft_escapes_crlf_bom.hl7")
    assert report.hl7_version == "2.5.1"
    lines = report.text.split("\n")
    # LOINC-coded OBX without a heading get one written in, so the text keeps its structure
    assert lines[0] == "FINDINGS:"
    assert lines[1] == "Escapes: a&b c|d e^f g~h i\\j A."
    assert lines[2:5] == ["Second line.", "", "No pneumothorax."]
    assert report.sections["impression"] == "No acute disease."
    assert report.sections["findings"].startswith("Escapes: a&b")
    plus_one = timezone(timedelta(hours=1))
    assert report.observation_time == datetime(2023, 3, 4, 11, 0, tzinfo=plus_one)
    assert report.patient.identifiers[0].authority_oid == "1.2.3.4.5"
    assert report.patient.family == "DE LA CRUZ"


def test_v27_st_lines_with_section_codes_and_word_status():
    (report,) = reports_of("v27_st_lines.hl7")
    assert report.hl7_version == "2.7"
    assert report.status == "F"  # "Final"
    assert report.sections == {
        "findings": "Left chest tube in place. Small left pneumothorax.",
        "impression": "Small left pneumothorax with chest tube.",
    }
    assert report.observation_time == datetime(2023, 4, 5, 13, 0, tzinfo=timezone.utc)


def test_default_timezone_applies_only_to_timestamps_without_offset():
    eastern = timezone(timedelta(hours=-5))
    (report,) = parse_reports(split_messages(fixture_bytes("v23_tx_mllp.hl7"))[0], default_tz=eastern)
    assert report.report_time == datetime(2023, 1, 2, 8, 0, tzinfo=eastern)
    (offset,) = parse_reports(split_messages(fixture_bytes("v251_ft_escapes_crlf_bom.hl7"))[0], default_tz=eastern)
    assert offset.report_time.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize("name", ["latin1_declared.hl7", "latin1_undeclared.hl7"])
def test_latin1_bytes_decode(name):
    (report,) = reports_of(name)
    assert report.patient.family == "MÜLLER"
    assert report.patient.given == ("JOSÉ",)
    assert report.procedure_display == "Thorax Röntgen"
    assert "Herzgröße" in report.text


def test_framing_and_line_endings_do_not_change_the_report():
    base = fixture_bytes("v23_tx_mllp.hl7")
    body = base[1:-2]  # drop 0x0B ... 0x1C 0x0D
    (expected,) = parse_reports(base)
    variants = [
        body,
        body.replace(b"\r", b"\n"),
        body.replace(b"\r", b"\r\n"),
        b"\xef\xbb\xbf" + body.replace(b"\r", b"\n"),
        b"\x0b\xef\xbb\xbf" + body + b"\x1c\r",
    ]
    for variant in variants:
        assert parse_reports(variant) == [expected]


def test_two_obr_give_two_reports_with_their_own_ids():
    first, second = reports_of("two_obr.hl7")
    assert (first.accession, second.accession) == ("ACC20009", "ACC20010")
    assert (first.obr_index, second.obr_index) == (1, 2)
    assert first.text == "IMPRESSION: Cardiomegaly."
    assert second.text == "IMPRESSION: Acute left 7th rib fracture."
    assert second.placer is None
    assert first.patient == second.patient
    assert len({first.diagnostic_report_id, second.diagnostic_report_id}) == 2
    assert len({first.bundle_id, second.bundle_id}) == 2


def test_corrected_version_keeps_resource_ids_and_gets_a_new_bundle_id():
    (prelim,) = reports_of("corrected_1_prelim.hl7")
    (corrected,) = reports_of("corrected_2_corrected.hl7")
    (cancelled,) = reports_of("corrected_3_cancelled.hl7")
    assert (prelim.status, corrected.status, cancelled.status) == ("P", "C", "X")
    assert prelim.accession_key == corrected.accession_key == cancelled.accession_key
    assert prelim.diagnostic_report_id == corrected.diagnostic_report_id
    assert prelim.observation_id("Pleural Effusion") == corrected.observation_id("Pleural Effusion")
    assert prelim.observation_id("Pleural Effusion") != prelim.observation_id("Atelectasis")
    assert len({prelim.bundle_id, corrected.bundle_id, cancelled.bundle_id}) == 3
    assert cancelled.text == ""  # a cancellation may come without text


def test_placer_number_is_the_accession_when_filler_is_missing():
    (report,) = reports_of("placer_only.hl7")
    assert (report.accession, report.filler, report.hl7_version) == ("PL20011", None, "2.8")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("not_oru_adt.hl7", "not-oru"),
        ("no_report_text.hl7", "no-report-text"),
        ("truncated_frame.hl7", "truncated"),
        ("truncated_no_obr.hl7", "truncated"),
        ("unsupported_version.hl7", "unsupported-version"),
        ("utf8_declared_but_latin1.hl7", "encoding"),
        ("no_accession.hl7", "no-accession"),
        ("garbage.bin", "not-hl7"),
    ],
)
def test_rejections_are_typed_and_phi_free(name, reason):
    error = rejection(name)
    assert error.reason == reason
    raw = fixture_bytes(name).decode("latin-1")
    # The detail must never quote message content (names, identifiers, text).
    for token in ("MRN2", "ACC2", "PL2", "FIX00", "ADTONLY", "CUTOFF", "NOTEXT", "OLDVERSION", "KOVAC", "Glucose"):
        if token in raw:
            assert token not in error.detail


def test_garbage_never_crashes_and_every_chunk_is_rejected():
    chunks = split_messages(fixture_bytes("garbage.bin"))
    assert chunks
    for chunk in chunks:
        with pytest.raises(MessageRejected) as info:
            parse_reports(chunk)
        assert info.value.reason in ("not-hl7", "empty")


def test_empty_frame_is_rejected_as_empty():
    with pytest.raises(MessageRejected) as info:
        parse_reports(b"\x0b\r\x1c\r")
    assert info.value.reason == "empty"


def test_unknown_charset_is_an_encoding_rejection():
    raw = fixture_bytes("v27_st_lines.hl7").replace(b"|P|2.7", b"|P|2.7||||||ISO IR87")
    with pytest.raises(MessageRejected) as info:
        parse_reports(raw)
    assert info.value.reason == "encoding"


@pytest.mark.parametrize(
    ("obr25", "expected"),
    [("P", "P"), ("F", "F"), ("C", "C"), ("X", "X"), ("Prelim", "P"), ("Wet Read", "P"), ("Corrected", "C")],
)
def test_status_mapping(obr25, expected):
    raw = fixture_bytes("v23_tx_mllp.hl7").replace(b"|20230102080000|||F", b"|20230102080000|||" + obr25.encode())
    (report,) = parse_reports(raw)
    assert report.status == expected


def test_cwe_section_headers_around_text():
    raw = (
        b"MSH|^~\\&|FIXRIS|FIXHOSP|||20230101||ORU^R01|FIXCWE|P|2.6\r"
        b"PID|1||MRN1^^^FIXHOSP^MR||HEADER^TEST\r"
        b"OBR|1||ACCCWE|71045^XR CHEST^CPT|||20230101|||||||||||||||20230101|||F\r"
        b"OBX|1|CWE|SEC^Section^L||^FINDINGS||||||F\r"
        b"OBX|2|TX|TXT^Text^L||Small left effusion.||||||F\r"
        b"OBX|3|CE|SEC^Section^L||IMPRESSION^IMPRESSION||||||F\r"
        b"OBX|4|TX|TXT^Text^L||Left effusion.||||||F\r"
    )
    (report,) = parse_reports(raw)
    assert report.text == "FINDINGS:\nSmall left effusion.\nIMPRESSION:\nLeft effusion."
    assert report.sections == {"findings": "Small left effusion.", "impression": "Left effusion."}
    only_coded = raw.replace(b"OBX|2|TX", b"OBX|2|NM").replace(b"OBX|4|TX", b"OBX|4|NM")
    with pytest.raises(MessageRejected) as info:
        parse_reports(only_coded)
    assert info.value.reason == "no-report-text"


def test_control_characters_are_dropped_so_fhir_strings_stay_valid():
    raw = fixture_bytes("v23_tx_mllp.hl7").replace(b"Patchy right", b"Patchy\x01 right\x7f").replace(b"OLIVE", b"OL\x00IVE")
    (report,) = parse_reports(raw)
    assert "Patchy right lower lobe opacity" in report.text
    assert report.patient.given[0] == "OLIVE"


def test_sections_with_bare_headings_and_sub_headings():
    text = (
        "EXAMINATION: Chest PA/lateral~TECHNIQUE: Two views.~FINDINGS~LUNGS: Clear.~HEART:~Normal size."
        "~IMPRESSION~No acute disease.~RECOMMENDATION: None."
    )
    raw = fixture_bytes("v24_tx_tilde_lf.hl7").replace(
        b"CLINICAL HISTORY: Chest pain.~~FINDINGS:~Mild cardiomegaly.~Lungs clear.~~IMPRESSION:~Mild cardiomegaly.",
        text.encode(),
    )
    (report,) = parse_reports(raw)
    assert report.sections == {"findings": "LUNGS: Clear.\nHEART:\nNormal size.", "impression": "No acute disease."}


def test_mutated_messages_either_parse_or_are_rejected():
    """Cut and corrupt real-shaped messages: the outcome is always reports or a typed rejection, never a crash."""
    import random

    from tests.hl7_fhir.conftest import FIXTURES

    rng = random.Random(20240601)
    sources = [p.read_bytes() for p in sorted(FIXTURES.glob("*.hl7"))]
    outcomes = {"parsed": 0, "rejected": 0}
    for source in sources:
        cuts = [source[:n] for n in range(0, len(source), max(1, len(source) // 25))]
        flips = []
        for _ in range(25):
            data = bytearray(source)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.choice(b"|^~\\&\r\n\x0b\x1c\x00\xff" + bytes(range(32, 127)))
            flips.append(bytes(data))
        for data in cuts + flips:
            for chunk in split_messages(data):
                try:
                    parse_reports(chunk)
                    outcomes["parsed"] += 1
                except MessageRejected as exc:
                    assert exc.reason and exc.detail
                    outcomes["rejected"] += 1
    assert outcomes["parsed"] > 100 and outcomes["rejected"] > 100


def test_broken_escapes_never_put_report_text_in_logs(caplog, capsys):
    import logging

    raw = fixture_bytes("v251_ft_escapes_crlf_bom.hl7").replace(b"a\\T\\b", b"a\\Q SECRETWORD\\b").replace(
        b"\\X41\\", b"\\XZZ SECRETWORD\\"
    )
    with caplog.at_level(logging.DEBUG):
        (report,) = parse_reports(raw)
    assert "SECRETWORD" not in caplog.text
    captured = capsys.readouterr()
    assert "SECRETWORD" not in captured.err and "SECRETWORD" not in captured.out
    assert "Escapes: a" in report.text


def test_malformed_escape_keeps_the_text():
    raw = fixture_bytes("v251_ft_escapes_crlf_bom.hl7").replace(b"\\.br\\Second", b"\\.brXSecond")
    (report,) = parse_reports(raw)
    assert "Second line." in report.text
