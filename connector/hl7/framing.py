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
_ENVELOPE_TAGS = (b"FHS", b"BHS", b"BTS", b"FTS")
_HAS_ENVELOPE = re.compile(rb"(?:^|\r)(?:FHS|BHS|BTS|FTS)[^A-Za-z0-9\r]")


def split_messages(data: bytes) -> list[bytes]:
    """One chunk per message. Whitespace-only gaps are dropped; any other stray bytes between messages become
    their own chunk, so they are rejected (and kept) instead of being silently lost. Consecutive chunks that are
    not HL7 (garbage, or frames around garbage) are one chunk: a run of noise is one dead letter, not one per
    stray start-block byte in it."""
    spans = _split_mllp(data) if START_BLOCK in data else _split_plain(data)
    return [data[start:stop] for start, stop in _merge_noise(data, spans)]


def _split_mllp(data: bytes) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        start = data.find(START_BLOCK, pos)
        if start < 0:
            _keep_if_content(spans, data, pos, len(data))
            break
        _keep_if_content(spans, data, pos, start)
        end = data.find(END_BLOCK, start + 1)
        nxt = data.find(START_BLOCK, start + 1)
        if end < 0 or (0 <= nxt < end):
            # Start block without its end block: a truncated frame. Keep it to the next start (or the end).
            stop = nxt if nxt >= 0 else len(data)
            spans.append((start, stop))
            pos = stop
            continue
        stop = end + 1
        if data[stop : stop + 1] == b"\r":
            stop += 1
        spans.append((start, stop))
        pos = stop
    return spans


def _split_plain(data: bytes) -> list[tuple[int, int]]:
    starts = [m.start() for m in _MSH_AT_LINE_START.finditer(data)]
    spans: list[tuple[int, int]] = []
    _keep_if_content(spans, data, 0, starts[0] if starts else len(data))
    for begin, stop in zip(starts, starts[1:] + [len(data)]):
        spans.append((begin, stop))
    return spans


def _keep_if_content(spans: list[tuple[int, int]], data: bytes, start: int, stop: int) -> None:
    if has_content(data[start:stop]):
        spans.append((start, stop))


def has_content(piece: bytes) -> bool:
    """Anything but whitespace and byte-order marks. (The BOM is a three-byte sequence, not a set of three
    characters: a lone 0xBB byte is content.)"""
    return bool(piece.replace(BOM, b"").strip(b" \t\r\n"))


def _looks_like_hl7(piece: bytes) -> bool:
    head = piece.lstrip(b" \t\r\n")
    if head.startswith(START_BLOCK):
        head = head[1:]
    head = head.removeprefix(BOM).lstrip(b" \t\r\n")
    return head.startswith((b"MSH", *_ENVELOPE_TAGS))


def _merge_noise(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    previous_noise = False
    for start, stop in spans:
        noise = not _looks_like_hl7(data[start : min(stop, start + 64)])
        if noise and previous_noise:
            merged[-1] = (merged[-1][0], stop)  # the gap between them (whitespace) goes with them: bytes as sent
        else:
            merged.append((start, stop))
        previous_noise = noise
    return merged


class Unframed:
    """Result of :func:`unframe`: ER7 bytes with CR segment terminators, and whether the frame was cut short."""

    __slots__ = ("body", "truncated")

    def __init__(self, body: bytes, truncated: bool) -> None:
        self.body = body
        self.truncated = truncated


def unframe(chunk: bytes, drop_envelope: bool = True) -> Unframed:
    """Strip MLLP bytes and a BOM, normalise segment terminators to CR, drop batch envelope segments (unless
    ``drop_envelope`` is False: a caller that keeps only named segments anyway skips the scan for them)."""
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
    # The substring tests are a cheap precheck: the regex (anchored alternatives, no literal prefix) scans slowly.
    if drop_envelope and any(tag in body for tag in _ENVELOPE_TAGS) and _HAS_ENVELOPE.search(body):
        body = b"\r".join(seg for seg in body.split(b"\r") if not _ENVELOPE.match(seg))
    return Unframed(body, truncated)
