"""ER7 (pipe-and-hat) field access without python-hl7's container tree.

python-hl7 splits a message into a tree of Python objects (message, segment, field, repetition, component): about
180 container objects per benchmark message, one Python ``__init__`` each, although parse.py reads some 50 values
and asks nothing of the tree but "the text at field f, repetition r, component c, subcomponent s". That question
has the same answer on the raw text of the field split at those separators, as python-hl7 splits it (its ``str()``
of any container is the exact text it was split from). So this module keeps python-hl7's reading of the header
(``create_parse_plan``: separators from MSH-1/2, their defaults, the escape character) and its segment layout
(MSH/BHS/FHS fields 0-2 kept whole, as it keeps them), and splits the rest lazily, in C (``str.split``), only where a
value is read. Unescaping stays python-hl7's (``hl7.util.unescape``, which needs only ``esc`` and ``separators``).
tests/hl7_fhir/test_fast_paths.py checks every value against python-hl7's containers.
"""

from __future__ import annotations

import hl7.parser

__all__ = ["Message", "Segment", "component", "header", "repetitions", "split_message"]

# Segments whose first fields python-hl7 keeps whole: the name, the field separator, the encoding characters.
_HEADERS = ("MSH", "BHS", "FHS")


class Segment(list):
    """One segment: its fields as raw text, numbered as python-hl7 numbers them (the name at 0; for MSH, MSH-n at
    n, so index 1 is the field separator itself). ``whole``: how many leading fields are never split (3 for a
    header segment, 1 for a segment without any separator, else 0)."""

    __slots__ = ("esc", "separators", "whole")

    def __init__(self, fields: list[str], esc: str, separators: str, whole: int) -> None:
        super().__init__(fields)
        self.esc = esc
        self.separators = separators
        self.whole = whole


class Message(list):
    """The segments of one message, with the separators and escape character python-hl7 read from its header."""

    __slots__ = ("esc", "separators")

    def __init__(self, segments: list[Segment], esc: str, separators: str) -> None:
        super().__init__(segments)
        self.esc = esc
        self.separators = separators


def split_message(text: str) -> Message:
    """What ``hl7.parse(text)`` splits into segments and fields, as text. Raises what it raises on a header it
    cannot read (the caller turns any exception into a rejection)."""
    strmsg = text.strip()
    plan = hl7.parser.create_parse_plan(strmsg)
    separators, esc = plan.separators, plan.esc
    if len(set(separators)) < len(separators):
        # A separator repeated in MSH-2 (only broken or hostile input): python-hl7 fails an assertion on it as soon
        # as it splits at that level. Let it run, so such a message fails exactly where and how it always did; when
        # it does not fail, no text reaches the repeated level, and the splits below find nothing to split either.
        hl7.parser._split(strmsg, plan)
    field_sep = separators[1]
    tail = separators[1:]
    segments = []
    for line in strmsg.split(separators[0]):
        if not any(sep in line for sep in tail):
            segments.append(Segment([line], esc, separators, 1))  # python-hl7 keeps it as one string
        elif line[:3] in _HEADERS:
            # python-hl7's special case: the header's own fourth character is its field separator (MSH-1) and the
            # text up to the next one the encoding characters (MSH-2), whatever the message's plan says.
            sep0 = line[3]
            end = line.find(sep0, 4)
            rest = line[end + 1 :]
            segments.append(
                Segment([line[:3], sep0, line[4:end], *(rest.split(field_sep) if rest else ())], esc, separators, 3)
            )
        else:
            segments.append(Segment(line.split(field_sep), esc, separators, 0))
    return Message(segments, esc, separators)


def header(message: Message) -> Segment:
    """The MSH segment, as ``message.segment("MSH")`` finds it (KeyError when there is none)."""
    for segment in message:
        if segment.whole == 3 and segment[0] == "MSH":
            return segment
    raise KeyError("No MSH segments")


def component(segment: Segment, field: int, r: int = 1, c: int = 1, s: int = 1) -> str:
    """The raw (still escaped) text at field / repetition / component / subcomponent, 1-based below the field;
    "" when absent. A level without its separator is one item: "abc" is component 1, subcomponent 1."""
    if field >= len(segment):
        return ""
    text = segment[field]
    if field < segment.whole:
        return text if r == c == s == 1 else ""
    seps = segment.separators
    for sep, n in ((seps[2], r), (seps[3], c), (seps[4], s)):
        if sep in text:
            parts = text.split(sep)
            if n > len(parts):
                return ""
            text = parts[n - 1]
        elif n != 1:
            return ""
    return text


def repetitions(segment: Segment, field: int) -> list[str]:
    """The raw text of each repetition of a field ([] when the field is absent)."""
    if field >= len(segment):
        return []
    text = segment[field]
    if field < segment.whole:
        return [text] if text or segment.whole == 3 else []
    sep = segment.separators[2]
    return text.split(sep) if sep in text else [text]
