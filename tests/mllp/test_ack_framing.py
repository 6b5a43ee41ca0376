"""Pure parts: the ACK builder and its MSH reader (read back with python-hl7), the frame decoder, the settings."""

from __future__ import annotations

import random

import hl7
import pytest
from pydantic import ValidationError

from connector.hl7 import ack
from connector.mllp.framing import Frame, FrameDecoder, Garbage, Oversize, Unterminated
from connector.settings import MllpSettings, Settings

from .gateway_proc import cli
from .messages import oru, with_msh


def test_reader_and_builder_never_raise_on_garbage() -> None:
    rng = random.Random(13)
    seeds = [b"", b"MSH", b"MSH|", b"MSH|^~\\&", b"MSH|^~\\&|||||||||", b"\x0bMSH|^~\\&|\x1c", b"MSH^^^^^^",
             b"\xef\xbb\xbfMSH|^~\\&|A|B|C|D|E||ORU^R01|1|P|2.5"]
    for _ in range(3000):
        data = rng.choice(seeds) + bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
        msh = ack.read_msh(data)
        for code in ("AA", "AE", "AR"):
            reply = ack.build_ack(msh, code, ack.AckError(ack.APPLICATION_INTERNAL_ERROR, "x") if code != "AA"
                                  else None)
            assert reply.startswith(b"MSH") and b"\rMSA" in reply and reply.endswith(b"\r")


def test_custom_separators_are_used_and_echoed() -> None:
    message = oru(1).replace(b"|", b"#").replace(b"^", b"$")
    msh = ack.read_header(message)
    assert msh.separator == b"#" and msh.encoding == b"$~\\&" and msh.control_id == b"CTL0000000001"
    reply = ack.build_ack(msh, "AE", ack.AckError(ack.APPLICATION_INTERNAL_ERROR, "message not stored"))
    parsed = hl7.parse(reply.decode())  # python-hl7 takes the separators from our MSH
    assert str(parsed.segment("MSH")[9]) == "ACK$R01$ACK"
    assert str(parsed.segment("MSA")[1]) == "AE" and str(parsed.segment("MSA")[2]) == "CTL0000000001"
    assert str(parsed.segment("ERR")[3]) == "207$Application internal error$HL70357"


def test_ack_detail_cannot_break_the_segment() -> None:
    reply = ack.build_ack(ack.read_msh(oru(1)), "AR", ack.AckError(100, "a|b^c~d\\e&f\rg"))
    err = next(s for s in reply.split(b"\r") if s.startswith(b"ERR"))
    assert err.endswith(b"a b c d e f g") and err.count(b"|") == 8


@pytest.mark.parametrize(("msh15", "wanted"), [
    ("", {"AA": True, "AE": True, "AR": True}),  # MSH-16 alone selects enhanced mode; empty MSH-15 means AL
    ("AL", {"AA": True, "AE": True, "AR": True}),
    ("NE", {"AA": False, "AE": False, "AR": False}),
    ("ER", {"AA": False, "AE": True, "AR": True}),
    ("SU", {"AA": True, "AE": False, "AR": False}),
])
def test_enhanced_mode_conditions(msh15: str, wanted: dict[str, bool]) -> None:
    msh = ack.read_header(with_msh(oru(1), f15=msh15, f16="AL"))
    assert ack.ack_mode(msh) == "enhanced"
    for code, expected in wanted.items():
        assert ack.ack_wanted(msh, code) is expected  # type: ignore[arg-type]
        assert ack.ack_code(msh, code) == {"AA": "CA", "AE": "CE", "AR": "CR"}[code]  # type: ignore[arg-type]
    original = ack.read_header(oru(1))
    assert ack.ack_mode(original) == "original" and ack.ack_code(original, "AE") == "AE"


def test_frame_decoder_any_split_gives_the_same_frames() -> None:
    stream = b"\x0b" + oru(1) + b"\x1c\r" + b"\r\n" + b"\x0b" + oru(2) + b"\x1c\r"
    for cut in range(1, len(stream)):
        decoder = FrameDecoder(1_048_576)
        events = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert events == [Frame(oru(1)), Frame(oru(2))], cut
        assert decoder.close() is None


def test_frame_decoder_faults() -> None:
    decoder = FrameDecoder(2048, head_bytes=1024)
    big = b"\x0b" + oru(1) + b"X" * 5000 + b"\x1c\r"
    events = decoder.feed(b"junk" + big[:3000]) + decoder.feed(big[3000:]) + decoder.feed(b"\x0b" + oru(2))
    assert events[0] == Garbage(4)
    assert isinstance(events[1], Oversize) and events[1].size == len(big) - 3 and len(events[1].head) == 1024
    assert events[1].head == (oru(1) + b"X" * 5000)[:1024]
    assert len(events) == 2 and decoder.in_frame
    tail = decoder.feed(b"\x0b" + oru(3) + b"\x1c")
    assert tail == [Unterminated(oru(2)[:1024], len(oru(2))), Frame(oru(3))]  # FS alone (no CR) still ends a frame
    assert decoder.feed(b"\x0bpartial") == [] and decoder.close() == Unterminated(b"partial", 7)


