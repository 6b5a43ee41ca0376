"""Per-message limits of the HL7 parser: what one message may cost, whoever sent it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParseLimits:
    """``max_message_bytes``: a message (one MLLP frame / MSH..MSH run) larger than this is rejected ("oversize")
    before it is parsed, so parser memory per message is bounded. ``max_escape_repeat``: the largest count one
    counted escape (``\\.sp n\\`` ...) may ask for. ``max_escape_expansion``: the characters all counted escapes
    of one message may write together. Settings section ``hl7`` (connector.settings.HL7Settings)."""

    max_message_bytes: int = 1_048_576
    max_escape_repeat: int = 100
    max_escape_expansion: int = 65_536


DEFAULT_LIMITS = ParseLimits()
