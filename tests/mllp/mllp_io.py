"""Test-side MLLP helpers: a raw socket client (for framing faults, written here on purpose: the gateway must
survive bytes that no library client would send) and ACK parsing with python-hl7 (a parser we did not write)."""

from __future__ import annotations

import asyncio

import hl7

VT, FS, CR = b"\x0b", b"\x1c", b"\r"


def framed(message: bytes) -> bytes:
    return VT + message + FS + CR


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1", **kwargs: object) -> RawClient:
        reader, writer = await asyncio.open_connection(host, port, limit=64 * 1_048_576, **kwargs)
        return cls(reader, writer)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_ack(self, timeout: float = 10.0) -> bytes:
        block = await asyncio.wait_for(self.reader.readuntil(FS + CR), timeout)
        assert block.startswith(VT), block[:20]
        return block[1:-2]

    async def closed_by_peer(self, timeout: float = 10.0) -> bool:
        try:
            data = await asyncio.wait_for(self.reader.read(1), timeout)
        except (ConnectionError, OSError):
            return True
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


def parse_ack(raw: bytes) -> hl7.Message:
    return hl7.parse(raw.decode("latin-1"))


def field(message: hl7.Message, segment: str, n: int) -> str:
    """Field n of the first such segment as text (python-hl7: MSH index n is MSH-n)."""
    seg = message.segment(segment)
    return str(seg[n]) if len(seg) > n else ""


def msa(raw: bytes) -> tuple[str, str]:
    parsed = parse_ack(raw)
    return field(parsed, "MSA", 1), field(parsed, "MSA", 2)
