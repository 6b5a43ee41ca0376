"""Bounds on what HL7 escape sequences may expand to, checked before python-hl7 expands them.

HL7 formatted-text escapes repeat a character: ``\\.sp n\\`` (n line breaks), ``\\.br n\\``, ``\\.in n\\`` and
``\\.ti n\\`` (n x four spaces), ``\\.sk n\\`` (n spaces). python-hl7 expands them with ``ch * int(n)`` and no
limit, so a 2 KB message asking for ``\\.sp1000000000\\`` costs gigabytes, or raises OverflowError for a count
past the machine word. python-hl7 stays the unescaper (it handles the separators, hex and highlight escapes);
this module only refuses, up front, a message whose escapes would expand past the limits, so the unescaper never
sees one.

The check scans the text python-hl7 will read (connector.hl7.parse projects it first) for every run between two
escape characters that starts like a counted escape. That is a superset of the sequences the unescaper acts on:
each sequence it expands is such a run, whatever field or component it sits in. Counts are read with ``int()``,
as python-hl7 reads them (it accepts signs, blanks, "_" and non-ASCII digits), so no spelling slips past.
"""

from __future__ import annotations

import re
from functools import lru_cache

from connector.hl7.errors import MessageRejected
from connector.hl7.limits import DEFAULT_LIMITS, ParseLimits

# Characters each counted escape writes per repetition (python-hl7's DEFAULT_MAP). ".fi", ".nf" write nothing;
# ".ce" writes one line break and takes no count in HL7, but python-hl7 honours one, so it is counted too.
_WIDTH = {".sp": 1, ".br": 1, ".ce": 1, ".sk": 1, ".in": 4, ".ti": 4, ".fi": 0, ".nf": 0}


@lru_cache(maxsize=16)
def _counted(esc: str) -> re.Pattern[str]:
    e = re.escape(esc)
    # Lookarounds: the closing escape character of one run may open the next (python-hl7 toggles on each one,
    # so either reading may be the real one; both are checked).
    return re.compile(rf"(?<={e})(\.(?:sp|br|ce|sk|in|ti|fi|nf))([^{e}]*)(?={e})")


def check_escapes(text: str, esc: str, limits: ParseLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`MessageRejected` ("malformed") when a counted escape in ``text`` exceeds ``limits``."""
    if not esc or esc + "." not in text:
        return  # every counted escape starts with the escape character and a dot: nothing to scan (most messages)
    total = 0
    for match in _counted(esc).finditer(text):
        kind, tail = match.group(1), match.group(2)
        if not tail.strip():
            continue  # "\.sp\": one repetition, no count
        try:
            count = int(tail)
        except ValueError:
            continue  # python-hl7 cannot read it either; connector.hl7.parse then keeps the text as sent
        if count > limits.max_escape_repeat:
            raise MessageRejected(
                "malformed",
                f"escape sequence {kind} repeats {_shown(count)} times (limit {limits.max_escape_repeat}: "
                "setting hl7.max_escape_repeat)",
            )
        total += max(0, count) * _WIDTH[kind]
        if total > limits.max_escape_expansion:
            raise MessageRejected(
                "malformed",
                f"escape sequences expand to more than {limits.max_escape_expansion} characters "
                "(setting hl7.max_escape_expansion)",
            )


def _shown(count: int) -> str:
    digits = len(str(count))  # int() has already refused more than 4,300 digits
    return str(count) if digits <= 12 else f"a {digits}-digit number of"


__all__ = ["check_escapes"]