def test_mllp_settings_errors_name_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="prot"):
        MllpSettings(prot=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="'10.0.0.300' is not an IP address"):
        MllpSettings(allowed_peers="10.0.0.0/8, 10.0.0.300")
    assert MllpSettings(allowed_peers="10.0.0.0/8, ::1").allowed_peers == ["10.0.0.0/8", "::1"]
    with pytest.raises(ValidationError, match="tls_client_auth needs"):
        MllpSettings(tls_client_auth="required")
    monkeypatch.setenv("RADLABEL_MLLP__PORT", "3000")
    monkeypatch.setenv("RADLABEL_MLLP__NON_ORU", "reject")
    settings = Settings()
    assert (settings.mllp.port, settings.mllp.non_oru) == (3000, "reject")
    assert Settings(mllp={"port": 4000}).mllp.non_oru == "reject"  # an explicit value beats env, per key


def test_cli_rejects_bad_settings_in_one_line() -> None:
    result = cli("mllp", "--bootstrap-servers", "127.0.0.1:1", "--non-oru", "maybe", "--http-port", "-1")
    assert result.returncode == 2
    assert "--non-oru" in result.stderr and "Traceback" not in result.stderr  # named as the user wrote it


def test_frame_decoder_single_frame_reads_match_the_stream_path() -> None:
    """A read holding exactly one frame takes a shortcut; fed in two pieces the same bytes take the general loop.
    Both must give the same events, at the size limit, past it, and with stray VT / FS bytes inside."""
    body = oru(1)
    limit = len(body)
    reads = [
        b"\x0b" + body + b"\x1c\r",  # the usual read
        b"\x0b" + body + b"X" + b"\x1c\r",  # one byte over the limit
        b"\x0b" + body[:100] + b"\x0b" + body[100:] + b"\x1c\r",  # a restart inside: Unterminated, then a frame
        b"\x0b" + body[:100] + b"\x1c\r" + body[100:] + b"\x1c\r",  # an FS inside: a frame, then garbage
        b"\x0b" + body + b"\x1c\x1c\r",  # FS twice
        b"\x0b\x1c\r",  # an empty frame
        b"junk\x0b" + body + b"\x1c\r",
    ]
    for data in reads:
        whole = FrameDecoder(limit, head_bytes=64)
        pieces = FrameDecoder(limit, head_bytes=64)
        got = whole.feed(data)
        cut = data.index(b"\x0b") + 1  # just after the first VT: the rest of the frame arrives in a second read
        assert got == pieces.feed(data[:cut]) + pieces.feed(data[cut:]), data[:40]
        assert whole.in_frame == pieces.in_frame
    assert FrameDecoder(limit).feed(reads[0]) == [Frame(body)]
    assert isinstance(FrameDecoder(limit).feed(reads[1])[0], Oversize)


def test_ack_timestamp_is_now_in_hl7_dtm() -> None:
    """MSH-7 of an ACK: the current UTC time to 1/10,000 s with its offset (formatted once per second, then
    reused: the value must still move within the second and match the clock)."""
    import re
    import time
    from datetime import datetime, timezone

    before = time.time()
    stamps = [ack._stamp_now() for _ in range(3)]
    after = time.time()
    for stamp in stamps:
        assert re.fullmatch(rb"\d{14}\.\d{4}\+0000", stamp), stamp
        when = datetime.strptime(stamp[:19].decode(), "%Y%m%d%H%M%S.%f").replace(tzinfo=timezone.utc).timestamp()
        assert before - 0.001 <= when <= after
    built = ack.build_ack(ack.read_header(oru(1)), "AA")
    assert re.match(rb"MSH\|\^~\\&\|[^|]*\|[^|]*\|[^|]*\|[^|]*\|\d{14}\.\d{4}\+0000\|", built)


def test_received_stamp_from_epoch_matches_datetime_isoformat() -> None:
    """The gateway stamps `received-at` from epoch seconds with the date part cached per second: it must write
    exactly what datetime.isoformat(timespec="milliseconds") writes for the same instant, also across second
    boundaries and at rounding edges."""
    import random
    from datetime import datetime, timezone

    from connector.mllp.records import received_stamp

    rng = random.Random(7)
    instants = [rng.uniform(0, 4e9) for _ in range(20_000)]
    instants += [int(t) + frac for t in instants[:2_000] for frac in (0.0, 0.0009995, 0.9994999, 0.9999996)]
    for when in instants:
        assert received_stamp(when) == received_stamp(datetime.fromtimestamp(when, timezone.utc)), when


def test_ack_control_ids_are_unique_and_fit_msh10() -> None:
    ids = [ack.new_control_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 20 and i.isalnum() and i.upper() == i for i in ids)
