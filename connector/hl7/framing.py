"""Split a byte stream (a file, a socket buffer, a Kafka record) into HL7 v2 messages.

Handles MLLP framing (0x0B ... 0x1C 0x0D) present or absent, a UTF-8 BOM, and CR / LF / CRLF segment
terminators. Framing is byte-level so it works before the character set is known. Each returned chunk is the
message's bytes as they were in the input (framing included), so a rejected message can be dead-lettered
unchanged; :func:`unframe` turns a chunk into ER7 with CR terminators for the parser.
"""

from __future__ import annotations

import re

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
BOM = b"\xef\xbb\xbf"

# A segment that starts a message in plain (unframed) ER7: MSH at the start of the data or of a line.
_MSH_AT_LINE_START = re.compile(rb"(?:^|(?<=[\r\n]))(?:\xef\xbb\xbf)?MSH(?=[^A-Za-z0-9\r\n])")
# Batch/file envelope segments carry no report; they are dropped from plain ER7 input.
_ENVELOPE = re.compile(rb"^(?:FHS|BHS|BTS|FTS)[^A-Za-z0-9]")
_HAS_ENVELOPE = re.compile(rb"(?:^|\r)(?:FHS|BHS|BTS|FTS)[^A-Za-z0-9\r]")


def split_messages(data: bytes) -> list[bytes]:
    """One chunk per message. Whitespace-only gaps are dropped; any other stray bytes between messages become
    their own chunk, so they are rejected (and kept) instead of being silently lost."""
    if START_BLOCK in data:
        return _split_mllp(data)
    return _split_plain(data)


def _split_mllp(data: bytes) -> list[bytes]:
    chunks: list[bytes] = []
    pos = 0
    while pos < len(data):
        start = data.find(START_BLOCK, pos)
        if start < 0:
            _keep_if_content(chunks, data[pos:])
            break
        _keep_if_content(chunks, data[pos:start])
        end = data.find(END_BLOCK, start + 1)
        nxt = data.find(START_BLOCK, start + 1)
        if end < 0 or (0 <= nxt < end):
            # Start block without its end block: a truncated frame. Keep it to the next start (or the end).
            stop = nxt if nxt >= 0 else len(data)
            chunks.append(data[start:stop])
            pos = stop
            continue
        stop = end + 1
        if data[stop : stop + 1] == b"\r":
            stop += 1
        chunks.append(data[start:stop])
        pos = stop
    return chunks


def _split_plain(data: bytes) -> list[bytes]:
    starts = [m.start() for m in _MSH_AT_LINE_START.finditer(data)]
    if not starts:
        return [data] if data.strip(b" \t\r\n" + BOM) else []
    chunks: list[bytes] = []
    _keep_if_content(chunks, data[: starts[0]])
    for begin, stop in zip(starts, starts[1:] + [len(data)]):
        chunks.append(data[begin:stop])
    return chunks


def _keep_if_content(chunks: list[bytes], piece: bytes) -> None:
    if piece.strip(b" \t\r\n" + BOM):
        chunks.append(piece)


class Unframed:
    """Result of :func:`unframe`: ER7 bytes with CR segment terminators, and whether the frame was cut short."""

    __slots__ = ("body", "truncated")

    def __init__(self, body: bytes, truncated: bool) -> None:
        self.body = body
        self.truncated = truncated


def unframe(chunk: bytes) -> Unframed:
    """Strip MLLP bytes and a BOM, normalise segment terminators to CR, drop batch envelope segments."""
    body = chunk.strip(b" \t\r\n")
    truncated = False
    if body.startswith(START_BLOCK):
        body = body[1:]
        end = body.rfind(END_BLOCK)
        if end < 0:
            truncated = True
        else:
            body = body[:end]
    if body.startswith(BOM):
        body = body[len(BOM) :]
    body = body.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b" \t\r")
    if _HAS_ENVELOPE.search(body):
        body = b"\r".join(seg for seg in body.split(b"\r") if not _ENVELOPE.match(seg))
    return Unframed(body, truncated)
