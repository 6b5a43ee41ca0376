"""Synthetic HL7 v2 messages for the gateway tests (invented names and numbers; see connector/stream/synthetic)."""

from __future__ import annotations

from connector.stream.synthetic import oru_message


def oru(i: int, **kwargs: object) -> bytes:
    return oru_message(i, padding_lines=2, **kwargs)  # type: ignore[arg-type]


def with_msh(message: bytes, **fields: str) -> bytes:
    """The message with MSH fields replaced: with_msh(m, f10="X", f12="2.3", f15="AL")."""
    segments = message.split(b"\r")
    msh = segments[0].split(b"|")
    for name, value in fields.items():
        n = int(name[1:])
        while len(msh) < n:
            msh.append(b"")
        msh[n - 1] = value.encode()  # MSH-n is index n-1 (MSH-1 is the separator between "MSH" and MSH-2)
    segments[0] = b"|".join(msh)
    return b"\r".join(segments)


ADT = (b"MSH|^~\\&|ADT|SYNHOSP|RADLABEL|SYNHOSP|202501011200||ADT^A01^ADT_A01|ADT0000001|P|2.5.1\r"
       b"EVN|A01|202501011200\rPID|1||MRN90009^^^SYNHOSP^MR||ZZTESTPERSON^ALPHONSINE\r")
