"""Hostile HL7: input built to hurt the parser is a rejection with a reason, never a crash, a memory blow-up, an
``invalid-fhir`` dead letter or a silent loss (issue 11)."""

from __future__ import annotations

import base64
import json
import resource
from datetime import timezone

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.hl7.limits import ParseLimits
from connector.pipeline import MessageRejected, convert_reports, parse_reports, split_messages

from tests.hl7_fhir.conftest import fixture_bytes

GOOD = fixture_bytes("v23_tx_mllp.hl7")
runner = CliRunner()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _convert(report) -> None:
    from mappings.labels import LabelerInfo, LabelSet

    convert_reports([report], [LabelSet(labeler=LabelerInfo(name="t", version="1"))])


def _rejected(raw: bytes, **kwargs) -> MessageRejected:
    with pytest.raises(MessageRejected) as info:
        parse_reports(raw, **kwargs)
    return info.value


# Each escape form with a repeat count that python-hl7 would expand to gigabytes or overflow on, in the field
# the issue found it in (OBX-5 report text, MSH-9 type, MSH-12 version: the MSH ones used to be read outside
# the parser's try).
BOMBS = {
    "sp-obx5": (b"INDICATION: Fever.", b"INDICATION: Fever.\\.sp1000000000\\"),
    "br-msh9": (b"|ORU^R01|", b"|ORU\\.br100000000000000000000\\^R01|"),
    "ti-msh12": (b"|P|2.3", b"|P|2.3\\.ti1000000000\\"),
    "in-obx5": (b"No pleural effusion.", b"No pleural\\.in 999999999\\ effusion."),
    "sk-pid5": (b"PEMBERTON", b"PEMBER\\.sk1_000_000_000\\TON"),  # int() reads "_" and blanks: so must the check
    "ce-obr4": (b"XR CHEST 1 VIEW", b"XR CHEST\\.ce99999999999\\ 1 VIEW"),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_escape_repeat_bombs_are_rejected_with_a_reason(name):
    old, new = BOMBS[name]
    raw = GOOD.replace(old, new, 1)
    assert raw != GOOD
    before = _peak_rss_mib()
    error = _rejected(raw)
    assert error.reason == "malformed"
    assert "hl7.max_escape_repeat" in error.detail  # says which setting to raise if the count is legitimate
    assert _peak_rss_mib() - before < 64  # nothing was expanded


def test_many_small_repeats_are_bounded_per_message():
    text = b"\\.sp100\\" * 1000  # each within the repeat limit; 100,000 line breaks together
    error = _rejected(GOOD.replace(b"INDICATION: Fever.", b"INDICATION: Fever." + text, 1))
    assert error.reason == "malformed" and "hl7.max_escape_expansion" in error.detail


def test_repeats_within_the_limits_are_expanded_as_before():
    (report,) = parse_reports(GOOD.replace(b"INDICATION: Fever.", b"INDICATION:\\.sk3\\Fever.", 1))
    assert report.text.splitlines()[0] == "INDICATION:   Fever."


def test_repeat_limit_is_a_setting():
    raw = GOOD.replace(b"INDICATION: Fever.", b"INDICATION:\\.sk3\\Fever.", 1)
    assert _rejected(raw, limits=ParseLimits(max_escape_repeat=2)).reason == "malformed"


def test_huge_hex_escape_is_bounded_and_control_characters_never_reach_fhir():
    payload = b"\\X" + b"41" * 400_000 + b"00070B" + b"\\"  # 800 KB of hex, ending in NUL/BEL/VT
    raw = GOOD.replace(b"No pleural effusion.", payload, 1)
    before = _peak_rss_mib()
    (report,) = parse_reports(raw)
    assert _peak_rss_mib() - before < 256
    assert "A" * 1000 in report.text
    assert not any(ch in report.text for ch in "\x00\x07\x0b")
    _convert(report)  # FHIR validation accepts the text


def test_oversize_message_is_rejected_before_parsing():
    raw = GOOD.replace(b"No pleural effusion.", b"x" * 2_000_000, 1)
    error = _rejected(raw)
    assert error.reason == "oversize" and "hl7.max_message_bytes" in error.detail


@pytest.mark.parametrize("field", ["MSH-9", "MSH-12", "MSH-7", "MSH-10", "OBR-3", "PID-3"])
def test_any_parser_exception_on_any_field_is_a_rejection(field, monkeypatch):
    """Whatever python-hl7 raises while a field is read becomes a "malformed" rejection (MSH fields were read
    outside the parser's try, so an exception there killed `radlabel convert`)."""
    import connector.hl7.parse as parse_module

    number = int(field.split("-")[1])

    def exploding(container, text):
        raise OverflowError("boom")

    monkeypatch.setattr(parse_module, "hl7_unescape", exploding)
    segment, sep = field.split("-")[0].encode(), b"|"
    lines = GOOD.split(b"\r")
    for i, line in enumerate(lines):
        if line.lstrip(b"\x0b").startswith(segment):
            fields = line.split(sep)
            index = number - 1 if segment == b"MSH" else number
            fields[index] = fields[index] + b"\\H\\"  # any escape makes the field go through unescape
            lines[i] = sep.join(fields)
            break
    error = _rejected(b"\r".join(lines))
    assert error.reason == "malformed" and "OverflowError" in error.detail


@pytest.mark.parametrize("offset", [b"+1500", b"-1401", b"+0960", b"+9999"])
def test_out_of_range_zone_offsets_are_unreadable_times_not_invalid_fhir(offset):
    msh7, obr7, obr22 = b"20230102081500", b"20230102071000", b"20230102080000"
    (report,) = parse_reports(GOOD.replace(obr7, obr7 + offset, 1))
    assert report.observation_time is None
    _convert(report)  # a valid bundle, not an invalid-fhir dead letter
    (report,) = parse_reports(GOOD.replace(obr22, obr22 + offset, 1))
    assert report.report_time.hour == 8 and report.report_time.minute == 15  # falls back to MSH-7
    _convert(report)
    (report,) = parse_reports(GOOD.replace(obr22, b"", 1).replace(msh7, msh7 + offset, 1))
    assert report.report_time is None
    _convert(report)


def test_largest_real_offsets_are_kept():
    (report,) = parse_reports(GOOD.replace(b"20230102071000", b"20230102071000+1400", 1))
    assert report.observation_time.utcoffset().total_seconds() == 14 * 3600
    (report,) = parse_reports(GOOD.replace(b"20230102071000", b"20230102071000-1200", 1), default_tz=timezone.utc)
    assert report.observation_time.utcoffset().total_seconds() == -12 * 3600


def test_a_run_of_garbage_is_one_chunk():
    noise = bytes((i * 37 + 11) % 256 for i in range(65_536))  # every byte value, start blocks included
    assert noise.count(b"\x0b") > 200
    chunks = split_messages(noise)
    assert chunks == [noise]
    # Noise around a real message stays noise on each side, the message stays itself.
    chunks = split_messages(noise + GOOD + noise)
    assert len(chunks) == 3 and chunks[1].startswith(b"\x0b") and b"FIX0001" in chunks[1]
    assert b"".join(chunks) == noise + GOOD + noise  # nothing lost


@pytest.mark.parametrize("content", [b"", b" \r\n\t", b"\xbb", b"\xef", b"\xef\xbb\xbf", b"\x0b"])
def test_every_file_is_accounted_for_by_convert(tmp_path, content):
    source = tmp_path / "input.hl7"
    source.write_bytes(content)
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", str(source), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["bundles"] + summary["rejected"] == 1
    (record,) = [json.loads(p.read_text()) for p in (out / "dead-letter").glob("*.json")]
    assert base64.b64decode(record["raw_base64"]) == content
    assert record["reason"] in ("empty", "not-hl7")


def test_a_lone_bom_byte_is_content_not_a_bom():
    assert split_messages(b"\xbb") == [b"\xbb"]
    assert split_messages(b"\xef\xbb\xbf\r\n") == []


def test_limits_and_sender_zone_come_from_the_settings_file(tmp_path):
    """hl7.* settings reach `convert`: a larger repeat limit lets a long escape through, and zone-less times are
    read in the sender's zone."""
    source = tmp_path / "in.hl7"
    source.write_bytes(GOOD.replace(b"INDICATION: Fever.", b"INDICATION: Fever.\\.sk150\\", 1))
    config = tmp_path / "radlabel.yaml"
    out = tmp_path / "out"

    def convert() -> dict:
        result = runner.invoke(app, ["convert", str(source), "--out", str(out), "--config", str(config)],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout.strip().splitlines()[-1])

    config.write_text("hl7:\n  max_escape_repeat: 100\n")
    assert convert()["rejected_by_reason"] == {"malformed": 1}
    config.write_text("hl7:\n  max_escape_repeat: 200\n  sender_timezone: America/New_York\n")
    assert convert()["bundles"] == 1
    (bundle_file,) = out.glob("*.json")
    bundle = json.loads(bundle_file.read_text())
    report = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    assert report["effectiveDateTime"] == "2023-01-02T07:10:00-05:00"


def test_stream_path_uses_the_same_limits_and_zone():
    from connector.settings import HL7Settings, KafkaSettings
    from connector.stream.process import InputRecord, Outcome, parse_record

    bomb = GOOD.replace(b"INDICATION: Fever.", b"\\.sp1000000000\\", 1)
    outcome = parse_record(InputRecord("t", 0, 1, None, bomb), KafkaSettings())
    assert isinstance(outcome, Outcome) and outcome.dead_letter.reason == "malformed"
    (report,) = parse_record(InputRecord("t", 0, 2, None, GOOD), KafkaSettings(),
                             HL7Settings(sender_timezone="Asia/Kolkata"))
    assert report.observation_time.utcoffset().total_seconds() == 5.5 * 3600
