from __future__ import annotations

from connector.hl7.framing import unframe
from connector.pipeline import split_messages

MSG_A = b"MSH|^~\\&|A|FAC|||20240101||ORU^R01|1|P|2.4\rPID|1||X\rOBR|1||ACC1\rOBX|1|TX|x||text||||||F"
MSG_B = MSG_A.replace(b"|1|P|", b"|2|P|").replace(b"ACC1", b"ACC2")


def test_mllp_frames_are_split_and_kept_verbatim():
    data = b"\x0b" + MSG_A + b"\r\x1c\r" + b"\r\n" + b"\x0b" + MSG_B + b"\x1c\r"
    chunks = split_messages(data)
    assert chunks == [b"\x0b" + MSG_A + b"\r\x1c\r", b"\x0b" + MSG_B + b"\x1c\r"]


def test_plain_er7_split_on_msh_for_every_line_ending():
    for sep in (b"\r", b"\n", b"\r\n"):
        a = MSG_A.replace(b"\r", sep) + sep
        b = MSG_B.replace(b"\r", sep) + sep
        chunks = split_messages(a + b)
        assert len(chunks) == 2
        assert [unframe(c).body for c in chunks] == [MSG_A, MSG_B]


def test_bom_and_trailing_whitespace_are_not_messages():
    chunks = split_messages(b"\xef\xbb\xbf" + MSG_A + b"\n\n  \n")
    assert len(chunks) == 1
    assert unframe(chunks[0]).body == MSG_A


def test_stray_bytes_between_frames_are_kept_as_their_own_chunk():
    data = b"log line\n\x0b" + MSG_A + b"\x1c\rjunk\x0b" + MSG_B + b"\x1c\r"
    chunks = split_messages(data)
    assert chunks[0] == b"log line\n"
    assert chunks[2] == b"junk"
    assert len(chunks) == 4


def test_frame_without_end_block_is_marked_truncated():
    chunks = split_messages(b"\x0b" + MSG_A + b"\x1c\r\x0b" + MSG_B[:40])
    assert len(chunks) == 2
    assert not unframe(chunks[0]).truncated
    assert unframe(chunks[1]).truncated


def test_batch_envelope_segments_are_dropped():
    data = b"FHS|^~\\&|A\rBHS|^~\\&|A\r" + MSG_A + b"\rBTS|1\rFTS|1\r"
    chunks = split_messages(data)
    bodies = [unframe(c).body for c in chunks]
    assert MSG_A in bodies
    assert all(not body.startswith((b"BTS", b"FTS")) and b"\rBTS" not in body for body in bodies)


def test_empty_input_gives_no_messages():
    assert split_messages(b"") == []
    assert split_messages(b" \r\n") == []
